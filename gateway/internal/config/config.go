// Package config reads the gateway's settings from flags with environment
// fallbacks (docs/api.md "Health and operations"): a flag given on the command
// line wins, else its environment variable, else the default. The gateway
// holds no secrets, so every setting may be a flag.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Config is everything main needs.
type Config struct {
	Listen string
	// AuthAddrs, ConversationAddrs and MessageAddrs are where each service
	// is: one gRPC target (such as 127.0.0.1:50051 or dns:///auth:50051),
	// or several host:port replicas to balance calls over (ParseAddrs).
	AuthAddrs          []string
	ConversationAddrs  []string
	MessageAddrs       []string
	CORSAllowedOrigins []string
	MaxBodyBytes       int64
	DrainTimeout       time.Duration
	// ReadTimeout bounds the arrival of a request's headers, and again of
	// its body (docs/api.md "Limits at the gateway": 30 s).
	ReadTimeout time.Duration
	// AuthRateLimit is the requests a minute each client may make to
	// register, login and refresh together; 0 disables the limit.
	AuthRateLimit int
	// AuthRateBurst is how many of those may come at once.
	AuthRateBurst int
	// TrustedProxyHeader names the header that holds the client address
	// put there by a trusted reverse proxy; empty: the TCP peer.
	TrustedProxyHeader string
	// PprofListen is where net/http/pprof is served, apart from the API;
	// empty (the default): nowhere. A profiling aid for loopback only.
	PprofListen string
}

// Load parses args (without the program name) with getenv as the environment.
// Usage and errors go to out. flag.ErrHelp is returned for -h.
func Load(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("chat-gateway", flag.ContinueOnError)
	fs.SetOutput(out)

	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var (
		c            Config
		authAddr     string
		convAddr     string
		messageAddr  string
		origins      string
		maxBody      string
		drainTimeout string
		readTimeout  string
		authRate     string
		authBurst    string
	)
	fs.StringVar(&c.Listen, "listen", env("GATEWAY_LISTEN", "127.0.0.1:8080"),
		"HTTP listen address (env GATEWAY_LISTEN)")
	fs.StringVar(&authAddr, "auth_addr", env("AUTH_ADDR", "127.0.0.1:50051"),
		"AuthService gRPC target, or comma-separated host:port replicas balanced round-robin (env AUTH_ADDR)")
	fs.StringVar(&convAddr, "conversation_addr", env("CONVERSATION_ADDR", "127.0.0.1:50052"),
		"ConversationService gRPC target, or comma-separated host:port replicas balanced round-robin (env CONVERSATION_ADDR)")
	fs.StringVar(&messageAddr, "message_addr", env("MESSAGE_ADDR", "127.0.0.1:50053"),
		"MessageService gRPC target, or comma-separated host:port replicas balanced round-robin (env MESSAGE_ADDR)")
	fs.StringVar(&origins, "cors_allowed_origins", env("CORS_ALLOWED_ORIGINS", ""),
		"comma-separated origins allowed by CORS; empty disables CORS (env CORS_ALLOWED_ORIGINS)")
	fs.StringVar(&maxBody, "max_body_bytes", env("MAX_BODY_BYTES", "1048576"),
		"largest request body in bytes (env MAX_BODY_BYTES)")
	fs.StringVar(&drainTimeout, "drain_timeout", env("DRAIN_TIMEOUT", "30s"),
		"how long requests under way may finish after SIGTERM/SIGINT (env DRAIN_TIMEOUT)")
	fs.StringVar(&readTimeout, "read_timeout", env("READ_TIMEOUT", "30s"),
		"time a client has to send a request's headers, and again its body; answers never time out (env READ_TIMEOUT)")
	fs.StringVar(&authRate, "auth_rate_limit", env("AUTH_RATE_LIMIT", "30"),
		"requests a minute per client to register, login and refresh together; 0 disables (env AUTH_RATE_LIMIT)")
	fs.StringVar(&authBurst, "auth_rate_burst", env("AUTH_RATE_BURST", "10"),
		"how many of those a client may send at once (env AUTH_RATE_BURST)")
	fs.StringVar(&c.TrustedProxyHeader, "trusted_proxy_header", env("TRUSTED_PROXY_HEADER", ""),
		"header holding the client address set by a trusted reverse proxy, e.g. X-Forwarded-For (right-most entry); empty: the TCP peer (env TRUSTED_PROXY_HEADER)")

	fs.StringVar(&c.PprofListen, "pprof_listen", env("GATEWAY_PPROF_LISTEN", ""),
		"address to serve Go's /debug/pprof/ profiles on, apart from the API, e.g. 127.0.0.1:6060; empty: not served (env GATEWAY_PPROF_LISTEN)")

	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	var errs []error
	if strings.TrimSpace(c.Listen) == "" {
		errs = append(errs, errors.New("--listen: must not be empty"))
	}
	for _, a := range []struct {
		name, value string
		addrs       *[]string
	}{
		{"auth_addr", authAddr, &c.AuthAddrs},
		{"conversation_addr", convAddr, &c.ConversationAddrs},
		{"message_addr", messageAddr, &c.MessageAddrs},
	} {
		addrs, err := ParseAddrs(a.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", a.name, err))
			continue
		}
		*a.addrs = addrs
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, o)
		}
	}
	if n, err := strconv.ParseInt(maxBody, 10, 64); err != nil || n <= 0 {
		errs = append(errs, fmt.Errorf("--max_body_bytes: want a positive number of bytes, got %q", maxBody))
	} else {
		c.MaxBodyBytes = n
	}
	if d, err := time.ParseDuration(drainTimeout); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("--drain_timeout: want a positive duration such as 30s, got %q", drainTimeout))
	} else {
		c.DrainTimeout = d
	}
	if d, err := time.ParseDuration(readTimeout); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("--read_timeout: want a positive duration such as 30s, got %q", readTimeout))
	} else {
		c.ReadTimeout = d
	}
	if n, err := strconv.Atoi(authRate); err != nil || n < 0 {
		errs = append(errs, fmt.Errorf("--auth_rate_limit: want a number of requests a minute, 0 for none, got %q", authRate))
	} else {
		c.AuthRateLimit = n
	}
	if n, err := strconv.Atoi(authBurst); err != nil || n < 1 {
		errs = append(errs, fmt.Errorf("--auth_rate_burst: want a positive number of requests, got %q", authBurst))
	} else {
		c.AuthRateBurst = n
	}
	c.TrustedProxyHeader = strings.TrimSpace(c.TrustedProxyHeader)
	if !validHeaderName(c.TrustedProxyHeader) {
		errs = append(errs, fmt.Errorf("--trusted_proxy_header: want a header name such as X-Forwarded-For, got %q", c.TrustedProxyHeader))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ParseAddrs reads a service's address setting. A value without a comma is
// one gRPC target, passed to grpc-go as it is (127.0.0.1:50051, or a name
// for it to resolve such as dns:///auth:50051): one address works exactly
// as before lists existed. A comma-separated value is a list of replicas,
// each host:port with a host and a numeric port (spaces around an element
// are ignored); an empty element, a missing port, a scheme or an address
// listed twice is an error.
func ParseAddrs(value string) ([]string, error) {
	if strings.TrimSpace(value) == "" {
		return nil, errors.New("must not be empty")
	}
	if !strings.Contains(value, ",") {
		return []string{value}, nil
	}
	elems := strings.Split(value, ",")
	addrs := make([]string, 0, len(elems))
	seen := make(map[string]bool, len(elems))
	for i, e := range elems {
		e = strings.TrimSpace(e)
		where := fmt.Sprintf("element %d of %q", i+1, value)
		if e == "" {
			return nil, fmt.Errorf("%s is empty; want host:port,host:port,...", where)
		}
		host, port, err := net.SplitHostPort(e)
		if err != nil {
			return nil, fmt.Errorf("%s (%q) is not host:port; every element of a list is host:port", where, e)
		}
		if host == "" {
			return nil, fmt.Errorf("%s (%q) has no host", where, e)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("%s (%q) has no valid port; want a number from 1 to 65535", where, e)
		}
		if seen[e] {
			return nil, fmt.Errorf("%s (%q) is listed twice", where, e)
		}
		seen[e] = true
		addrs = append(addrs, e)
	}
	return addrs, nil
}

// validHeaderName reports whether s is empty or an HTTP field name (an RFC
// 9110 token).
func validHeaderName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}
