package e2e

// How the message service talks to the provider (docs/api.md "Assistant
// replies"): replies in progress at once share one HTTP/2 connection over
// TLS (h2 by ALPN, trusting PROVIDER_CA_FILE); a provider that speaks only
// HTTP/1.1 over TLS still gets every reply, each on a connection of its own,
// as does one asked HTTP/1.1 (PROVIDER_HTTP_VERSION=1.1); a certificate
// that nothing trusts is refused. Each test starts one more message replica
// (and a gateway) on the chat stack, with its own fake provider.

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// http11Warning starts what the message service logs when an https
// provider answers HTTP/1.1 where HTTP/2 was hoped for.
const http11Warning = "the model provider answers HTTP/1.1"

// tlsFakeProvider is a fake provider over TLS, offering HTTP/2 (ALPN "h2")
// or only HTTP/1.1, and a file with its certificate (its own authority).
func tlsFakeProvider(t *testing.T, http2 bool) (p *FakeProvider, caFile string) {
	t.Helper()
	p = newUnstartedFakeProvider()
	p.EnableHTTP2 = http2
	p.StartTLS()
	// Registered before the replica's, so it runs after the replica stopped.
	t.Cleanup(p.Close)
	caFile = filepath.Join(t.TempDir(), "provider-ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Certificate().Raw})
	if err := os.WriteFile(caFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, caFile
}

// providerReplica starts a message replica on the chat stack that asks the
// provider at baseURL, with room for many replies of one user, and returns
// it and a gateway in front of it.
func providerReplica(t *testing.T, baseURL string, env ...string) (replica, gateway *Stack) {
	t.Helper()
	s, _ := ChatStack(t)
	return startMessageReplica(t, s, append([]string{"PROVIDER_BASE_URL=" + baseURL + "/v1",
		"PROVIDER_IDLE_TIMEOUT=30s", "MAX_STREAMS_PER_USER=50"}, env...)...)
}

// heldReply is a reply in progress that the provider holds.
type heldReply struct {
	stream          *ChatStream
	marker          string // its user message, which names it at the provider
	convID, replyID string
}

// holdReplies opens n replies at once, each in a conversation of its own,
// that the provider holds after their first piece ("scenario:slow"); it
// returns them once every stream got its first delta.
func holdReplies(t *testing.T, gw *Stack, a Account, n int) []heldReply {
	t.Helper()
	convs, markers := make([]string, n), make([]string, n)
	for i := range convs {
		convs[i] = newConversation(t, gw, a)
		markers[i] = unique("Hold scenario:slow")
	}
	streams, errs := make([]*ChatStream, n), make([]error, n)
	parallel(n, n, func(i int) {
		streams[i], errs[i] = gw.openEvents("POST", "/v1/conversations/"+convs[i]+"/chat",
			`{"content":"`+markers[i]+`"}`, true, Bearer(a.Access)...)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("opening reply %d: %v", i, err)
		}
		t.Cleanup(func() { streams[i].Resp.Body.Close() })
	}
	held := make([]heldReply, n)
	for i, c := range streams {
		openOK(t, c, true)
		c.Expect(t, "message")
		reply := c.Expect(t, "reply")
		if got := Str(c.Expect(t, "delta"), "text"); got != "First" {
			t.Fatalf("reply %d: first delta %q", i, got)
		}
		held[i] = heldReply{stream: c, marker: markers[i], convID: convs[i], replyID: Str(reply, "id")}
	}
	return held
}

// finishReplies lets the provider end the held replies and expects each
// to end complete.
func finishReplies(t *testing.T, p *FakeProvider, replies []heldReply) {
	t.Helper()
	for _, r := range replies {
		close(p.Gate(r.marker))
	}
	for i, r := range replies {
		if got := Str(r.stream.Expect(t, "delta"), "text"); got != " and last" {
			t.Fatalf("reply %d: second delta %q", i, got)
		}
		if got := Str(r.stream.Expect(t, "done"), "message", "content"); got != "First and last" {
			t.Errorf("reply %d ended with %q", i, got)
		}
	}
}

// expectProtos checks the HTTP version of the provider requests.
func expectProtos(t *testing.T, p *FakeProvider, replies []heldReply, want string) {
	t.Helper()
	for _, r := range replies {
		req := p.Request(r.marker)
		if req == nil {
			t.Fatalf("the provider saw no request for %q", r.marker)
		}
		if req.Proto != want {
			t.Errorf("request %q came as %s, want %s", r.marker, req.Proto, want)
		}
	}
}

func TestProviderRepliesInProgressShareOneHTTP2ConnectionOverTLS(t *testing.T) {
	const replies = 24
	p, caFile := tlsFakeProvider(t, true)
	_, gw := providerReplica(t, p.URL, "PROVIDER_CA_FILE="+caFile)
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	held := holdReplies(t, gw, a, replies)
	expectProtos(t, p, held, "HTTP/2.0")
	// All of them in progress at once, started at once: one connection.
	if got := p.Conns.Load(); got != 1 {
		t.Errorf("%d replies in progress took %d connections, want 1", replies, got)
	}
	// Cancelling one ends its stream of the connection, within a second
	// as ever, and leaves the connection to the others.
	first := held[0]
	cancelled := cancelReply(t, gw, a, first.convID, first.replyID)
	if Str(cancelled, "status") != "incomplete" || Str(cancelled, "content") != "First" {
		t.Errorf("cancel answered %v, want the reply incomplete with its first piece", cancelled)
	}
	expectProviderHangUp(t, p, first.marker, time.Second, "after :cancel")
	if done := first.stream.Expect(t, "done"); Str(done, "message", "status") != "incomplete" {
		t.Errorf("the cancelled stream ended with %v", done)
	}
	finishReplies(t, p, held[1:])
	if got := p.Conns.Load(); got != 1 {
		t.Errorf("after a cancel and %d replies, %d connections, want 1", replies-1, got)
	}
	// A reply alone on the connection: its cancel reaches the provider as
	// soon, though nothing else moves on the connection.
	alone := holdReplies(t, gw, a, 1)[0]
	if got := p.Conns.Load(); got != 1 {
		t.Errorf("the next reply opened a connection (%d in all), want the idle one reused", got)
	}
	cancelReply(t, gw, a, alone.convID, alone.replyID)
	expectProviderHangUp(t, p, alone.marker, time.Second, "after :cancel of the only reply on the connection")
	if done := alone.stream.Expect(t, "done"); Str(done, "message", "status") != "incomplete" {
		t.Errorf("the cancelled stream ended with %v", done)
	}
}

func TestProviderHTTP11SettingAsksHTTP11OverTLSWithoutTheWarning(t *testing.T) {
	const replies = 4
	p, caFile := tlsFakeProvider(t, true)
	replica, gw := providerReplica(t, p.URL, "PROVIDER_CA_FILE="+caFile, "PROVIDER_HTTP_VERSION=1.1")
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	held := holdReplies(t, gw, a, replies)
	expectProtos(t, p, held, "HTTP/1.1")
	if got := p.Conns.Load(); got != replies {
		t.Errorf("%d replies in progress over HTTP/1.1 took %d connections, want %d", replies, got, replies)
	}
	finishReplies(t, p, held)
	// Asked for, HTTP/1.1 is no surprise worth a warning.
	if lines := replica.logs["message"].Lines(http11Warning); len(lines) != 0 {
		t.Errorf("warned %q with HTTP/1.1 asked", lines)
	}
}

func TestProviderThatSpeaksOnlyHTTP11OverTLSStillGetsEveryReply(t *testing.T) {
	const replies = 6
	p, caFile := tlsFakeProvider(t, false)
	replica, gw := providerReplica(t, p.URL, "PROVIDER_CA_FILE="+caFile)
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	held := holdReplies(t, gw, a, replies)
	expectProtos(t, p, held, "HTTP/1.1")
	// HTTP/1.1 carries one reply at a time on a connection.
	if got := p.Conns.Load(); got != replies {
		t.Errorf("%d replies in progress over HTTP/1.1 took %d connections, want %d", replies, got, replies)
	}
	finishReplies(t, p, held)
	// The operator learns why each reply holds a connection, once.
	const warning = http11Warning
	deadline := time.Now().Add(5 * time.Second)
	for len(replica.logs["message"].Lines(warning)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := len(replica.logs["message"].Lines(warning)); got != 1 {
		t.Errorf("the warning %q was logged %d times, want once", warning, got)
	}
}

func TestProviderCertificateThatNothingTrustsIsRefused(t *testing.T) {
	// The provider's certificate is its own authority; without
	// PROVIDER_CA_FILE the service trusts only the system's.
	p, _ := tlsFakeProvider(t, true)
	_, gw := providerReplica(t, p.URL)
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	id := newConversation(t, gw, a)
	c := gw.OpenChat(t, a.Access, id, unique("Untrusted"), true)
	defer c.Resp.Body.Close()
	c.Expect(t, "message")
	c.Expect(t, "reply")
	if e := c.Expect(t, "error"); Str(e, "error", "code") != "UNAVAILABLE" {
		t.Errorf("error event %v, want UNAVAILABLE", e)
	}
	p.mu.Lock()
	seen := len(p.requests)
	p.mu.Unlock()
	if seen != 0 {
		t.Errorf("the provider got %d requests over a connection the service should not trust", seen)
	}
	if reply := waitForAssistant(t, gw, a, id); Str(reply, "status") != "failed" {
		t.Errorf("stored reply %v, want failed", reply)
	}
}

// A replica refuses, at start, settings that cannot work.
func TestProviderSettingsThatCannotWorkStopTheStart(t *testing.T) {
	s, _ := ChatStack(t)
	for _, env := range [][]string{
		{"PROVIDER_HTTP_VERSION=h2c"},
		{"PROVIDER_MAX_CONNECTIONS=0"},
		{"PROVIDER_BASE_URL=https://127.0.0.1:9/v1", "PROVIDER_CA_FILE=" + filepath.Join(t.TempDir(), "none.pem")},
	} {
		addr, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		env := append(append(append([]string{}, s.env["message"]...), "GRPC_LISTEN="+addr), env...)
		r := &Stack{procs: map[string]*exec.Cmd{}, logs: map[string]*logBuffer{}}
		if err := r.start("message", s.binaries["message"], env); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- r.Wait("message") }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%v: the replica exited 0, want a failure", env[len(env)-1])
			}
			if !strings.Contains(r.Logs("message"), "provider") {
				t.Errorf("%v: the log does not say what is wrong: %s", env[len(env)-1], tail(r.Logs("message"), 400))
			}
		case <-time.After(15 * time.Second):
			r.procs["message"].Process.Kill()
			<-done
			t.Errorf("%v: the replica started anyway", env[len(env)-1])
		}
	}
}
