package server_test

// POST /v1/conversations/{conversation_id}/chat,
// POST /v1/conversations/{conversation_id}/messages/{id}:regenerate and
// GET /v1/conversations/{conversation_id}/messages/{id}/stream: the
// gateway's own handler of the event streams (chat.go) against a fake
// MessageService.Chat, Regenerate and StreamReply over real gRPC. Every test
// runs on every route: they share one handler and must behave alike.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// streamTimeout bounds every streaming test, so a gateway that buffers (or
// never ends a stream) fails with a message instead of hanging.
const streamTimeout = 20 * time.Second

type chatStream = grpc.ServerStreamingServer[chatv1.ChatEvent]

// streamRoutes are the routes of streamEvents: the method, the path and a
// valid body (StreamReply, a GET, has none).
var streamRoutes = []struct {
	rpc, method, path, body string
}{
	{"Chat", "POST", "/v1/conversations/c1/chat", `{"content":"hello","model":"echo"}`},
	{"Regenerate", "POST", "/v1/conversations/c1/messages/m1:regenerate", `{"model":"echo"}`},
	{"StreamReply", "GET", "/v1/conversations/c1/messages/m2/stream", ""},
}

func messageEvent(content string) *chatv1.ChatEvent {
	return &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Message{Message: &chatv1.Message{
		Id: "m1", ConversationId: "c1", Role: "user", Content: content, Status: "complete",
		ParentId: proto.String(""), SiblingIndex: 0, SiblingCount: 1,
	}}}
}

func deltaEvent(text string) *chatv1.ChatEvent {
	return deltaAt(text, 0)
}

// deltaAt is a delta whose text follows offset characters of the reply.
func deltaAt(text string, offset int32) *chatv1.ChatEvent {
	return &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Delta{Delta: &chatv1.ChatDelta{Text: text, Offset: offset}}}
}

// replyEvent is the assistant message as stored when the reply starts.
func replyEvent() *chatv1.ChatEvent {
	return &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Reply{Reply: &chatv1.Message{
		Id: "m2", ConversationId: "c1", Role: "assistant", Status: "in_progress", Model: "echo",
		ParentId: proto.String("m1"), SiblingIndex: 1, SiblingCount: 2,
	}}}
}

func doneEvent() *chatv1.ChatEvent {
	return &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Done{Done: &chatv1.ChatDone{
		Message: &chatv1.Message{Id: "m2", ConversationId: "c1", Role: "assistant", Content: "Hello",
			Status: "complete", Model: "echo", Metadata: map[string]string{"k": "v"},
			ParentId: proto.String("m1"), SiblingIndex: 1, SiblingCount: 2},
		Usage: &chatv1.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5},
	}}}
}

// The exact bytes of each event's JSON: proto names, every field present
// (parent_id, proto3 optional, because the service set it, "" included),
// compact.
const (
	messageJSON = `{"id":"m1","conversation_id":"c1","role":"user","content":"hello","status":"complete","model":"","metadata":{},"created_at":null,"updated_at":null,"parent_id":"","sibling_index":0,"sibling_count":1}`
	replyJSON   = `{"id":"m2","conversation_id":"c1","role":"assistant","content":"","status":"in_progress","model":"echo","metadata":{},"created_at":null,"updated_at":null,"parent_id":"m1","sibling_index":1,"sibling_count":2}`
	doneJSON    = `{"message":{"id":"m2","conversation_id":"c1","role":"assistant","content":"Hello","status":"complete","model":"echo","metadata":{"k":"v"},"created_at":null,"updated_at":null,"parent_id":"m1","sibling_index":1,"sibling_count":2},"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
)

// openChat starts a Chat request and returns the response once its header
// is in; the body is still streaming. headers are name, value pairs.
func openChat(t *testing.T, g *gw, ctx context.Context, body string, headers ...string) *http.Response {
	t.Helper()
	return openStream(t, g, ctx, "POST", "/v1/conversations/c1/chat", body, headers...)
}

// openStream is openChat for any method and path.
func openStream(t *testing.T, g *gw, ctx context.Context, method, path, body string, headers ...string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer (an event held back?): %v", err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// eventReader reads one event at a time in either framing.
type eventReader struct {
	t   *testing.T
	r   *bufio.Reader
	sse bool
	// id is the "id:" line of the last SSE event read, hasID whether it
	// had one.
	id    string
	hasID bool
}

func newEventReader(t *testing.T, resp *http.Response, sse bool) *eventReader {
	return &eventReader{t: t, r: bufio.NewReader(resp.Body), sse: sse}
}

// next returns the next event as (name, data). For NDJSON the name is the
// line's only key and data the whole line. It fails the test at the end of
// the stream or on a framing error.
func (e *eventReader) next() (string, string) {
	e.t.Helper()
	line := func() string {
		e.t.Helper()
		s, err := e.r.ReadString('\n')
		if err != nil {
			e.t.Fatalf("reading the stream: %v (partial %q)", err, s)
		}
		return strings.TrimSuffix(s, "\n")
	}
	if !e.sse {
		l := line()
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &obj); err != nil || len(obj) != 1 {
			e.t.Fatalf("NDJSON line is not one event: %q (%v)", l, err)
		}
		for name := range obj {
			return name, l
		}
	}
	// "event: <name>", then "id: <offset>" for a delta, "data: <json>" and
	// a blank line.
	ev, data := line(), line()
	e.id, e.hasID = "", false
	if id, ok := strings.CutPrefix(data, "id: "); ok {
		e.id, e.hasID = id, true
		data = line()
	}
	blank := line()
	name, ok1 := strings.CutPrefix(ev, "event: ")
	payload, ok2 := strings.CutPrefix(data, "data: ")
	if !ok1 || !ok2 || blank != "" {
		e.t.Fatalf("not an SSE event: %q %q %q", ev, data, blank)
	}
	return name, payload
}

// end checks that the stream is over.
func (e *eventReader) end() {
	e.t.Helper()
	if rest, err := io.ReadAll(e.r); err != nil || len(rest) != 0 {
		e.t.Errorf("after the last event: %q, %v", rest, err)
	}
}

type framing struct {
	name        string
	accept      string
	sse         bool
	contentType string
}

var framings = []framing{
	{"SSE", "text/event-stream", true, "text/event-stream"},
	{"SSE among others", "application/json;q=0.9, Text/Event-Stream; charset=utf-8", true, "text/event-stream"},
	{"NDJSON", "", false, "application/x-ndjson"},
	{"NDJSON for application/json", "application/json", false, "application/x-ndjson"},
	{"NDJSON when SSE has q=0", "text/event-stream;q=0, */*", false, "application/x-ndjson"},
}

// streamRun is one route of streamRoutes in one framing.
type streamRun struct {
	name, rpc, method, path, body string
	framing                       framing
}

// streamRuns are every route in SSE, in SSE among other types, and in
// NDJSON.
func streamRuns() []streamRun {
	var runs []streamRun
	for _, route := range streamRoutes {
		for _, f := range framings[:3] {
			runs = append(runs, streamRun{route.rpc + "/" + f.name, route.rpc, route.method, route.path, route.body, f})
		}
	}
	return runs
}

// TestStreamFraming runs Chat's message, reply, delta, delta, done,
// Regenerate's reply, delta, delta, done and StreamReply's delta, delta,
// done in every framing. The fake sends each event only after the test has
// read the previous one, so the test would time out if any layer (the
// gateway's writer, the metrics/access-log wrapper, net/http) held an event
// back. Over SSE the deltas, and only they, carry "id: <offset after the
// chunk>".
func TestStreamFraming(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	type event struct{ name, id, sse, ndjson string }
	message := event{"message", "", messageJSON, `{"message":` + messageJSON + `}`}
	reply := event{"reply", "", replyJSON, `{"reply":` + replyJSON + `}`}
	rest := []event{
		{"delta", "3", `{"text":"Hel","offset":0}`, `{"delta":{"text":"Hel","offset":0}}`},
		{"delta", "5", `{"text":"lo","offset":3}`, `{"delta":{"text":"lo","offset":3}}`},
		{"done", "", doneJSON, `{"done":` + doneJSON + `}`},
	}
	for _, route := range streamRoutes {
		for _, f := range framings {
			t.Run(route.rpc+"/"+f.name, func(t *testing.T) {
				sent := []*chatv1.ChatEvent{deltaAt("Hel", 0), deltaAt("lo", 3), doneEvent()}
				want := rest
				switch route.rpc {
				case "Chat":
					sent = append([]*chatv1.ChatEvent{messageEvent("hello"), replyEvent()}, sent...)
					want = append([]event{message, reply}, rest...)
				case "Regenerate":
					sent = append([]*chatv1.ChatEvent{replyEvent()}, sent...)
					want = append([]event{reply}, rest...)
				}
				read := make(chan struct{})
				b.setStream(func(_ proto.Message, s chatStream) error {
					for i, ev := range sent {
						if i > 0 {
							select {
							case <-read:
							case <-s.Context().Done():
								return s.Context().Err()
							}
						}
						if err := s.Send(ev); err != nil {
							return err
						}
					}
					return nil
				})
				ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
				defer cancel()
				resp := openStream(t, g, ctx, route.method, route.path, route.body,
					"Accept", f.accept, "Authorization", "Bearer tok-1", "X-Request-Id", "rid-chat")
				if resp.StatusCode != 200 {
					body, _ := io.ReadAll(resp.Body)
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				for k, want := range map[string]string{
					"Content-Type":      f.contentType,
					"Cache-Control":     "no-cache",
					"X-Accel-Buffering": "no",
					"X-Request-Id":      "rid-chat",
				} {
					if got := resp.Header.Get(k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}

				events := newEventReader(t, resp, f.sse)
				for i, w := range want {
					name, data := events.next()
					wantData := w.ndjson
					if f.sse {
						wantData = w.sse
					}
					if name != w.name || data != wantData {
						t.Errorf("event %d = %s %s\nwant %s %s", i, name, data, w.name, wantData)
					}
					if f.sse && (events.hasID != (w.id != "") || events.id != w.id) {
						t.Errorf("event %d (%s): id %q (%v), want %q", i, name, events.id, events.hasID, w.id)
					}
					if i < len(want)-1 {
						read <- struct{}{} // Only now may the fake send the next one.
					}
				}
				events.end()

				c := b.lastCall(t)
				switch req := c.req.(type) {
				case *chatv1.ChatRequest:
					if c.method != route.rpc || req.GetConversationId() != "c1" || req.GetContent() != "hello" || req.GetModel() != "echo" {
						t.Errorf("request = %s %v", c.method, req)
					}
				case *chatv1.RegenerateRequest:
					if c.method != route.rpc || req.GetConversationId() != "c1" || req.GetId() != "m1" || req.GetModel() != "echo" {
						t.Errorf("request = %s %v", c.method, req)
					}
				case *chatv1.StreamReplyRequest:
					if c.method != route.rpc || req.GetConversationId() != "c1" || req.GetId() != "m2" || req.GetAfter() != 0 {
						t.Errorf("request = %s %v", c.method, req)
					}
				default:
					t.Errorf("request = %s %T", c.method, req)
				}
				if got := c.md.Get("authorization"); !slices.Equal(got, []string{"Bearer tok-1"}) {
					t.Errorf("authorization = %q", got)
				}
				if got := c.md.Get("x-request-id"); !slices.Equal(got, []string{"rid-chat"}) {
					t.Errorf("x-request-id = %q", got)
				}
			})
		}
	}

	// Counted and logged under its route template with the 200 of the stream.
	r := g.do("GET", "/metrics", "")
	for _, route := range []string{
		`method="POST",route="/v1/conversations/{conversation_id}/chat"`,
		`method="POST",route="/v1/conversations/{conversation_id}/messages/{id}:regenerate"`,
		`method="GET",route="/v1/conversations/{conversation_id}/messages/{id}/stream"`,
	} {
		if want := `gateway_http_requests_total{code="200",` + route + `} 5`; !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestRegenerateRequest: the path parameters fill conversation_id and id,
// over the same fields of the body, as grpc-gateway's handlers do.
func TestRegenerateRequest(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, body := range []string{"", "{}", `{"conversation_id":"c9","id":"m9","model":"m"}`} {
		r := g.do("POST", "/v1/conversations/c1/messages/m1:regenerate", body)
		if r.status != 200 || string(r.body) != `{"delta":{"text":"hi","offset":0}}`+"\n" {
			t.Fatalf("body %q: %d %q", body, r.status, r.body)
		}
		req := b.lastCall(t).req.(*chatv1.RegenerateRequest)
		if req.GetConversationId() != "c1" || req.GetId() != "m1" {
			t.Errorf("body %q: request = %v", body, req)
		}
	}
}

// TestStreamErrorBeforeFirstEvent: a call that fails before sending
// anything answers the ordinary envelope and status, whatever the Accept
// header.
func TestStreamErrorBeforeFirstEvent(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, tc := range []struct {
		err        error
		httpStatus int
		code       string
		header     string // name=value expected on the answer
	}{
		{status.Error(codes.Unauthenticated, "missing access token"), 401, "UNAUTHENTICATED", "Www-Authenticate=Bearer"},
		{status.Error(codes.NotFound, "conversation not found"), 404, "NOT_FOUND", ""},
		{mustStatus(t, codes.ResourceExhausted, "too many chats at once",
			&errdetails.RetryInfo{RetryDelay: durationpb.New(30 * time.Second)}), 429, "RESOURCE_EXHAUSTED", "Retry-After=30"},
		{mustStatus(t, codes.InvalidArgument, "validation failed", &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "content", Description: "must not be empty"}},
		}), 400, "INVALID_ARGUMENT", ""},
		{status.Error(codes.Unavailable, "dial tcp 10.0.0.7:50053: connection refused"), 503, "UNAVAILABLE", ""},
	} {
		for _, route := range streamRoutes {
			for _, accept := range []string{"text/event-stream", ""} {
				t.Run(route.rpc+"/"+tc.code+"/"+accept, func(t *testing.T) {
					b.setFail(tc.err)
					r := g.do(route.method, route.path, route.body, "Accept", accept)
					e := envelopeOf(t, r, tc.httpStatus, tc.code)
					if st := status.Convert(tc.err); tc.code != "UNAVAILABLE" && e.Error.Message != st.Message() {
						t.Errorf("message = %q", e.Error.Message)
					}
					if tc.code == "UNAVAILABLE" && strings.Contains(string(r.body), "10.0.0.7") {
						t.Errorf("transport error leaked: %s", r.body)
					}
					if tc.code == "INVALID_ARGUMENT" && (len(e.Error.Details) != 1 || e.Error.Details[0].Field != "content") {
						t.Errorf("details = %+v", e.Error.Details)
					}
					if name, value, ok := strings.Cut(tc.header, "="); ok && r.header.Get(name) != value {
						t.Errorf("%s = %q, want %q", name, r.header.Get(name), value)
					}
					if got := b.lastCall(t).method; got != route.rpc {
						t.Errorf("backend got %s", got)
					}
				})
			}
		}
	}
	b.setFail(nil)

	// A stream that ends at once is an empty 200 stream.
	b.setStream(func(proto.Message, chatStream) error { return nil })
	for _, route := range streamRoutes {
		r := g.do(route.method, route.path, route.body)
		if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("%s: empty stream = %d %q %q", route.rpc, r.status, r.header.Get("Content-Type"), r.body)
		}
	}
}

// TestStreamErrorMidStream: once the 200 is out, a status that ends the
// stream becomes a final error event with the envelope's mapping and
// scrubbing.
func TestStreamErrorMidStream(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	const secret = "segfault in /src/provider.cc:12"
	for _, tc := range []struct {
		name    string
		err     error
		code    string
		message string
		details int
	}{
		{"passes", mustStatus(t, codes.FailedPrecondition, "conversation is archived", &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "conversation_id", Description: "archived"}},
		}), "FAILED_PRECONDITION", "conversation is archived", 1},
		{"scrubbed", status.Error(codes.Internal, secret), "INTERNAL", "internal error", 0},
		{"transport", status.Error(codes.Unavailable, "error reading from server: EOF"), "UNAVAILABLE", "service unavailable, retry later", 0},
	} {
		for _, run := range streamRuns() {
			t.Run(tc.name+"/"+run.name, func(t *testing.T) {
				b.setStream(func(_ proto.Message, s chatStream) error {
					if err := s.Send(deltaEvent("Hel")); err != nil {
						return err
					}
					if err := s.Send(deltaEvent("lo")); err != nil {
						return err
					}
					return tc.err
				})
				ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
				defer cancel()
				f := run.framing
				resp := openStream(t, g, ctx, run.method, run.path, run.body, "Accept", f.accept, "X-Request-Id", "rid-mid")
				if resp.StatusCode != 200 {
					t.Fatalf("status = %d", resp.StatusCode)
				}
				events := newEventReader(t, resp, f.sse)
				events.next()
				events.next()
				name, data := events.next()
				events.end()
				if name != "error" {
					t.Fatalf("last event = %s %s", name, data)
				}
				// The SSE data and the NDJSON line are both {"error": {...}}.
				e := envelopeFrom(t, data)
				if e.Error.Code != tc.code || e.Error.Message != tc.message ||
					len(e.Error.Details) != tc.details || e.Error.RequestID != "rid-mid" {
					t.Errorf("error event = %s", data)
				}
				if strings.Contains(data, "provider.cc") {
					t.Errorf("internals leaked: %s", data)
				}
			})
		}
	}
	if !strings.Contains(g.logs.String(), "provider.cc:12") {
		t.Error("the scrubbed original is not in the log")
	}
}

// envelopeFrom parses an error event's data, checking every envelope field
// is present and details is an array.
func envelopeFrom(t *testing.T, data string) envelope {
	t.Helper()
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal([]byte(data), &raw); err != nil || raw.Error == nil {
		t.Fatalf("not an envelope: %s (%v)", data, err)
	}
	for _, k := range []string{"code", "message", "details", "request_id"} {
		if _, ok := raw.Error[k]; !ok {
			t.Errorf("envelope lacks %q: %s", k, data)
		}
	}
	if d := string(raw.Error["details"]); !strings.HasPrefix(d, "[") {
		t.Errorf("details = %s, want an array", d)
	}
	var e envelope
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestStreamErrorEventOfTheService: an error event the service writes itself
// reaches the client as the envelope, with the gateway's request id; only
// codes that can carry internals are scrubbed, and a status after it adds no
// second error event.
func TestStreamErrorEventOfTheService(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, tc := range []struct {
		name     string
		sent     *chatv1.Error
		after    error
		code     string
		message  string
		details  int
		noSecret bool
	}{
		{"provider", &chatv1.Error{Code: "UNAVAILABLE", Message: "the model provider cannot be reached"},
			nil, "UNAVAILABLE", "the model provider cannot be reached", 0, false},
		{"validation", &chatv1.Error{Code: "INVALID_ARGUMENT", Message: "validation failed", RequestId: "other",
			Details: []*chatv1.FieldViolation{{Field: "model", Description: "unknown model"}}},
			nil, "INVALID_ARGUMENT", "validation failed", 1, false},
		{"internal", &chatv1.Error{Code: "DATA_LOSS", Message: "row at /var/lib/pg corrupt",
			Details: []*chatv1.FieldViolation{{Field: "x", Description: "/var/lib/pg"}}},
			status.Error(codes.Internal, "and then this"), "DATA_LOSS", "internal error", 0, true},
		{"unknown code", &chatv1.Error{Code: "WEIRD", Message: "/var/lib/pg"},
			nil, "UNKNOWN", "internal error", 0, true},
	} {
		for _, run := range streamRuns() {
			t.Run(tc.name+"/"+run.name, func(t *testing.T) {
				b.setStream(func(_ proto.Message, s chatStream) error {
					if err := s.Send(deltaEvent("Hel")); err != nil {
						return err
					}
					if err := s.Send(&chatv1.ChatEvent{Event: &chatv1.ChatEvent_Error{Error: tc.sent}}); err != nil {
						return err
					}
					return tc.after
				})
				ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
				defer cancel()
				f := run.framing
				resp := openStream(t, g, ctx, run.method, run.path, run.body, "Accept", f.accept, "X-Request-Id", "rid-svc")
				events := newEventReader(t, resp, f.sse)
				events.next()
				name, data := events.next()
				events.end()
				if name != "error" {
					t.Fatalf("event = %s %s", name, data)
				}
				e := envelopeFrom(t, data)
				if e.Error.Code != tc.code || e.Error.Message != tc.message ||
					len(e.Error.Details) != tc.details || e.Error.RequestID != "rid-svc" {
					t.Errorf("error event = %s", data)
				}
				if tc.noSecret && strings.Contains(data, "/var/lib/pg") {
					t.Errorf("internals leaked: %s", data)
				}
			})
		}
	}
}

// TestStreamClientDisconnectCancelsUpstream: the client hangs up mid-stream
// and the service sees its call's context end.
func TestStreamClientDisconnectCancelsUpstream(t *testing.T) {
	for _, run := range streamRuns() {
		t.Run(run.name, func(t *testing.T) {
			g, b := newGateway(t, server.Options{})
			cancelled := make(chan error, 1)
			// Lets the fake go if the test fails, so that the servers can stop.
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			b.setStream(func(_ proto.Message, s chatStream) error {
				if err := s.Send(deltaEvent("Hel")); err != nil {
					return err
				}
				select {
				case <-s.Context().Done(): // Only the gateway's cancel ends it.
					cancelled <- s.Context().Err()
					return s.Context().Err()
				case <-release:
					return nil
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp := openStream(t, g, ctx, run.method, run.path, run.body, "Accept", run.framing.accept)
			if name, data := newEventReader(t, resp, run.framing.sse).next(); name != "delta" {
				t.Fatalf("first event = %s %s", name, data)
			}
			cancel() // Hang up.

			waitClosedUpstream(t, cancelled)
		})
	}
}

// TestStreamBadBodies: the body of a POST route is decoded like any
// other: one JSON value of the request message, no unknown fields.
func TestStreamBadBodies(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, tc := range []struct {
		name, body, message string
	}{
		{"unknown field", `{"model":"m","temperature":0.2}`, `invalid JSON body: (line 1:14): unknown field "temperature"`},
		{"malformed", `{"model":"m"`, "malformed JSON body: unexpected end of input"},
		{"not JSON", `model=m`, "malformed JSON body: "},
		{"wrong type", `{"model":5}`, "invalid JSON body: "},
		{"two values", `{"model":"m"} {}`, "malformed JSON body: data after the JSON value"},
		{"not an object", `["m"]`, "invalid JSON body: "},
	} {
		for _, route := range streamRoutes {
			if route.method != "POST" {
				continue
			}
			for _, accept := range []string{"text/event-stream", ""} {
				t.Run(route.rpc+"/"+tc.name+"/"+accept, func(t *testing.T) {
					r := g.do(route.method, route.path, tc.body, "Accept", accept)
					e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
					if !strings.HasPrefix(e.Error.Message, tc.message) {
						t.Errorf("message = %q, want prefix %q", e.Error.Message, tc.message)
					}
				})
			}
		}
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}
}

func TestStreamCORS(t *testing.T) {
	g, _ := newGateway(t, server.Options{CORSAllowedOrigins: []string{"https://app.example"}})
	for _, route := range streamRoutes {
		r := g.do(route.method, route.path, route.body, "Origin", "https://app.example", "Accept", "text/event-stream")
		if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
			t.Errorf("%s: status %d, Allow-Origin %q", route.rpc, r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
		if want := "event: delta\nid: 2\ndata: {\"text\":\"hi\",\"offset\":0}\n\n"; string(r.body) != want {
			t.Errorf("%s: body = %q, want %q", route.rpc, r.body, want)
		}
	}
}
