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
		Listen:           "127.0.0.1:8080",
		AuthAddr:         "127.0.0.1:50051",
		ConversationAddr: "127.0.0.1:50052",
		MessageAddr:      "127.0.0.1:50053",
		MaxBodyBytes:     1 << 20,
		DrainTimeout:     30 * time.Second,
		ReadTimeout:      30 * time.Second,
		AuthRateLimit:    30,
		AuthRateBurst:    10,
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
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:             ":9090",
		AuthAddr:           "auth:1",
		ConversationAddr:   "conv:2",
		MessageAddr:        "msg:3",
		CORSAllowedOrigins: []string{"https://a.example", "https://b.example"},
		MaxBodyBytes:       2048,
		DrainTimeout:       5 * time.Second,
		ReadTimeout:        7 * time.Second,
		AuthRateLimit:      0,
		AuthRateBurst:      3,
		TrustedProxyHeader: "X-Real-IP",
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
		Listen: ":1", AuthAddr: "a:1", ConversationAddr: "c:1", MessageAddr: "m:1",
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
