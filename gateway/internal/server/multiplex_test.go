package server_test

// The event streams carried on the gateway's few Multiplex calls
// (multiplex.go) and served on connections taken over from net/http
// (eventconn.go): streams in parallel keep their own events, a stream that
// waits holds no goroutine, a client that does not read or hangs up is let
// go, a broken call ends its streams, and Grpc-Timeout still ends a stream.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// TestParallelStreamsKeepTheirOwnEvents: 96 streams at once over the three
// routes, a quarter failing before their first event, a fifth hanging up
// after it, the rest reading three deltas that name their own request. On
// 8 shared calls, any mix-up of streams shows as another stream's text.
func TestParallelStreamsKeepTheirOwnEvents(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setStream(func(req proto.Message, s chatStream) error {
		name := nameOf(req)
		if strings.HasSuffix(name, "-fail") {
			return status.Error(codes.NotFound, "no conversation "+name)
		}
		for i := range 3 {
			if err := s.Send(deltaAt(fmt.Sprintf("%s#%d;", name, i), 0)); err != nil {
				return err
			}
		}
		return nil
	})
	const n = 96
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- oneParallelStream(g, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// nameOf is what a stream's request names: Chat's content, Regenerate's
// model, StreamReply's message id.
func nameOf(req proto.Message) string {
	switch r := req.(type) {
	case *chatv1.ChatRequest:
		return r.GetContent()
	case *chatv1.RegenerateRequest:
		return r.GetModel()
	case *chatv1.StreamReplyRequest:
		return r.GetId()
	}
	return ""
}

func oneParallelStream(g *gw, i int) error {
	name := fmt.Sprintf("s%d", i)
	if i%4 == 0 {
		name += "-fail"
	}
	hangUp := i%5 == 1
	var method, path, body string
	switch i % 3 {
	case 0:
		method, path, body = "POST", "/v1/conversations/c1/chat", fmt.Sprintf(`{"content":%q}`, name)
	case 1:
		method, path, body = "POST", "/v1/conversations/c1/messages/m1:regenerate", fmt.Sprintf(`{"model":%q}`, name)
	default:
		method, path = "GET", "/v1/conversations/c1/messages/"+name+"/stream"
	}
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, g.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	if strings.HasSuffix(name, "-fail") {
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(got), "no conversation "+name) {
			return fmt.Errorf("%s: status %d %s", name, resp.StatusCode, got)
		}
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", name, resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	if hangUp {
		line, err := r.ReadString('\n')
		if err != nil || !strings.Contains(line, name+"#0;") {
			return fmt.Errorf("%s: first line %q, %v", name, line, err)
		}
		return nil // the deferred Close hangs up
	}
	all, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	want := fmt.Sprintf(`{"delta":{"text":"%s#0;","offset":0}}
{"delta":{"text":"%s#1;","offset":0}}
{"delta":{"text":"%s#2;","offset":0}}
`, name, name, name)
	if string(all) != want {
		return fmt.Errorf("%s: got %q", name, all)
	}
	return nil
}

// rawStreams opens n streams with rawStream, contents s0, s1, ..., and
// returns their readers.
func rawStreams(t *testing.T, g *gw, n int) []*bufio.Reader {
	t.Helper()
	addr := strings.TrimPrefix(g.url, "http://")
	readers := make([]*bufio.Reader, n)
	for i := range n {
		_, readers[i] = rawStream(t, addr, fmt.Sprintf("s%d", i))
	}
	return readers
}

// rawStream opens Chat over a bare TCP connection (no client goroutines)
// and reads the answer's header and first chunk.
func rawStream(t *testing.T, addr, content string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	body := fmt.Sprintf(`{"content":%q}`, content)
	fmt.Fprintf(conn, "POST /v1/conversations/c1/chat HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	_ = conn.SetReadDeadline(time.Now().Add(streamTimeout))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if resp.StatusCode != 200 || !resp.Close ||
		len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, header %v, transfer encoding %v", resp.StatusCode, resp.Header, resp.TransferEncoding)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, `"delta"`) {
		t.Fatalf("first event %q, %v", line, err)
	}
	return conn, r
}

// holdChats makes Chat send a delta of its content, wait for release (or
// the stream's end), then send "end of <content>" and end.
func holdChats(b *backend, release <-chan struct{}) {
	b.setChat(func(r *chatv1.ChatRequest, s chatStream) error {
		if err := s.Send(deltaEvent(r.GetContent())); err != nil {
			return err
		}
		select {
		case <-release:
		case <-s.Context().Done():
			return s.Context().Err()
		}
		return s.Send(deltaAt("end of "+r.GetContent(), 1))
	})
}

// serverGoroutines counts the goroutines of the gateway's HTTP side: net/
// http's per-connection ones and the event stream handler's.
func serverGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "backgroundRead") ||
			strings.Contains(g, "internal/server.(*server).streamEvents") {
			n++
		}
	}
	return n
}

// TestWaitingStreamsHoldNoGoroutine: 200 streams, each after its first
// event and waiting for the next, hold no goroutine of the gateway's HTTP
// side (net/http's would be two a connection); each then ends with the
// last chunk, and its connection closes.
func TestWaitingStreamsHoldNoGoroutine(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	holdChats(b, release)
	const n = 200
	readers := rawStreams(t, g, n)
	if got := serverGoroutines(); got > 10 {
		t.Errorf("%d goroutines of the HTTP side hold %d waiting streams", got, n)
	}
	releaseAll()
	for i, r := range readers {
		rest, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		want := fmt.Sprintf("%x\r\n{\"delta\":{\"text\":\"end of s%d\",\"offset\":1}}\n\r\n0\r\n\r\n",
			len(fmt.Sprintf("{\"delta\":{\"text\":\"end of s%d\",\"offset\":1}}\n", i)), i)
		if string(rest) != want {
			t.Fatalf("stream %d ended %q, want %q", i, rest, want)
		}
	}
}

// TestStreamOfAClientThatDoesNotReadIsClosed: a client that stops reading
// while its stream goes on is let go once about a megabyte waits for it:
// its stream is closed upstream.
func TestStreamOfAClientThatDoesNotReadIsClosed(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	closed := make(chan error, 1)
	chunk := strings.Repeat("x", 64<<10)
	b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
		if err := s.Send(deltaEvent("first")); err != nil {
			return err
		}
		// 64 MiB at most: far more than loopback's buffers and the
		// gateway's megabyte.
		for range 1024 {
			if err := s.Send(deltaEvent(chunk)); err != nil {
				closed <- err
				return err
			}
		}
		closed <- nil
		return nil
	})
	rawStream(t, strings.TrimPrefix(g.url, "http://"), "hi") // never read again
	select {
	case err := <-closed:
		if status.Code(err) != codes.Canceled {
			t.Fatalf("the stream ended with %v, want it closed by the gateway", err)
		}
	case <-time.After(streamTimeout):
		t.Fatal("the stream of a client that does not read was not closed")
	}
}

// TestBrokenCallEndsItsStreams: the message service's end of the calls
// goes away; a waiting stream ends with an UNAVAILABLE error event, and the
// next stream opens a new call.
func TestBrokenCallEndsItsStreams(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
		if err := s.Send(deltaEvent("Hel")); err != nil {
			return err
		}
		<-s.Context().Done()
		return s.Context().Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	resp := openChat(t, g, ctx, `{"content":"hi"}`, "Accept", "text/event-stream")
	events := newEventReader(t, resp, true)
	if name, _ := events.next(); name != "delta" {
		t.Fatalf("first event %s", name)
	}
	b.breakCalls()
	name, data := events.next()
	events.end()
	if e := envelopeFrom(t, data); name != "error" || e.Error.Code != "UNAVAILABLE" {
		t.Fatalf("after the break: %s %s", name, data)
	}

	b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error { return s.Send(deltaEvent("again")) })
	r := g.do("POST", "/v1/conversations/c1/chat", `{"content":"hi"}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"again"`) {
		t.Fatalf("after the break: %d %s", r.status, r.body)
	}
}

// TestStreamTimeoutAfterTheFirstEvent: Grpc-Timeout bounds a taken-over
// stream as it bounded its call: an error event DEADLINE_EXCEEDED, and the
// stream closed upstream.
func TestStreamTimeoutAfterTheFirstEvent(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	closed := make(chan error, 1)
	b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
		if err := s.Send(deltaEvent("Hel")); err != nil {
			return err
		}
		<-s.Context().Done()
		closed <- s.Context().Err()
		return s.Context().Err()
	})
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	resp := openChat(t, g, ctx, `{"content":"hi"}`, "Accept", "text/event-stream", "Grpc-Timeout", "300m")
	events := newEventReader(t, resp, true)
	events.next()
	name, data := events.next()
	events.end()
	if e := envelopeFrom(t, data); name != "error" || e.Error.Code != "DEADLINE_EXCEEDED" {
		t.Fatalf("at the deadline: %s %s", name, data)
	}
	waitClosedUpstream(t, closed)
}

// TestDrainWaitsForTakenOverStreams: the gateway's drain (WaitStreams after
// http.Server.Shutdown) waits for a stream that left net/http, and the
// request's access log line is written when the stream ends, with all its
// bytes.
func TestDrainWaitsForTakenOverStreams(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	release := make(chan struct{})
	b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
		if err := s.Send(deltaEvent("Hel")); err != nil {
			return err
		}
		select {
		case <-release:
		case <-s.Context().Done():
			return s.Context().Err()
		}
		return s.Send(deltaAt(strings.Repeat("lo", 500), 3))
	})
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	resp := openChat(t, g, ctx, `{"content":"hi"}`, "X-Request-Id", "rid-drain")
	events := newEventReader(t, resp, false)
	events.next()
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	defer stop()
	if err := g.handler.WaitStreams(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitStreams with a stream going on: %v", err)
	}
	if strings.Contains(g.logs.String(), "rid-drain") {
		t.Error("the access log line was written before the stream ended")
	}
	close(release)
	events.next()
	events.end()
	if err := g.handler.WaitStreams(ctx); err != nil {
		t.Fatalf("WaitStreams after the end: %v", err)
	}
	var line string
	for _, l := range strings.Split(g.logs.String(), "\n") {
		if strings.Contains(l, `"request_id":"rid-drain"`) && strings.Contains(l, `"http request"`) {
			line = l
		}
	}
	if !strings.Contains(line, `"status":200`) || !strings.Contains(line, `"route":"/v1/conversations/{conversation_id}/chat"`) {
		t.Fatalf("access log line: %q", line)
	}
	var bytes int
	if _, err := fmt.Sscanf(line[strings.Index(line, `"bytes":`):], `"bytes":%d`, &bytes); err != nil || bytes < 1000 {
		t.Errorf("bytes %d (%v) in %q: the stream's bytes after the first event are not counted", bytes, err, line)
	}
}

// TestOldCallsTakeNoNewStreamsAndEndAfterTheirOwn: with MultiplexCallAge
// past, each new stream opens a new call (which round_robin may put on
// another replica); the old calls carry their streams to the end, then
// are half-closed.
func TestOldCallsTakeNoNewStreamsAndEndAfterTheirOwn(t *testing.T) {
	g, b := newGateway(t, server.Options{MultiplexCallAge: time.Nanosecond})
	release := make(chan struct{})
	holdChats(b, release)
	// 16 streams on 8 slots: each slot's second stream finds its first
	// call too old.
	const n = 16
	readers := rawStreams(t, g, n)
	if got := b.muxOpened.Load(); got != n {
		t.Errorf("%d Multiplex calls for %d streams, want one each", got, n)
	}
	if got := b.muxHalfClosed.Load(); got != 0 {
		t.Errorf("%d calls half-closed while their streams go on", got)
	}
	close(release)
	for i, r := range readers {
		rest, err := io.ReadAll(r)
		if err != nil || !strings.Contains(string(rest), fmt.Sprintf("end of s%d", i)) {
			t.Fatalf("stream %d ended %q, %v", i, rest, err)
		}
	}
	// Every call but the 8 slots' current ones is half-closed once its
	// stream ended.
	deadline := time.Now().Add(streamTimeout)
	for b.muxHalfClosed.Load() < n-8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := b.muxHalfClosed.Load(); got != n-8 {
		t.Errorf("%d calls half-closed, want %d", got, n-8)
	}
}

// TestStreamRefusedUnavailableIsOpenedAgain: a stream refused UNAVAILABLE
// before its first event (a message service that stops refuses new
// streams) is opened once more, on another call, and the client sees only
// the second answer; a second refusal is the client's 503.
func TestStreamRefusedUnavailableIsOpenedAgain(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	var mu sync.Mutex
	refusals := 1
	b.setChat(func(_ *chatv1.ChatRequest, s chatStream) error {
		mu.Lock()
		refuse := refusals > 0
		refusals--
		mu.Unlock()
		if refuse {
			return status.Error(codes.Unavailable, "the message service is stopping")
		}
		return s.Send(deltaEvent("served"))
	})
	r := g.do("POST", "/v1/conversations/c1/chat", `{"content":"hi"}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"served"`) {
		t.Fatalf("after one refusal: %d %s", r.status, r.body)
	}
	if got := b.callCount(); got != 2 {
		t.Errorf("%d Chat streams opened, want 2", got)
	}

	mu.Lock()
	refusals = 2
	mu.Unlock()
	r = g.do("POST", "/v1/conversations/c1/chat", `{"content":"hi"}`)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("after two refusals: %d %s", r.status, r.body)
	}
}

// TestStreamOverHTTP2: over HTTP/2 the connection cannot be taken over,
// and the handler relays the events itself: every event arrives, and
// Grpc-Timeout ends the stream with DEADLINE_EXCEEDED, closed upstream.
func TestStreamOverHTTP2(t *testing.T) {
	b := startBackend(t)
	h, err := server.New(context.Background(), server.Upstreams{
		Auth: dial(t, b.addr), Conversation: dial(t, b.addr), Message: dial(t, b.addr),
	}, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	client := ts.Client()

	closed := make(chan error, 1)
	b.setChat(func(r *chatv1.ChatRequest, s chatStream) error {
		for _, text := range []string{"Hel", "lo"} {
			if err := s.Send(deltaEvent(text)); err != nil {
				return err
			}
		}
		if r.GetContent() != "wait" {
			return nil
		}
		<-s.Context().Done()
		closed <- s.Context().Err()
		return s.Context().Err()
	})
	post := func(content string, headers ...string) (*http.Response, string) {
		req, err := http.NewRequest("POST", ts.URL+"/v1/conversations/c1/chat", strings.NewReader(`{"content":"`+content+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}

	resp, body := post("hi")
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("proto %s, status %d, close %v", resp.Proto, resp.StatusCode, resp.Close)
	}
	if want := "{\"delta\":{\"text\":\"Hel\",\"offset\":0}}\n{\"delta\":{\"text\":\"lo\",\"offset\":0}}\n"; body != want {
		t.Fatalf("body %q, want %q", body, want)
	}

	_, body = post("wait", "Grpc-Timeout", "300m")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"code":"DEADLINE_EXCEEDED"`) {
		t.Fatalf("body %q: want two deltas and a DEADLINE_EXCEEDED error", body)
	}
	waitClosedUpstream(t, closed)
}

// waitClosedUpstream waits for the fake's stream to report how its context
// ended: cancelled, because the gateway closed the stream.
func waitClosedUpstream(t *testing.T, closed <-chan error) {
	t.Helper()
	select {
	case err := <-closed:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("upstream ended with %v", err)
		}
	case <-time.After(streamTimeout):
		t.Fatal("the stream was not closed upstream")
	}
}
