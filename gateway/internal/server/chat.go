package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/httperr"
	"github.com/chat-backend/gateway/internal/jsonout"
	"github.com/chat-backend/gateway/internal/requestid"
)

// The routes of the server-streaming RPCs in api/chat_v1.yaml. All answer
// a stream of ChatEvents, served by streamEvents.
const (
	chatPath        = "/v1/conversations/{conversation_id}/chat"
	regeneratePath  = "/v1/conversations/{conversation_id}/messages/{id}:regenerate"
	streamReplyPath = "/v1/conversations/{conversation_id}/messages/{id}/stream"
)

// lastEventIDHeader is what an SSE client sends when it reconnects: the
// `id:` of the last event it received. The id of a `delta` is the length of
// the reply after it (eventWriter.write), so on StreamReply the header is
// `after`, and it wins over `?after=`: an EventSource reconnects to the
// URL it was opened with, whose `after` is the first one.
const lastEventIDHeader = "Last-Event-ID"

// Content types of an event stream (docs/api.md "Assistant replies (Chat)").
const (
	contentTypeSSE    = "text/event-stream"
	contentTypeNDJSON = "application/x-ndjson"
)

// eventStream is one route whose RPC answers a stream of ChatEvents (Chat,
// Regenerate, StreamReply).
type eventStream struct {
	// verb is the route's HTTP method: POST routes are `body: "*"` (the
	// request message is the JSON body), GET routes read the query.
	verb   string
	method string // full gRPC method name
	path   string // the route's template in api/chat_v1.yaml
	// headers are request headers that set a field of the request, over
	// the query parameter of that field (StreamReply: Last-Event-ID sets
	// after). checkParams checks their values with the query's.
	headers map[string]protoreflect.Name
	// newRequest returns an empty request message of the RPC.
	newRequest func() proto.Message
	// call puts a request that newRequest made into the open request of a
	// multiplexed stream.
	call func(open *chatv1.OpenEventStream, req proto.Message)
}

// eventStreamOf describes a route served by the RPC whose request call
// puts into an OpenEventStream.
func eventStreamOf[Req proto.Message](verb, method, path string, call func(*chatv1.OpenEventStream, Req)) eventStream {
	return eventStream{
		verb:   verb,
		method: method,
		path:   path,
		newRequest: func() proto.Message {
			var zero Req
			return zero.ProtoReflect().New().Interface()
		},
		call: func(open *chatv1.OpenEventStream, req proto.Message) { call(open, req.(Req)) },
	}
}

// eventStreams are the routes that streamEvents serves.
func eventStreams() []eventStream {
	resume := eventStreamOf(http.MethodGet, chatv1.MessageService_StreamReply_FullMethodName, streamReplyPath,
		func(o *chatv1.OpenEventStream, r *chatv1.StreamReplyRequest) {
			o.Call = &chatv1.OpenEventStream_StreamReply{StreamReply: r}
		})
	resume.headers = map[string]protoreflect.Name{lastEventIDHeader: "after"}
	return []eventStream{
		eventStreamOf(http.MethodPost, chatv1.MessageService_Chat_FullMethodName, chatPath,
			func(o *chatv1.OpenEventStream, r *chatv1.ChatRequest) { o.Call = &chatv1.OpenEventStream_Chat{Chat: r} }),
		eventStreamOf(http.MethodPost, chatv1.MessageService_Regenerate_FullMethodName, regeneratePath,
			func(o *chatv1.OpenEventStream, r *chatv1.RegenerateRequest) {
				o.Call = &chatv1.OpenEventStream_Regenerate{Regenerate: r}
			}),
		resume,
	}
}

// streamEvents serves the route of a streaming RPC (Chat, Regenerate,
// StreamReply) in place of grpc-gateway's stream forwarder (registered
// later on the same mux, so it wins; the generated handler stays registered
// but is never reached). It prepares the request exactly like a generated
// handler (metadata, the strict body decoder or the query parameters, path
// parameters over both, the one error handler), opens the stream on one of
// the multiplexer's calls (multiplex.go), and frames the events itself:
//
//   - Accept lists text/event-stream: Server-Sent Events, one
//     "event: <oneof field>\ndata: <JSON of the field>\n\n" per ChatEvent,
//     a `delta` with an "id: <offset after the chunk>" line too; the data
//     of an `error` event is the error envelope {"error": {...}}.
//   - otherwise: newline-delimited JSON, one ChatEvent per line
//     ({"delta":{"text":"Hel","offset":0}}, {"error":{...}}).
//
// Nothing is sent before the first event, so a stream that fails before it
// (UNAUTHENTICATED, NOT_FOUND, RESOURCE_EXHAUSTED...) answers the ordinary
// error envelope and status. Once the 200 is out, a status ending the stream
// becomes a final `error` event with the same mapping and scrubbing. Every
// event is sent as soon as it arrives.
//
// Over HTTP/1.x the connection is taken over from net/http after the first
// event (eventconn.go): the rest of the stream holds no goroutine, and a
// client that hangs up is noticed without one (hangup_linux.go). Over
// HTTP/2 the handler relays the events. A client that hangs up closes its
// stream at once (the stream, not the reply: the message service
// generates a started reply to its end, and StreamReply resumes it).
func (s *server) streamEvents(mux *runtime.ServeMux, route eventStream) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		inbound, outbound := runtime.MarshalerForRequest(mux, r)
		ctx, err := runtime.AnnotateContext(ctx, mux, r, route.method, runtime.WithHTTPPathPattern(route.path))
		if err != nil {
			runtime.HTTPError(r.Context(), mux, outbound, w, r, err)
			return
		}
		req := route.newRequest()
		if err := readStreamRequest(inbound, r, route, params, req); err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		open := &chatv1.OpenEventStream{}
		md, _ := metadata.FromOutgoingContext(ctx)
		if v := md.Get("authorization"); len(v) > 0 {
			open.Authorization = v[0]
		}
		if v := md.Get(requestid.MetadataKey); len(v) > 0 {
			open.RequestId = v[0]
		}
		route.call(open, req)

		stream, first, err := s.streams.start(ctx, open)
		if err != nil {
			if ctx.Err() != nil {
				// The client hung up, or the deadline of Grpc-Timeout passed.
				err = status.FromContextError(ctx.Err()).Err()
			}
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		if first.isEnd() && first.err != nil {
			// Nothing sent yet: an ordinary error answer.
			runtime.HTTPError(ctx, mux, outbound, w, r, first.err)
			return
		}

		frames := &eventFramer{s: s, ctx: ctx, requestID: requestid.FromContext(r.Context()),
			sse: acceptsEventStream(r.Header), state: stateFrom(r.Context())}
		takeOver := r.ProtoMajor == 1
		startEvents(w, frames.sse, takeOver)
		rc := http.NewResponseController(w)
		data, last := frames.frame(first)
		err = writeFlush(w, rc, data)
		frames.release()
		if err != nil || last {
			if err != nil {
				stream.close()
				frames.state.grpcCode = httperr.CodeName(codes.Canceled)
			}
			return
		}
		if takeOver {
			// Counted before net/http lets go of the connection, so that
			// the drain cannot miss it.
			s.takenOver.add()
			if conn, _, err := rc.Hijack(); err == nil {
				s.handOver(r, ctx, stream, frames, conn)
				return
			}
			s.takenOver.done()
		}
		for {
			it, err := stream.next(ctx)
			if err != nil {
				stream.close()
				if r.Context().Err() == nil {
					// Grpc-Timeout: the stream ends DEADLINE_EXCEEDED, as
					// its call would.
					data, _ := frames.frame(streamItem{err: status.FromContextError(err).Err()})
					_ = writeFlush(w, rc, data)
					frames.release()
					return
				}
				// The client hung up: nobody to tell.
				frames.state.grpcCode = httperr.CodeName(codes.Canceled)
				return
			}
			data, last := frames.frame(it)
			err = writeFlush(w, rc, data)
			frames.release()
			if err != nil {
				stream.close()
				frames.state.grpcCode = httperr.CodeName(codes.Canceled)
				return
			}
			if last {
				stream.close() // nothing, unless the gateway ended it
				return
			}
		}
	}
}

// handOver serves the rest of the stream on conn, taken over from net/http,
// and returns: the events go from the multiplexer's goroutine straight to
// the connection's pending bytes. The request's access log line and
// metrics are written when the stream ends (observe).
func (s *server) handOver(r *http.Request, ctx context.Context, stream *muxStream, frames *eventFramer, conn net.Conn) {
	report := &streamReport{}
	stateFrom(r.Context()).takenOver = report
	report.onEnd(s.takenOver.done) // counted by the caller
	frames.state = &reqState{}     // the request's own is observe's now
	// net/http cancels the request's context when the handler returns;
	// the stream's errors are still the upstream's, not a client's that left.
	frames.ctx = context.WithoutCancel(frames.ctx)
	var code atomic.Pointer[string]
	out := newEventConn(conn, r.ProtoAtLeast(1, 1), stream.close, func(written int64) {
		c := code.Load()
		if c == nil {
			c = new(string)
		}
		report.end(written, *c)
	})
	stream.attach(func(it streamItem) {
		data, last := frames.frame(it)
		if c := frames.state.grpcCode; c != "" {
			code.Store(&c)
		}
		out.push(data, last)
		frames.release()
	})
	// After attach: an end delivered before it would be dropped by close.
	if deadline, ok := ctx.Deadline(); ok {
		// Grpc-Timeout: the stream ends DEADLINE_EXCEEDED, as its call would.
		t := time.AfterFunc(time.Until(deadline), func() {
			stream.deliver(streamItem{err: status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())})
			stream.close()
		})
		report.onEnd(func() { t.Stop() })
	}
}

// writeFlush writes one event's bytes (none: nothing) and flushes them.
func writeFlush(w http.ResponseWriter, rc *http.ResponseController, data []byte) error {
	if len(data) > 0 {
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// readStreamRequest fills req as a generated handler of the route does:
// for a `body: "*"` route (POST) the body through the mux's strict decoder
// (unknown fields and malformed JSON are INVALID_ARGUMENT), for a route
// without a body (GET) the query parameters other than the path's; then
// the route's headers (Last-Event-ID), then the path parameters, which win
// over the same fields in the body or the query. It reads the body to its
// end, also where it is ignored: the rest must stay within the body limit,
// and only a fully read body lets net/http notice a client that hangs up
// while the reply streams.
func readStreamRequest(dec runtime.Marshaler, r *http.Request, route eventStream, params map[string]string, req proto.Message) error {
	if route.verb == http.MethodGet {
		query, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "%v", err)
		}
		if err := runtime.PopulateQueryParameters(req, query, pathFilter(params)); err != nil {
			return status.Errorf(codes.InvalidArgument, "%v", err)
		}
	} else if err := dec.NewDecoder(r.Body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if r.Body != nil {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return status.Errorf(codes.InvalidArgument, "reading the body: %v", err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(route.headers)) {
		// Empty is no value: an SSE client that has no event id yet.
		if v := r.Header.Get(name); v != "" {
			if err := runtime.PopulateFieldFromPath(req, string(route.headers[name]), v); err != nil {
				return status.Errorf(codes.InvalidArgument, "type mismatch, header: %s, error: %v", name, err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if err := runtime.PopulateFieldFromPath(req, name, params[name]); err != nil {
			return status.Errorf(codes.InvalidArgument, "type mismatch, parameter: %s, error: %v", name, err)
		}
	}
	return nil
}

// pathFilter keeps the query from setting the fields that the path
// parameters set, as the generated handlers' filters do.
func pathFilter(params map[string]string) *utilities.DoubleArray {
	seqs := make([][]string, 0, len(params))
	for name := range params {
		seqs = append(seqs, strings.Split(name, "."))
	}
	return utilities.NewDoubleArray(seqs)
}

// acceptsEventStream reports whether the Accept header lists
// text/event-stream (with a q above 0).
func acceptsEventStream(h http.Header) bool {
	for _, v := range h.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(part)
			if err != nil || mt != contentTypeSSE {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q <= 0 {
				continue
			}
			return true
		}
	}
	return false
}

// startEvents sends the 200 and the headers that keep proxies from
// buffering. closeAfter: the connection ends with the stream (it is taken
// over, eventconn.go).
func startEvents(w http.ResponseWriter, sse, closeAfter bool) {
	h := w.Header()
	if sse {
		h.Set("Content-Type", contentTypeSSE)
	} else {
		h.Set("Content-Type", contentTypeNDJSON)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	if closeAfter {
		h.Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
}

// eventFramer turns the items of one stream into the bytes of its answer,
// SSE or NDJSON: events as they are, except error events, scrubbed; the
// end as nothing, or as a last error event.
type eventFramer struct {
	s         *server
	ctx       context.Context
	requestID string
	sse       bool
	state     *reqState
	sentError bool
	buf       *bytes.Buffer // from framePool while framed bytes are out
}

// framePool holds the buffers of framed events between streams: a stream
// that waits keeps none.
var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// release gives back the buffer of the bytes frame returned last.
func (f *eventFramer) release() {
	if f.buf != nil {
		if f.buf.Cap() <= 64<<10 {
			framePool.Put(f.buf)
		}
		f.buf = nil
	}
}

// frame returns the bytes of `it` and whether it was the last item. The
// bytes are the framer's until release.
func (f *eventFramer) frame(it streamItem) ([]byte, bool) {
	if it.isEnd() {
		switch {
		case it.err == nil:
		case f.sentError:
			// The service's error event was the last word; one is enough.
			st := status.Convert(it.err)
			f.s.logUpstream(f.ctx, "upstream error after an error event", f.requestID, httperr.CodeName(st.Code()), st.Message())
		default:
			e := f.s.upstreamError(f.ctx, it.err, f.requestID).Envelope.GetError()
			f.state.grpcCode = e.GetCode()
			return f.event(&chatv1.ChatEvent{Event: &chatv1.ChatEvent_Error{Error: e}}), true
		}
		return nil, true
	}
	ev := it.ev
	if e := ev.GetError(); e != nil {
		scrubbed, replaced := httperr.ScrubEvent(e, f.requestID)
		if replaced {
			f.s.logUpstream(f.ctx, "upstream error", f.requestID, e.GetCode(), e.GetMessage())
		}
		ev = &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Error{Error: scrubbed}}
		f.state.grpcCode, f.sentError = scrubbed.GetCode(), true
	}
	return f.event(ev), false
}

// event frames one event; an event with no field set has nothing to say
// and is nothing. The bytes are the framer's until its next call.
func (f *eventFramer) event(ev *chatv1.ChatEvent) []byte {
	m := ev.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("event"))
	if fd == nil {
		return nil
	}
	if f.buf == nil {
		f.buf = framePool.Get().(*bytes.Buffer)
	}
	f.buf.Reset()
	if f.sse {
		var data proto.Message = m.Get(fd).Message().Interface()
		if e := ev.GetError(); e != nil {
			data = &chatv1.ErrorEnvelope{Error: e}
		}
		f.buf.WriteString("event: ")
		f.buf.WriteString(string(fd.Name()))
		if d := ev.GetDelta(); d != nil {
			// The reply's length after this chunk, in code points: what a
			// client that has read this far sends back as Last-Event-ID.
			f.buf.WriteString("\nid: ")
			f.buf.WriteString(strconv.FormatInt(int64(d.GetOffset())+int64(utf8.RuneCountInString(d.GetText())), 10))
		}
		f.buf.WriteString("\ndata: ")
		if err := appendJSON(f.buf, data); err != nil {
			return f.internalError(err)
		}
		f.buf.WriteString("\n\n")
	} else {
		if err := appendJSON(f.buf, ev); err != nil {
			return f.internalError(err)
		}
		f.buf.WriteByte('\n')
	}
	return f.buf.Bytes()
}

// internalError: an event that cannot be written as JSON becomes an
// INTERNAL error event (a bug; it is logged).
func (f *eventFramer) internalError(err error) []byte {
	e := f.s.upstreamError(f.ctx, status.Errorf(codes.Internal, "writing an event: %v", err), f.requestID).Envelope.GetError()
	return f.event(&chatv1.ChatEvent{Event: &chatv1.ChatEvent_Error{Error: e}})
}

// appendJSON writes m as the other routes answer it (proto names, every
// field present) on one line: protojson (jsonout's fallback) may put a space
// between tokens, Compact takes it out, and strings never hold a raw newline.
func appendJSON(buf *bytes.Buffer, m proto.Message) error {
	b, err := jsonout.Marshal(m)
	if err != nil {
		return err
	}
	return json.Compact(buf, b)
}
