package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/chat-backend/gateway/internal/server"
)

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func dialList(t *testing.T, name string, addrs []string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	c, err := server.Dial(name, addrs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// gatewayWith serves the gateway with the message service at msg and the
// other two at one backend of their own.
func gatewayWith(t *testing.T, msg grpc.ClientConnInterface) *gw {
	t.Helper()
	other := startBackend(t)
	otherConn := dialList(t, "other", []string{other.addr})
	logs := &syncBuffer{}
	h, err := server.New(context.Background(), server.Upstreams{
		Auth: otherConn, Conversation: otherConn, Message: msg,
	}, server.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &gw{t: t, url: ts.URL, logs: logs}
}

// listCalls returns how many ListMessages calls each backend received.
func listCalls(bs ...*backend) []int {
	n := make([]int, len(bs))
	for i, b := range bs {
		b.mu.Lock()
		for _, c := range b.calls {
			if c.method == "ListMessages" {
				n[i]++
			}
		}
		b.mu.Unlock()
	}
	return n
}

// listUntilBoth lists messages until both backends have served a call, at
// most max requests, and fails if they have not.
func listUntilBoth(t *testing.T, g *gw, a, b *backend, max int) {
	t.Helper()
	for range max {
		if r := g.do("GET", "/v1/conversations/c1/messages", ""); r.status != 200 {
			t.Fatalf("list = %d %s", r.status, r.body)
		}
		if n := listCalls(a, b); n[0] > 0 && n[1] > 0 {
			return
		}
	}
	t.Fatalf("after %d requests, calls per replica = %v; want both > 0", max, listCalls(a, b))
}

// Two replicas in the list both receive calls, in turn.
func TestDialBalancesOverAList(t *testing.T) {
	a, b := startBackend(t), startBackend(t)
	conn := dialList(t, "message", []string{a.addr, b.addr})
	if got, want := conn.CanonicalTarget(), "chat-message:///message"; got != want {
		t.Errorf("target = %q, want %q", got, want)
	}
	g := gatewayWith(t, conn)

	// The second replica may connect a moment after the first.
	listUntilBoth(t, g, a, b, 100)

	// Both connected: round_robin alternates.
	before := listCalls(a, b)
	for range 10 {
		if r := g.do("GET", "/v1/conversations/c1/messages", ""); r.status != 200 {
			t.Fatalf("list = %d %s", r.status, r.body)
		}
	}
	after := listCalls(a, b)
	if da, db := after[0]-before[0], after[1]-before[1]; da != 5 || db != 5 {
		t.Errorf("10 calls went %d and %d, want 5 and 5", da, db)
	}
}

// The list survives the connection's idle mode: after it, calls still reach
// both replicas.
func TestDialListAfterIdle(t *testing.T) {
	a, b := startBackend(t), startBackend(t)
	conn := dialList(t, "message", []string{a.addr, b.addr}, grpc.WithIdleTimeout(50*time.Millisecond))
	g := gatewayWith(t, conn)
	listUntilBoth(t, g, a, b, 100)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for s := conn.GetState(); s != connectivity.Idle; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("the connection did not go idle (state %v)", conn.GetState())
		}
	}
	before := listCalls(a, b)
	for i := 0; ; i++ {
		if r := g.do("GET", "/v1/conversations/c1/messages", ""); r.status != 200 {
			t.Fatalf("list after idle = %d %s", r.status, r.body)
		}
		after := listCalls(a, b)
		if after[0] > before[0] && after[1] > before[1] {
			break
		}
		if i == 100 {
			t.Fatalf("after idle, calls per replica went from %v to %v; want both to grow", before, after)
		}
	}
}

// A replica that is down is skipped: every call succeeds on the other one,
// and /readyz, which asks each service through its balanced connection, is
// ready while one replica serves and not when none is reachable.
func TestDialListSkipsADeadReplica(t *testing.T) {
	live := startBackend(t)
	g := gatewayWith(t, dialList(t, "message", []string{deadAddr(t), live.addr}))
	for range 10 {
		if r := g.do("GET", "/v1/conversations/c1/messages", ""); r.status != 200 {
			t.Fatalf("list = %d %s", r.status, r.body)
		}
	}
	if n := listCalls(live); n[0] != 10 {
		t.Errorf("the live replica served %d of 10 calls", n[0])
	}
	if r := g.do("GET", "/readyz", ""); r.status != 200 {
		t.Errorf("readyz with one live replica = %d %s", r.status, r.body)
	}

	g = gatewayWith(t, dialList(t, "message", []string{deadAddr(t), deadAddr(t)}))
	e := envelopeOf(t, g.do("GET", "/readyz", ""), 503, "UNAVAILABLE")
	if len(e.Error.Details) != 1 || e.Error.Details[0].Field != "message" ||
		e.Error.Details[0].Description != "unreachable" {
		t.Errorf("details = %+v", e.Error.Details)
	}
}

// One address is dialed as the target it is, as before lists existed.
func TestDialOneAddress(t *testing.T) {
	a := startBackend(t)
	for _, target := range []string{a.addr, "passthrough:///" + a.addr, "dns:///" + a.addr} {
		conn := dialList(t, "message", []string{target})
		if got := conn.Target(); got != target {
			t.Errorf("target = %q, want %q", got, target)
		}
		g := gatewayWith(t, conn)
		if r := g.do("GET", "/v1/conversations/c1/messages", ""); r.status != 200 {
			t.Errorf("%s: list = %d %s", target, r.status, r.body)
		}
	}
	if n := listCalls(a); n[0] != 3 {
		t.Errorf("calls = %d, want 3", n[0])
	}
	if _, err := server.Dial("message", nil); err == nil {
		t.Error("Dial without an address succeeded")
	}
}
