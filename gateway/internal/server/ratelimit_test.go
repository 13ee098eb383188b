package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chat-backend/gateway/internal/server"
)

// 64 concurrent logins from one client: exactly the burst gets through, the
// rest are 429 in the envelope with Retry-After, and register and refresh
// share the budget.
func TestAuthRateLimit(t *testing.T) {
	g, b := newGateway(t, server.Options{AuthRateLimit: server.RateLimit{PerMinute: 1, Burst: 10}})

	statuses := make([]response, 64)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range statuses {
		wg.Go(func() {
			<-start
			statuses[i] = g.do("POST", "/v1/auth/login", `{"login":"bob","password":"x"}`)
		})
	}
	close(start)
	wg.Wait()
	ok, limited := 0, 0
	for _, r := range statuses {
		switch r.status {
		case 200:
			ok++
		case 429:
			limited++
			envelopeOf(t, r, 429, "RESOURCE_EXHAUSTED")
			if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
				t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
			}
		default:
			t.Errorf("status %d: %s", r.status, r.body)
		}
	}
	if ok != 10 || limited != 54 {
		t.Errorf("%d allowed and %d limited, want 10 and 54", ok, limited)
	}
	if n := b.callCount(); n != 10 {
		t.Errorf("the backend was called %d times, want 10", n)
	}

	for _, path := range []string{"/v1/auth/register", "/v1/auth/refresh"} {
		envelopeOf(t, g.do("POST", path, `{}`), 429, "RESOURCE_EXHAUSTED")
	}
	// Other routes are not limited.
	for _, path := range []string{"/v1/auth/logout", "/v1/conversations"} {
		if r := g.do("POST", path, `{}`); r.status >= 400 {
			t.Errorf("POST %s: status %d", path, r.status)
		}
	}
	if r := g.do("GET", "/v1/auth/jwks", ""); r.status != 200 {
		t.Errorf("jwks: status %d", r.status)
	}

	m := string(g.do("GET", "/metrics", "").body)
	if !strings.Contains(m, `gateway_rate_limited_requests_total{route="/v1/auth/login"} 54`) ||
		!strings.Contains(m, `gateway_rate_limited_requests_total{route="/v1/auth/register"} 1`) {
		t.Errorf("metrics lack the refusals:\n%s", m)
	}
}

func login(t *testing.T, g *gw, headers ...string) int {
	t.Helper()
	return g.do("POST", "/v1/auth/login", `{"login":"bob","password":"x"}`, headers...).status
}

func TestRateLimitClientFromTrustedProxyHeader(t *testing.T) {
	g, _ := newGateway(t, server.Options{
		AuthRateLimit:      server.RateLimit{PerMinute: 1, Burst: 1},
		TrustedProxyHeader: "X-Forwarded-For",
	})
	// The right-most entry is the client; the left ones are its own claims.
	if s := login(t, g, "X-Forwarded-For", "198.51.100.1, 203.0.113.7"); s != 200 {
		t.Fatalf("first: %d", s)
	}
	if s := login(t, g, "X-Forwarded-For", "192.0.2.99, 203.0.113.7"); s != 429 {
		t.Errorf("same proxy-seen client, other claim: %d, want 429", s)
	}
	if s := login(t, g, "X-Forwarded-For", "203.0.113.7, 203.0.113.8"); s != 200 {
		t.Errorf("another client: %d, want 200", s)
	}
	// IPv6 counts by /64.
	if s := login(t, g, "X-Forwarded-For", "2001:db8:1:2::1"); s != 200 {
		t.Errorf("IPv6: %d", s)
	}
	if s := login(t, g, "X-Forwarded-For", "[2001:db8:1:2:ffff::9]:4444"); s != 429 {
		t.Errorf("same /64: %d, want 429", s)
	}
	// Absent or unparsable: the TCP peer (127.0.0.1).
	if s := login(t, g); s != 200 {
		t.Errorf("peer: %d", s)
	}
	if s := login(t, g, "X-Forwarded-For", "unknown"); s != 429 {
		t.Errorf("unparsable header: %d, want 429 (the peer)", s)
	}
}

func TestRateLimitIgnoresForwardedForByDefault(t *testing.T) {
	g, _ := newGateway(t, server.Options{AuthRateLimit: server.RateLimit{PerMinute: 1, Burst: 1}})
	if s := login(t, g, "X-Forwarded-For", "198.51.100.1"); s != 200 {
		t.Fatalf("first: %d", s)
	}
	if s := login(t, g, "X-Forwarded-For", "198.51.100.2"); s != http.StatusTooManyRequests {
		t.Errorf("a spoofed X-Forwarded-For escaped the limit: %d", s)
	}
}
