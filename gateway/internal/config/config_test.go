package config

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	got, err := Load(nil, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:            "127.0.0.1:8080",
		AuthAddrs:         []string{"127.0.0.1:50051"},
		ConversationAddrs: []string{"127.0.0.1:50052"},
		MessageAddrs:      []string{"127.0.0.1:50053"},
		MaxBodyBytes:      1 << 20,
		DrainTimeout:      30 * time.Second,
		ReadTimeout:       30 * time.Second,
		AuthRateLimit:     30,
		AuthRateBurst:     10,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v, want %+v", got, want)
	}
}

func TestEnvironmentFallback(t *testing.T) {
	got, err := Load(nil, envOf(map[string]string{
		"GATEWAY_LISTEN":       ":9090",
		"AUTH_ADDR":            "auth:1",
		"CONVERSATION_ADDR":    "conv:2",
		"MESSAGE_ADDR":         "msg:3",
		"CORS_ALLOWED_ORIGINS": " https://a.example , ,https://b.example",
		"MAX_BODY_BYTES":       "2048",
		"DRAIN_TIMEOUT":        "5s",
		"READ_TIMEOUT":         "7s",
		"AUTH_RATE_LIMIT":      "0",
		"AUTH_RATE_BURST":      "3",
		"TRUSTED_PROXY_HEADER": "X-Real-IP",
		"GATEWAY_PPROF_LISTEN": "127.0.0.1:6060",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:             ":9090",
		AuthAddrs:          []string{"auth:1"},
		ConversationAddrs:  []string{"conv:2"},
		MessageAddrs:       []string{"msg:3"},
		CORSAllowedOrigins: []string{"https://a.example", "https://b.example"},
		MaxBodyBytes:       2048,
		DrainTimeout:       5 * time.Second,
		ReadTimeout:        7 * time.Second,
		AuthRateLimit:      0,
		AuthRateBurst:      3,
		TrustedProxyHeader: "X-Real-IP",
		PprofListen:        "127.0.0.1:6060",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v, want %+v", got, want)
	}
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	got, err := Load([]string{
		"--listen=:1", "--auth_addr=a:1", "--conversation_addr", "c:1", "--message_addr=m:1",
		"--cors_allowed_origins=https://x.example", "--max_body_bytes=10", "--drain_timeout=1m",
		"--read_timeout=3s", "--auth_rate_limit=5", "--auth_rate_burst=2",
		"--trusted_proxy_header=X-Forwarded-For",
	}, envOf(map[string]string{
		"GATEWAY_LISTEN": ":2", "AUTH_ADDR": "a:2", "CONVERSATION_ADDR": "c:2", "MESSAGE_ADDR": "m:2",
		"CORS_ALLOWED_ORIGINS": "https://y.example", "MAX_BODY_BYTES": "20", "DRAIN_TIMEOUT": "2m",
		"READ_TIMEOUT": "4s", "AUTH_RATE_LIMIT": "6", "AUTH_RATE_BURST": "7",
		"TRUSTED_PROXY_HEADER": "X-Real-IP",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen: ":1", AuthAddrs: []string{"a:1"}, ConversationAddrs: []string{"c:1"}, MessageAddrs: []string{"m:1"},
		CORSAllowedOrigins: []string{"https://x.example"}, MaxBodyBytes: 10, DrainTimeout: time.Minute,
		ReadTimeout: 3 * time.Second, AuthRateLimit: 5, AuthRateBurst: 2,
		TrustedProxyHeader: "X-Forwarded-For",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v, want %+v", got, want)
	}
}

func TestInvalidValuesAreAllReported(t *testing.T) {
	_, err := Load([]string{"--max_body_bytes=-1", "--drain_timeout=soon", "--auth_addr=", "--read_timeout=0",
		"--auth_rate_limit=-1", "--auth_rate_burst=0", "--trusted_proxy_header=X Forwarded"},
		envOf(nil), io.Discard)
	if err == nil {
		t.Fatal("Load() succeeded, want an error")
	}
	for _, want := range []string{"--max_body_bytes", "--drain_timeout", "--auth_addr", "--read_timeout",
		"--auth_rate_limit", "--auth_rate_burst", "--trusted_proxy_header"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestUnknownFlagAndHelp(t *testing.T) {
	if _, err := Load([]string{"--nope"}, envOf(nil), io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
	if _, err := Load([]string{"-h"}, envOf(nil), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
	if _, err := Load([]string{"stray"}, envOf(nil), io.Discard); err == nil {
		t.Error("stray argument accepted")
	}
}

func TestAddressLists(t *testing.T) {
	got, err := Load([]string{"--message_addr=10.0.0.1:50053,10.0.0.2:50063"}, envOf(map[string]string{
		"AUTH_ADDR":         "127.0.0.1:50051, 127.0.0.1:50061 ,[::1]:50071",
		"CONVERSATION_ADDR": "dns:///conversation:50052",
		"MESSAGE_ADDR":      "m:1,m:2",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"auth", got.AuthAddrs, []string{"127.0.0.1:50051", "127.0.0.1:50061", "[::1]:50071"}},
		{"conversation", got.ConversationAddrs, []string{"dns:///conversation:50052"}},
		{"message (flag over environment)", got.MessageAddrs, []string{"10.0.0.1:50053", "10.0.0.2:50063"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestParseAddrs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		// One address is a gRPC target, passed on exactly as before.
		{"127.0.0.1:50051", []string{"127.0.0.1:50051"}},
		{"dns:///auth:50051", []string{"dns:///auth:50051"}},
		{"auth", []string{"auth"}},
		{"unix:///run/auth.sock", []string{"unix:///run/auth.sock"}},
		// A list: host:port elements, spaces around them ignored.
		{"a:1,b:2", []string{"a:1", "b:2"}},
		{" 127.0.0.1:50053 , 127.0.0.1:50063 ", []string{"127.0.0.1:50053", "127.0.0.1:50063"}},
		{"[::1]:1,[::1]:2,localhost:65535", []string{"[::1]:1", "[::1]:2", "localhost:65535"}},
	} {
		got, err := ParseAddrs(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseAddrs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, wantErr string }{
		{"", "must not be empty"},
		{"   ", "must not be empty"},
		{"a:1,", `element 2 of "a:1," is empty`},
		{",a:1", `element 1 of ",a:1" is empty`},
		{"a:1,,b:2", `element 2 of "a:1,,b:2" is empty`},
		{"a:1, ,b:2", `element 2 of "a:1, ,b:2" is empty`},
		{",", "element 1"},
		{"a:1,b", `element 2 of "a:1,b" ("b") is not host:port`},
		{"a,b:2", `element 1 of "a,b:2" ("a") is not host:port`},
		{"a:1,b:", `("b:") has no valid port`},
		{"a:1,b:http", `("b:http") has no valid port`},
		{"a:1,b:0", `("b:0") has no valid port`},
		{"a:1,b:65536", `("b:65536") has no valid port`},
		{"a:1,:2", `(":2") has no host`},
		{"dns:///a:1,dns:///b:1", "is not host:port"},
		{"::1:1,::1:2", "is not host:port"},
		{"a:1,a:1", `element 2 of "a:1,a:1" ("a:1") is listed twice`},
	} {
		got, err := ParseAddrs(tc.in)
		if err == nil {
			t.Errorf("ParseAddrs(%q) = %q, want an error", tc.in, got)
		} else if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseAddrs(%q): error %q, want it to contain %q", tc.in, err, tc.wantErr)
		}
	}
}

// A malformed list stops the gateway at start-up with the flag's name.
func TestMalformedListIsAStartUpError(t *testing.T) {
	_, err := Load(nil, envOf(map[string]string{
		"AUTH_ADDR":         "127.0.0.1:50051,",
		"CONVERSATION_ADDR": "127.0.0.1:50052,127.0.0.1",
		"MESSAGE_ADDR":      "127.0.0.1:50053,127.0.0.1:50063",
	}), io.Discard)
	if err == nil {
		t.Fatal("Load() succeeded, want an error")
	}
	for _, want := range []string{
		`--auth_addr: element 2 of "127.0.0.1:50051," is empty`,
		`--conversation_addr: element 2 of "127.0.0.1:50052,127.0.0.1" ("127.0.0.1") is not host:port`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "--message_addr") {
		t.Errorf("error %q blames the valid --message_addr", err)
	}
}
