package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/httperr"
	"github.com/chat-backend/gateway/internal/requestid"
)

// chatPath is the route of MessageService.Chat in api/chat_v1.yaml.
const chatPath = "/v1/conversations/{conversation_id}/chat"

// Content types of a Chat stream (docs/api.md "Assistant replies (Chat)").
const (
	contentTypeSSE    = "text/event-stream"
	contentTypeNDJSON = "application/x-ndjson"
)

// chat serves POST /v1/conversations/{conversation_id}/chat in place of
// grpc-gateway's stream forwarder (registered later on the same mux, so it
// wins; the generated handler stays registered but is never reached). It
// prepares the call exactly like a generated handler (metadata, Grpc-Timeout,
// the strict body decoder, the one error handler) and then frames the events
// itself:
//
//   - Accept lists text/event-stream: Server-Sent Events, one
//     "event: <oneof field>\ndata: <JSON of the field>\n\n" per ChatEvent; the
//     data of an `error` event is the error envelope {"error": {...}}.
//   - otherwise: newline-delimited JSON, one ChatEvent per line
//     ({"delta":{"text":"Hel"}}, {"error":{...}}).
//
// Nothing is sent before the first event, so a call that fails before it
// (UNAUTHENTICATED, NOT_FOUND, RESOURCE_EXHAUSTED...) answers the ordinary
// error envelope and status. Once the 200 is out, a status ending the stream
// becomes a final `error` event with the same mapping and scrubbing. Every
// event is flushed as soon as it is written. The call runs in the request's
// context: a client that hangs up cancels it at once.
func (s *server) chat(mux *runtime.ServeMux, client chatv1.MessageServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		inbound, outbound := runtime.MarshalerForRequest(mux, r)
		ctx, err := runtime.AnnotateContext(ctx, mux, r, chatv1.MessageService_Chat_FullMethodName,
			runtime.WithHTTPPathPattern(chatPath))
		if err != nil {
			runtime.HTTPError(r.Context(), mux, outbound, w, r, err)
			return
		}
		req, err := readChatRequest(inbound, r, params)
		if err != nil {
			runtime.HTTPError(ctx, mux, outbound, w, r, err)
			return
		}

		stream, err := client.Chat(ctx, req)
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

// readChatRequest decodes the body like the generated handlers do (the mux's
// strict decoder: unknown fields and malformed JSON are INVALID_ARGUMENT) and
// takes conversation_id from the path. It reads the body to its end: the rest
// must stay within the body limit, and only a fully read body lets net/http
// notice a client that hangs up while the reply streams.
func readChatRequest(dec runtime.Marshaler, r *http.Request, params map[string]string) (*chatv1.ChatRequest, error) {
	req := &chatv1.ChatRequest{}
	if err := dec.NewDecoder(r.Body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "reading the body: %v", err)
	}
	req.ConversationId = params["conversation_id"]
	return req, nil
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
// field present) on one line: protojson may put a space between tokens,
// Compact takes it out, and strings never hold a raw newline.
func appendJSON(buf *bytes.Buffer, m proto.Message) error {
	b, err := jsonOutput.Marshal(m)
	if err != nil {
		return err
	}
	return json.Compact(buf, b)
}
