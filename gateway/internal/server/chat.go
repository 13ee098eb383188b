package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
	// call starts the RPC with a request that newRequest made.
	call func(context.Context, proto.Message) (grpc.ServerStreamingClient[chatv1.ChatEvent], error)
}

// eventStreamOf describes a route served by the RPC that call starts (a
// method of the generated client, e.g. MessageServiceClient.Regenerate).
func eventStreamOf[Req proto.Message](verb, method, path string,
	call func(context.Context, Req, ...grpc.CallOption) (grpc.ServerStreamingClient[chatv1.ChatEvent], error),
) eventStream {
	return eventStream{
		verb:   verb,
		method: method,
		path:   path,
		newRequest: func() proto.Message {
			var zero Req
			return zero.ProtoReflect().New().Interface()
		},
		call: func(ctx context.Context, req proto.Message) (grpc.ServerStreamingClient[chatv1.ChatEvent], error) {
			return call(ctx, req.(Req))
		},
	}
}

// eventStreams are the routes that streamEvents serves.
func eventStreams(client chatv1.MessageServiceClient) []eventStream {
	resume := eventStreamOf(http.MethodGet, chatv1.MessageService_StreamReply_FullMethodName, streamReplyPath, client.StreamReply)
	resume.headers = map[string]protoreflect.Name{lastEventIDHeader: "after"}
	return []eventStream{
		eventStreamOf(http.MethodPost, chatv1.MessageService_Chat_FullMethodName, chatPath, client.Chat),
		eventStreamOf(http.MethodPost, chatv1.MessageService_Regenerate_FullMethodName, regeneratePath, client.Regenerate),
		resume,
	}
}

// streamEvents serves the route of a streaming RPC (Chat, Regenerate,
// StreamReply) in place of grpc-gateway's stream forwarder (registered
// later on the same mux, so it wins; the generated handler stays registered
// but is never reached). It prepares the call exactly like a generated
// handler (metadata, Grpc-Timeout, the strict body decoder or the query
// parameters, path parameters over both, the one error handler) and then
// frames the events itself:
//
//   - Accept lists text/event-stream: Server-Sent Events, one
//     "event: <oneof field>\ndata: <JSON of the field>\n\n" per ChatEvent,
//     a `delta` with an "id: <offset after the chunk>" line too; the data
//     of an `error` event is the error envelope {"error": {...}}.
//   - otherwise: newline-delimited JSON, one ChatEvent per line
//     ({"delta":{"text":"Hel","offset":0}}, {"error":{...}}).
//
// Nothing is sent before the first event, so a call that fails before it
// (UNAUTHENTICATED, NOT_FOUND, RESOURCE_EXHAUSTED...) answers the ordinary
// error envelope and status. Once the 200 is out, a status ending the stream
// becomes a final `error` event with the same mapping and scrubbing. Every
// event is flushed as soon as it is written. The call runs in the request's
// context: a client that hangs up cancels it at once (the call, not the
// reply: the message service generates a started reply to its end, and
// StreamReply resumes it).
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

		stream, err := route.call(ctx, req)
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}
		ev, err := stream.Recv()
		if err != nil && !errors.Is(err, io.EOF) {
			// Nothing sent yet: an ordinary error answer.
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}

		id := requestid.FromContext(r.Context())
		state := stateFrom(r.Context())
		out := newEventWriter(w, acceptsEventStream(r.Header))
		out.start()
		sentError := false
		for ; err == nil; ev, err = stream.Recv() {
			if e := ev.GetError(); e != nil {
				scrubbed, replaced := httperr.ScrubEvent(e, id)
				if replaced {
					s.logUpstream(ctx, "upstream error", id, e.GetCode(), e.GetMessage())
				}
				ev = &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Error{Error: scrubbed}}
				state.grpcCode, sentError = scrubbed.GetCode(), true
			}
			if err := out.write(ev); err != nil {
				// The client is gone; the deferred cancel ends the call.
				state.grpcCode = httperr.CodeName(codes.Canceled)
				return
			}
		}
		switch {
		case errors.Is(err, io.EOF):
		case r.Context().Err() != nil:
			// The client hung up: nobody to tell.
			state.grpcCode = httperr.CodeName(codes.Canceled)
		case sentError:
			// The service's error event was the last word; one is enough.
			st := status.Convert(err)
			s.logUpstream(ctx, "upstream error after an error event", id, httperr.CodeName(st.Code()), st.Message())
		default:
			e := s.upstreamError(ctx, err, id).Envelope.GetError()
			state.grpcCode = e.GetCode()
			_ = out.write(&chatv1.ChatEvent{Event: &chatv1.ChatEvent_Error{Error: e}})
		}
	}
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

// eventWriter frames ChatEvents as SSE or NDJSON and flushes each one.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	sse bool
	buf bytes.Buffer
}

func newEventWriter(w http.ResponseWriter, sse bool) *eventWriter {
	return &eventWriter{w: w, rc: http.NewResponseController(w), sse: sse}
}

// start sends the 200 and the headers that keep proxies from buffering.
func (o *eventWriter) start() {
	h := o.w.Header()
	if o.sse {
		h.Set("Content-Type", contentTypeSSE)
	} else {
		h.Set("Content-Type", contentTypeNDJSON)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	o.w.WriteHeader(http.StatusOK)
}

// write sends one event and flushes it. An event with no field set has
// nothing to say and is skipped.
func (o *eventWriter) write(ev *chatv1.ChatEvent) error {
	m := ev.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("event"))
	if fd == nil {
		return nil
	}
	o.buf.Reset()
	if o.sse {
		var data proto.Message = m.Get(fd).Message().Interface()
		if e := ev.GetError(); e != nil {
			data = &chatv1.ErrorEnvelope{Error: e}
		}
		o.buf.WriteString("event: ")
		o.buf.WriteString(string(fd.Name()))
		if d := ev.GetDelta(); d != nil {
			// The reply's length after this chunk, in code points: what a
			// client that has read this far sends back as Last-Event-ID.
			o.buf.WriteString("\nid: ")
			o.buf.WriteString(strconv.FormatInt(int64(d.GetOffset())+int64(utf8.RuneCountInString(d.GetText())), 10))
		}
		o.buf.WriteString("\ndata: ")
		if err := appendJSON(&o.buf, data); err != nil {
			return err
		}
		o.buf.WriteString("\n\n")
	} else {
		if err := appendJSON(&o.buf, ev); err != nil {
			return err
		}
		o.buf.WriteByte('\n')
	}
	if _, err := o.w.Write(o.buf.Bytes()); err != nil {
		return err
	}
	return o.flush()
}

func (o *eventWriter) flush() error {
	if err := o.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
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
