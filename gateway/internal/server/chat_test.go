package server_test

// POST /v1/conversations/{conversation_id}/chat: the gateway's own handler
// (chat.go) against a fake MessageService.Chat over real gRPC.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
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
	"google.golang.org/protobuf/types/known/durationpb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// streamTimeout bounds every streaming test, so a gateway that buffers (or
// never ends a stream) fails with a message instead of hanging.
const streamTimeout = 20 * time.Second

type chatStream = grpc.ServerStreamingServer[chatv1.ChatEvent]

func messageEvent(content string) *chatv1.ChatEvent {
	return &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Message{Message: &chatv1.Message{
		Id: "m1", ConversationId: "c1", Role: "user", Content: content, Status: "complete",
	}}}
}

func deltaEvent(text string) *chatv1.ChatEvent {
	return &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Delta{Delta: &chatv1.ChatDelta{Text: text}}}
}

func doneEvent() *chatv1.ChatEvent {
	return &chatv1.ChatEvent{Event: &chatv1.ChatEvent_Done{Done: &chatv1.ChatDone{
		Message: &chatv1.Message{Id: "m2", ConversationId: "c1", Role: "assistant", Content: "Hello",
			Status: "complete", Model: "echo", Metadata: map[string]string{"k": "v"}},
		Usage: &chatv1.Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5},
	}}}
}

// The exact bytes of each event's JSON: proto names, every field present,
// compact.
const (
	messageJSON = `{"id":"m1","conversation_id":"c1","role":"user","content":"hello","status":"complete","model":"","metadata":{},"created_at":null,"updated_at":null}`
	doneJSON    = `{"message":{"id":"m2","conversation_id":"c1","role":"assistant","content":"Hello","status":"complete","model":"echo","metadata":{"k":"v"},"created_at":null,"updated_at":null},"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
)

// openChat starts a Chat request and returns the response once its header
// is in; the body is still streaming. headers are name, value pairs.
func openChat(t *testing.T, g *gw, ctx context.Context, body string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", g.url+"/v1/conversations/c1/chat", strings.NewReader(body))
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
	ev, data, blank := line(), line(), line()
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

var framings = []struct {
	name        string
	accept      string
	sse         bool
	contentType string
}{
	{"SSE", "text/event-stream", true, "text/event-stream"},
	{"SSE among others", "application/json;q=0.9, Text/Event-Stream; charset=utf-8", true, "text/event-stream"},
	{"NDJSON", "", false, "application/x-ndjson"},
	{"NDJSON for application/json", "application/json", false, "application/x-ndjson"},
	{"NDJSON when SSE has q=0", "text/event-stream;q=0, */*", false, "application/x-ndjson"},
}

// TestChatFraming runs message, delta, delta, done in both framings. The
// fake sends each event only after the test has read the previous one, so
// the test would time out if any layer (the gateway's writer, the
// metrics/access-log wrapper, net/http) held an event back.
func TestChatFraming(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, f := range framings {
		t.Run(f.name, func(t *testing.T) {
			read := make(chan struct{})
			b.setChat(func(r *chatv1.ChatRequest, s chatStream) error {
				for i, ev := range []*chatv1.ChatEvent{messageEvent(r.GetContent()), deltaEvent("Hel"), deltaEvent("lo"), doneEvent()} {
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
			resp := openChat(t, g, ctx, `{"content":"hello","model":"echo"}`,
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
			want := []struct{ name, sse, ndjson string }{
				{"message", messageJSON, `{"message":` + messageJSON + `}`},
				{"delta", `{"text":"Hel"}`, `{"delta":{"text":"Hel"}}`},
				{"delta", `{"text":"lo"}`, `{"delta":{"text":"lo"}}`},
				{"done", doneJSON, `{"done":` + doneJSON + `}`},
			}
			for i, w := range want {
				name, data := events.next()
				wantData := w.ndjson
				if f.sse {
					wantData = w.sse
				}
				if name != w.name || data != wantData {
					t.Errorf("event %d = %s %s\nwant %s %s", i, name, data, w.name, wantData)
				}
				if i < len(want)-1 {
					read <- struct{}{} // Only now may the fake send the next one.
				}
			}
			events.end()

			c := b.lastCall(t)
			req := c.req.(*chatv1.ChatRequest)
			if c.method != "Chat" || req.GetConversationId() != "c1" || req.GetContent() != "hello" || req.GetModel() != "echo" {
				t.Errorf("request = %s %v", c.method, req)
			}
			if got := c.md.Get("authorization"); !slices.Equal(got, []string{"Bearer tok-1"}) {
				t.Errorf("authorization = %q", got)
			}
			if got := c.md.Get("x-request-id"); !slices.Equal(got, []string{"rid-chat"}) {
				t.Errorf("x-request-id = %q", got)
			}
		})
	}

	// Counted and logged under its route template with the 200 of the stream.
	r := g.do("GET", "/metrics", "")
	if want := `gateway_http_requests_total{code="200",method="POST",route="/v1/conversations/{conversation_id}/chat"} 5`; !strings.Contains(string(r.body), want) {
		t.Errorf("metrics lack %s", want)
	}
}

// TestChatErrorBeforeFirstEvent: a call that fails before sending anything
// answers the ordinary envelope and status, whatever the Accept header.
func TestChatErrorBeforeFirstEvent(t *testing.T) {
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
		for _, accept := range []string{"text/event-stream", ""} {
			t.Run(tc.code+"/"+accept, func(t *testing.T) {
				b.setFail(tc.err)
				r := g.do("POST", "/v1/conversations/c1/chat", `{"content":"hello"}`, "Accept", accept)
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
			})
		}
	}
	b.setFail(nil)

	// A stream that ends at once is an empty 200 stream.
	b.setChat(func(*chatv1.ChatRequest, chatStream) error { return nil })
	r := g.do("POST", "/v1/conversations/c1/chat", `{"content":"hello"}`)
	if r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("empty stream = %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
}

// TestChatErrorMidStream: once the 200 is out, a status that ends the stream
// becomes a final error event with the envelope's mapping and scrubbing.
func TestChatErrorMidStream(t *testing.T) {
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
		for _, f := range framings[:3] {
			t.Run(tc.name+"/"+f.name, func(t *testing.T) {
				b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
					if err := s.Send(messageEvent("hello")); err != nil {
						return err
					}
					if err := s.Send(deltaEvent("Hel")); err != nil {
						return err
					}
					return tc.err
				})
				ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
				defer cancel()
				resp := openChat(t, g, ctx, `{"content":"hello"}`, "Accept", f.accept, "X-Request-Id", "rid-mid")
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

// TestChatErrorEventOfTheService: an error event the service writes itself
// reaches the client as the envelope, with the gateway's request id; only
// codes that can carry internals are scrubbed, and a status after it adds no
// second error event.
func TestChatErrorEventOfTheService(t *testing.T) {
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
		for _, f := range framings[:3] {
			t.Run(tc.name+"/"+f.name, func(t *testing.T) {
				b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
					if err := s.Send(messageEvent("hello")); err != nil {
						return err
					}
					if err := s.Send(&chatv1.ChatEvent{Event: &chatv1.ChatEvent_Error{Error: tc.sent}}); err != nil {
						return err
					}
					return tc.after
				})
				ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
				defer cancel()
				resp := openChat(t, g, ctx, `{"content":"hello"}`, "Accept", f.accept, "X-Request-Id", "rid-svc")
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

// TestChatClientDisconnectCancelsUpstream: the client hangs up mid-stream and
// the service sees its call's context end.
func TestChatClientDisconnectCancelsUpstream(t *testing.T) {
	for _, f := range framings[:3] {
		t.Run(f.name, func(t *testing.T) {
			g, b := newGateway(t, server.Options{})
			cancelled := make(chan error, 1)
			// Lets the fake go if the test fails, so that the servers can stop.
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
				if err := s.Send(messageEvent("hello")); err != nil {
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
			resp := openChat(t, g, ctx, `{"content":"hello"}`, "Accept", f.accept)
			if name, data := newEventReader(t, resp, f.sse).next(); name != "message" {
				t.Fatalf("first event = %s %s", name, data)
			}
			cancel() // Hang up.

			select {
			case err := <-cancelled:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("upstream context ended with %v, want context.Canceled", err)
				}
			case <-time.After(streamTimeout):
				t.Fatal("the upstream call was not cancelled")
			}
		})
	}
}

func TestChatBadBodies(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, tc := range []struct {
		name, body, message string
	}{
		{"unknown field", `{"content":"hi","temperature":0.2}`, `invalid JSON body: (line 1:17): unknown field "temperature"`},
		{"malformed", `{"content":"hi"`, "malformed JSON body: unexpected end of input"},
		{"not JSON", `content=hi`, "malformed JSON body: "},
		{"wrong type", `{"content":5}`, "invalid JSON body: "},
	} {
		for _, accept := range []string{"text/event-stream", ""} {
			t.Run(tc.name+"/"+accept, func(t *testing.T) {
				r := g.do("POST", "/v1/conversations/c1/chat", tc.body, "Accept", accept)
				e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
				if !strings.HasPrefix(e.Error.Message, tc.message) {
					t.Errorf("message = %q, want prefix %q", e.Error.Message, tc.message)
				}
			})
		}
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}
}

func TestChatCORS(t *testing.T) {
	g, _ := newGateway(t, server.Options{CORSAllowedOrigins: []string{"https://app.example"}})
	r := g.do("POST", "/v1/conversations/c1/chat", `{"content":"hello"}`,
		"Origin", "https://app.example", "Accept", "text/event-stream")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("status %d, Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	if want := "event: delta\ndata: {\"text\":\"hi\"}\n\n"; string(r.body) != want {
		t.Errorf("body = %q, want %q", r.body, want)
	}
}
