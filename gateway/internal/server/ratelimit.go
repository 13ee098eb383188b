package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// RateLimit is a per-client request rate: PerMinute on average, up to Burst
// at once. PerMinute 0 is no limit.
type RateLimit struct {
	PerMinute int
	Burst     int
}

// rateLimitedRoutes share one limit per client: the routes that create
// credentials, where guessing and account spraying happen. They answer
// without an access token, so the client address is all there is to count.
var rateLimitedRoutes = map[string]bool{
	http.MethodPost + " /v1/auth/register": true,
	http.MethodPost + " /v1/auth/login":    true,
	http.MethodPost + " /v1/auth/refresh":  true,
}

// maxRateLimitClients bounds the table of client buckets (about 200 bytes
// each). Idle clients leave it on their own (package ratelimit).
const maxRateLimitClients = 10000

// limitAuth is a runtime.Middleware: on the rate-limited routes it takes a
// token from the client's bucket, or answers 429 RESOURCE_EXHAUSTED with
// Retry-After (whole seconds, at least 1) through the one error handler.
func (s *server) limitAuth(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		route, ok := routeOf(r)
		if !ok || !rateLimitedRoutes[r.Method+" "+route] {
			next(w, r, params)
			return
		}
		if ok, retryAfter := s.authLimit.Allow(clientKey(r, s.opts.TrustedProxyHeader)); !ok {
			s.metrics.rateLimited.WithLabelValues(route).Inc()
			st, err := status.New(codes.ResourceExhausted, "too many requests, retry later").
				WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)})
			if err != nil { // A RetryInfo always marshals.
				st = status.New(codes.ResourceExhausted, "too many requests, retry later")
			}
			s.handleError(r.Context(), nil, nil, w, r, st.Err())
			return
		}
		next(w, r, params)
	}
}

// clientKey names the client of r for rate limiting: the address in the
// trusted proxy's header when one is configured and it holds one (for a list
// such as X-Forwarded-For the right-most entry, the address the proxy itself
// saw; entries further left are the client's own claims), else the TCP
// peer. IPv6 clients are counted by their /64, which one host can fill.
func clientKey(r *http.Request, trustedHeader string) string {
	if trustedHeader != "" {
		if values := r.Header.Values(trustedHeader); len(values) > 0 {
			last := values[len(values)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, ok := parseAddr(strings.TrimSpace(last)); ok {
				return keyOf(a)
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, ok := parseAddr(host); ok {
		return keyOf(a)
	}
	return r.RemoteAddr
}

// parseAddr reads "192.0.2.1", "2001:db8::1", "[2001:db8::1]" and the same
// with a port.
func parseAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a, true
	}
	return netip.Addr{}, false
}

func keyOf(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}
