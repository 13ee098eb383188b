package server_test

// Durable replies at the gateway (docs/api.md "Resuming and cancelling a
// reply"): the SSE ids of deltas, GET .../messages/{id}/stream with
// Last-Event-ID or ?after=, and POST .../messages/{id}:cancel.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

const streamReplyPath = "/v1/conversations/c1/messages/m2/stream"

// TestStreamDeltaIDsCountCodePoints: the id of a delta is its offset plus
// its text's length in Unicode code points, not bytes; the reply and error
// events have no id. NDJSON carries the offset in the JSON and no id.
func TestStreamDeltaIDsCountCodePoints(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setStream(func(_ proto.Message, s chatStream) error {
		for _, ev := range []*chatv1.ChatEvent{
			replyEvent(),
			deltaAt("héllo", 0),   // 5 code points, 6 bytes
			deltaAt("🙂!", 5),      // 2 code points, 5 bytes
			deltaAt("日本語", 7),     // 3 code points, 9 bytes
			deltaAt("", 10),       // nothing new: the same id again
			deltaAt("x", 1<<31-1), // the largest offset
			{Event: &chatv1.ChatEvent_Error{Error: &chatv1.Error{Code: "UNAVAILABLE", Message: "the model provider cannot be reached"}}},
		} {
			if err := s.Send(ev); err != nil {
				return err
			}
		}
		return nil
	})
	const errorJSON = `{"error":{"code":"UNAVAILABLE","message":"the model provider cannot be reached","details":[],"request_id":"rid-ids"}}`
	wantSSE := "event: reply\ndata: " + replyJSON + "\n\n" +
		"event: delta\nid: 5\ndata: {\"text\":\"héllo\",\"offset\":0}\n\n" +
		"event: delta\nid: 7\ndata: {\"text\":\"🙂!\",\"offset\":5}\n\n" +
		"event: delta\nid: 10\ndata: {\"text\":\"日本語\",\"offset\":7}\n\n" +
		"event: delta\nid: 10\ndata: {\"text\":\"\",\"offset\":10}\n\n" +
		"event: delta\nid: 2147483648\ndata: {\"text\":\"x\",\"offset\":2147483647}\n\n" +
		"event: error\ndata: " + errorJSON + "\n\n"
	wantNDJSON := `{"reply":` + replyJSON + "}\n" +
		`{"delta":{"text":"héllo","offset":0}}` + "\n" +
		`{"delta":{"text":"🙂!","offset":5}}` + "\n" +
		`{"delta":{"text":"日本語","offset":7}}` + "\n" +
		`{"delta":{"text":"","offset":10}}` + "\n" +
		`{"delta":{"text":"x","offset":2147483647}}` + "\n" +
		errorJSON + "\n"
	for _, route := range streamRoutes {
		for accept, want := range map[string]string{"text/event-stream": wantSSE, "": wantNDJSON} {
			r := g.do(route.method, route.path, route.body, "Accept", accept, "X-Request-Id", "rid-ids")
			if r.status != 200 || string(r.body) != want {
				t.Errorf("%s %q: %d\n%s\nwant\n%s", route.rpc, accept, r.status, r.body, want)
			}
		}
	}
}

// TestStreamReplyOffset: after comes from ?after= or Last-Event-ID; the
// header wins when both are given (an EventSource reconnects to its first
// URL with the id of the last event it read), an empty header is none, and
// the path wins over the query.
func TestStreamReplyOffset(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, tc := range []struct {
		name, query string
		headers     []string
		want        int32
	}{
		{"none", "", nil, 0},
		{"query", "?after=5", nil, 5},
		{"query zero", "?after=0", nil, 0},
		{"header", "", []string{"Last-Event-ID", "7"}, 7},
		{"header in lower case", "", []string{"last-event-id", "7"}, 7},
		{"header wins", "?after=5", []string{"Last-Event-ID", "7"}, 7},
		{"header wins when smaller", "?after=9", []string{"Last-Event-ID", "2"}, 2},
		{"header zero wins", "?after=9", []string{"Last-Event-ID", "0"}, 0},
		{"empty header is none", "?after=5", []string{"Last-Event-ID", ""}, 5},
		{"largest", "", []string{"Last-Event-ID", "2147483647"}, 1<<31 - 1},
		{"path over query", "?after=3&conversation_id=c9&id=m9", nil, 3},
		{"other parameters ignored", "?after=4&model=x", nil, 4},
	} {
		for _, accept := range []string{"text/event-stream", ""} {
			t.Run(tc.name+"/"+accept, func(t *testing.T) {
				r := g.do("GET", streamReplyPath+tc.query, "", append([]string{"Accept", accept}, tc.headers...)...)
				if r.status != 200 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
				c := b.lastCall(t)
				req, ok := c.req.(*chatv1.StreamReplyRequest)
				if !ok || c.method != "StreamReply" {
					t.Fatalf("backend got %s %v", c.method, c.req)
				}
				if req.GetConversationId() != "c1" || req.GetId() != "m2" || req.GetAfter() != tc.want {
					t.Errorf("request = %v, want after %d", req, tc.want)
				}
			})
		}
	}
}

// TestStreamReplyBadOffset: a malformed or negative offset, in the query or
// the header, is 400 with a detail naming it, before any call; every bad
// one is listed, the query's first.
func TestStreamReplyBadOffset(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	const integer = "must be an integer from 0 to 2147483647"
	type detail struct{ field, description string }
	for _, tc := range []struct {
		name, query string
		headers     [][2]string
		want        []detail
	}{
		{"negative", "?after=-1", nil, []detail{{"after", integer}}},
		{"not a number", "?after=abc", nil, []detail{{"after", integer}}},
		{"fraction", "?after=1.5", nil, []detail{{"after", integer}}},
		{"too large", "?after=2147483648", nil, []detail{{"after", integer}}},
		{"empty", "?after=", nil, []detail{{"after", integer}}},
		{"twice", "?after=1&after=2", nil, []detail{{"after", "must be given once"}}},
		{"header negative", "", [][2]string{{"Last-Event-ID", "-1"}}, []detail{{"Last-Event-ID", integer}}},
		{"header not a number", "", [][2]string{{"Last-Event-ID", "abc"}}, []detail{{"Last-Event-ID", integer}}},
		{"header suffix", "", [][2]string{{"Last-Event-ID", "5x"}}, []detail{{"Last-Event-ID", integer}}},
		{"header exponent", "", [][2]string{{"Last-Event-ID", "1e3"}}, []detail{{"Last-Event-ID", integer}}},
		{"header too large", "", [][2]string{{"Last-Event-ID", "2147483648"}}, []detail{{"Last-Event-ID", integer}}},
		{"header not UTF-8", "", [][2]string{{"Last-Event-ID", "\xff"}}, []detail{{"Last-Event-ID", integer}}},
		{"header twice", "", [][2]string{{"Last-Event-ID", "1"}, {"Last-Event-ID", "2"}}, []detail{{"Last-Event-ID", "must be given once"}}},
		{"both bad", "?after=-1", [][2]string{{"Last-Event-ID", "x"}}, []detail{{"after", integer}, {"Last-Event-ID", integer}}},
		{"query bad, header good", "?after=-5", [][2]string{{"Last-Event-ID", "5"}}, []detail{{"after", integer}}},
		{"query good, header bad", "?after=5", [][2]string{{"Last-Event-ID", "-5"}}, []detail{{"Last-Event-ID", integer}}},
	} {
		for _, accept := range []string{"text/event-stream", ""} {
			t.Run(tc.name+"/"+accept, func(t *testing.T) {
				req, err := http.NewRequest("GET", g.url+streamReplyPath+tc.query, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Accept", accept)
				for _, h := range tc.headers {
					req.Header.Add(h[0], h[1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				e := envelopeOf(t, response{status: resp.StatusCode, header: resp.Header, body: body}, 400, "INVALID_ARGUMENT")
				if e.Error.Message != "validation failed" {
					t.Errorf("message = %q", e.Error.Message)
				}
				var got []detail
				for _, d := range e.Error.Details {
					got = append(got, detail{d.Field, d.Description})
				}
				if len(got) != len(tc.want) {
					t.Fatalf("details = %q, want %q", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("detail %d = %q, want %q", i, got[i], tc.want[i])
					}
				}
			})
		}
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}

	// Last-Event-ID means nothing to the other routes.
	if r := g.do("GET", "/v1/conversations/c1/messages/m2", "", "Last-Event-ID", "x"); r.status != 200 {
		t.Errorf("GetMessage with Last-Event-ID: %d %s", r.status, r.body)
	}
	for _, route := range streamRoutes[:2] {
		if r := g.do(route.method, route.path, route.body, "Last-Event-ID", "-1"); r.status != 200 {
			t.Errorf("%s with Last-Event-ID: %d %s", route.rpc, r.status, r.body)
		}
	}
}

// TestStreamReplyMethods: the stream is GET only; a body sent with it is
// read and ignored, as grpc-gateway's GET handlers do.
func TestStreamReplyMethods(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		r := g.do(method, streamReplyPath, "{}")
		envelopeOf(t, r, 405, "UNIMPLEMENTED")
		if got := r.header.Get("Allow"); got != "GET" {
			t.Errorf("%s: Allow = %q", method, got)
		}
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}
	r := g.do("GET", streamReplyPath+"?after=2", `{"after":"9","x":1}`)
	if r.status != 200 || b.lastCall(t).req.(*chatv1.StreamReplyRequest).GetAfter() != 2 {
		t.Errorf("GET with a body: %d %s, request %v", r.status, r.body, b.lastCall(t).req)
	}
	// A missing reply is an ordinary 404, not a stream.
	b.setFail(status.Error(codes.NotFound, "message not found"))
	if e := envelopeOf(t, g.do("GET", streamReplyPath, "", "Accept", "text/event-stream"), 404, "NOT_FOUND"); e.Error.Message != "message not found" {
		t.Errorf("message = %q", e.Error.Message)
	}
}

// TestStreamReplyCORS: a cross-origin client may send Last-Event-ID.
func TestStreamReplyCORS(t *testing.T) {
	g, _ := newGateway(t, server.Options{CORSAllowedOrigins: []string{"https://app.example"}})
	r := g.do("OPTIONS", streamReplyPath, "",
		"Origin", "https://app.example",
		"Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "authorization,last-event-id")
	if r.status >= 300 {
		t.Errorf("preflight status = %d", r.status)
	}
	if got := strings.ToLower(r.header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "last-event-id") {
		t.Errorf("Allow-Headers = %q", got)
	}
}

// TestCancelReply: POST .../messages/{id}:cancel answers 200 with the
// message; its body is empty or {} (path parameters win); other methods are
// 405 with Allow: POST.
func TestCancelReply(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	const path = "/v1/conversations/c1/messages/m2:cancel"
	for _, body := range []string{"", "{}", `{"conversation_id":"c9","id":"m9"}`} {
		r := g.do("POST", path, body, "Accept", "text/event-stream")
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("body %q: %d %q %s", body, r.status, r.header.Get("Content-Type"), r.body)
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil || m["id"] != "m2" || m["status"] != "incomplete" ||
			m["content"] != "Hel" || m["conversation_id"] != "c1" {
			t.Errorf("body %q: answer %s", body, r.body)
		}
		c := b.lastCall(t)
		if req, ok := c.req.(*chatv1.CancelReplyRequest); !ok || c.method != "CancelReply" ||
			req.GetConversationId() != "c1" || req.GetId() != "m2" {
			t.Errorf("body %q: backend got %s %v", body, c.method, c.req)
		}
	}
	calls := b.callCount()
	envelopeOf(t, g.do("POST", path, `{"reason":"x"}`), 400, "INVALID_ARGUMENT")
	for _, method := range []string{"GET", "PUT", "PATCH", "DELETE"} {
		r := g.do(method, path, "")
		envelopeOf(t, r, 405, "UNIMPLEMENTED")
		if got := r.header.Get("Allow"); got != "POST" {
			t.Errorf("%s: Allow = %q", method, got)
		}
	}
	if n := b.callCount(); n != calls {
		t.Errorf("the backend was called %d times", n-calls)
	}
	b.setFail(status.Error(codes.NotFound, "message not found"))
	envelopeOf(t, g.do("POST", path, ""), 404, "NOT_FOUND")
}

// TestStreamReplyHangUp: a client that hangs up a resumed stream ends the
// StreamReply call (the reply itself is the service's to finish).
func TestStreamReplyHangUp(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	ended := make(chan struct{})
	b.setStream(func(_ proto.Message, s chatStream) error {
		defer close(ended)
		if err := s.Send(deltaAt("lo", 3)); err != nil {
			return err
		}
		<-s.Context().Done()
		return s.Context().Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	hangUp, stop := context.WithCancel(ctx)
	resp := openStream(t, g, hangUp, "GET", streamReplyPath, "", "Accept", "text/event-stream", "Last-Event-ID", "3")
	events := newEventReader(t, resp, true)
	if name, data := events.next(); name != "delta" || events.id != "5" || data != `{"text":"lo","offset":3}` {
		t.Fatalf("first event = %s %q %s", name, events.id, data)
	}
	stop()
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("the StreamReply call was not cancelled")
	}
}
