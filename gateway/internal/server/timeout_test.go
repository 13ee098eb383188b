package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// newServedGateway serves the gateway on the http.Server of server.HTTPServer
// (what main runs), so that its header timeout applies too.
func newServedGateway(t *testing.T, opts server.Options) (*gw, *backend, string) {
	t.Helper()
	b := startBackend(t)
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := server.New(context.Background(), server.Upstreams{
		Auth: dial(t, b.addr), Conversation: dial(t, b.addr), Message: dial(t, b.addr),
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = server.HTTPServer(h, opts)
	ts.Start()
	t.Cleanup(ts.Close)
	return &gw{t: t, url: ts.URL, logs: logs}, b, ts.Listener.Addr().String()
}

// trickle writes s one byte every interval until it is written or a write
// fails (the server closed the connection).
func trickle(c net.Conn, s string, interval time.Duration) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		time.Sleep(interval)
	}
}

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, r io.Reader, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// docs/api.md "Limits at the gateway": a body sent too slowly is answered 408 in the
// envelope, and the connection is closed.
func TestSlowBodyTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	g, b, addr := newServedGateway(t, server.Options{ReadTimeout: timeout})
	for _, path := range []string{"/v1/auth/login", "/v1/conversations/c1/chat"} {
		t.Run(path, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			body := `{"login":"bob","password":"a password that takes long to type"}`
			start := time.Now()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
				"X-Request-Id: slow\r\nContent-Length: %d\r\n\r\n", path, len(body))
			go trickle(c, body, 50*time.Millisecond) // 3.5 s in all

			br := bufio.NewReader(c)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			e := envelopeOf(t, response{status: resp.StatusCode, header: resp.Header, body: raw},
				http.StatusRequestTimeout, "DEADLINE_EXCEEDED")
			if e.Error.Message != "request body not received within 300ms" {
				t.Errorf("message = %q", e.Error.Message)
			}
			if elapsed < timeout || elapsed > 2*time.Second {
				t.Errorf("answered after %v, want about %v", elapsed, timeout)
			}
			if !resp.Close {
				t.Error("the answer does not close the connection")
			}
			if !closedWithin(c, br, time.Second) {
				t.Error("the connection is still open")
			}
		})
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}
	if !strings.Contains(g.logs.String(), `"code":"DEADLINE_EXCEEDED"`) {
		t.Error("the access log lacks the code")
	}
}

// Headers sent too slowly: net/http closes the connection (it has no way to
// answer a request it could not read).
func TestSlowHeadersTimeOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	_, b, addr := newServedGateway(t, server.Options{ReadTimeout: timeout})
	start := time.Now() // Before the server can start its clock.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go trickle(c, "GET /v1/conversations HTTP/1.1\r\nHost: x\r\nX-Long: "+strings.Repeat("a", 60)+"\r\n\r\n",
		50*time.Millisecond)
	if !closedWithin(c, c, 3*time.Second) {
		t.Fatal("the connection is still open")
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("closed after %v, before the timeout", elapsed)
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}
}

// The read timeout never cuts an answer: a Chat stream that lasts many
// timeouts ends normally, and a kept-alive connection serves the next
// request.
func TestReadTimeoutDoesNotCutStreams(t *testing.T) {
	const timeout = 200 * time.Millisecond
	g, b, _ := newServedGateway(t, server.Options{ReadTimeout: timeout})
	b.setChat(func(_ *chatv1.ChatRequest, s grpc.ServerStreamingServer[chatv1.ChatEvent]) error {
		for _, text := range []string{"a", "b", "c"} {
			if err := s.Send(&chatv1.ChatEvent{Event: &chatv1.ChatEvent_Delta{Delta: &chatv1.ChatDelta{Text: text}}}); err != nil {
				return err
			}
			time.Sleep(3 * timeout)
		}
		return nil
	})
	r := g.do("POST", "/v1/conversations/c1/chat", `{"content":"hi"}`)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := strings.Count(string(r.body), `"delta"`); got != 3 {
		t.Errorf("%d events, want 3: %s", got, r.body)
	}

	// Slow unary answers, with and without a body, on a kept-alive
	// connection.
	b.setDelay(3 * timeout)
	for range 2 {
		if r := g.do("POST", "/v1/auth/login", `{"login":"bob","password":"x"}`); r.status != 200 {
			t.Fatalf("POST: status %d: %s", r.status, r.body)
		}
		if r := g.do("GET", "/v1/conversations/c1", ""); r.status != 200 {
			t.Fatalf("GET: status %d: %s", r.status, r.body)
		}
	}
}
