package server_test

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// docs/api.md "Checks at the gateway": malformed path or query values are a 400 in the
// envelope, with a detail naming the parameter; never a 500, never a call.
func TestMalformedParams(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	const text = "must be valid UTF-8 without NUL characters"
	type detail struct{ field, description string }
	for _, tc := range []struct {
		method, path string
		want         []detail
	}{
		{"GET", "/v1/conversations/%FF", []detail{{"id", text}}},
		{"GET", "/v1/conversations/%C3%28", []detail{{"id", text}}},
		{"GET", "/v1/conversations/%00", []detail{{"id", text}}},
		{"DELETE", "/v1/conversations/%FF", []detail{{"id", text}}},
		{"PATCH", "/v1/conversations/%FF", []detail{{"id", text}}},
		{"GET", "/v1/conversations/%FF/messages/%FE", []detail{{"conversation_id", text}, {"id", text}}},
		{"POST", "/v1/conversations/%FF/messages", []detail{{"conversation_id", text}}},
		{"POST", "/v1/conversations/%FF/chat", []detail{{"conversation_id", text}}},
		{"POST", "/v1/conversations/%FF/messages/%00:regenerate", []detail{{"conversation_id", text}, {"id", text}}},
		{"POST", "/v1/conversations/c1/messages/%FF:fork", []detail{{"id", text}}},
		{"POST", "/v1/conversations/c1/messages/%FF:cancel", []detail{{"id", text}}},
		{"GET", "/v1/conversations/%FF/messages/%00/stream", []detail{{"conversation_id", text}, {"id", text}}},
		{"GET", "/v1/conversations/c1/messages/m1/stream?after=%FF", []detail{{"after", text}}},
		{"GET", "/v1/conversations/c1/messages?branch=%FF", []detail{{"branch", text}}},
		{"GET", "/v1/conversations/c1/messages?branch=all&branch=active", []detail{{"branch", "must be given once"}}},
		{"GET", "/v1/conversations?q=%FF", []detail{{"q", text}}},
		{"GET", "/v1/conversations?page_token=%FF", []detail{{"page_token", text}}},
		{"GET", "/v1/conversations?q=a%00b", []detail{{"q", text}}},
		{"GET", "/v1/conversations/c1/messages?order=%FF", []detail{{"order", text}}},
		{"GET", "/v1/conversations?%FF=1", []detail{{"\uFFFD", text}}},
		{"POST", "/v1/auth/login?x=%FF", []detail{{"x", text}}},
		{"GET", "/v1/conversations?page_size=99999999999999999999",
			[]detail{{"page_size", "must be an integer from -2147483648 to 2147483647"}}},
		{"GET", "/v1/conversations?pageSize=1.5",
			[]detail{{"pageSize", "must be an integer from -2147483648 to 2147483647"}}},
		{"GET", "/v1/conversations/c1/messages?page_size=ten",
			[]detail{{"page_size", "must be an integer from -2147483648 to 2147483647"}}},
		{"GET", "/v1/conversations?archived=", []detail{{"archived", "must be true or false"}}},
		{"GET", "/v1/conversations?archived=maybe", []detail{{"archived", "must be true or false"}}},
		{"GET", "/v1/conversations?q=a&q=b", []detail{{"q", "must be given once"}}},
		{"GET", "/v1/conversations?q.x=1&page_size[a]=2", []detail{
			{"page_size[a]", "is not a parameter of this route"},
			{"q.x", "is not a parameter of this route"},
		}},
		// Every offending parameter, not just the first.
		{"GET", "/v1/conversations?archived=x&page_size=x&q=%FF", []detail{
			{"archived", "must be true or false"},
			{"page_size", "must be an integer from -2147483648 to 2147483647"},
			{"q", text},
		}},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			body := ""
			if tc.method == "POST" || tc.method == "PATCH" {
				body = `{}`
			}
			r := g.do(tc.method, tc.path, body)
			e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
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
					t.Errorf("details = %q, want %q", got, tc.want)
				}
			}
		})
	}

	e := envelopeOf(t, g.do("GET", "/v1/conversations?q=%ZZ", ""), 400, "INVALID_ARGUMENT")
	if e.Error.Message != `malformed query string: invalid URL escape "%ZZ"` {
		t.Errorf("message = %q", e.Error.Message)
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}

	// Well-formed values, and parameters a route does not read, pass.
	for _, path := range []string{
		"/v1/conversations?page_size=-1&archived=TRUE&q=%C3%A9t%C3%A9&unknown=%C3%A9",
		"/v1/conversations/%C3%A9",
		"/v1/conversations/c1/messages?page_size=0&order=desc",
	} {
		if r := g.do("GET", path, ""); r.status != 200 {
			t.Errorf("GET %s: status %d: %s", path, r.status, r.body)
		}
	}
	if got := b.lastCall(t).method; got != "ListMessages" {
		t.Errorf("last call %q", got)
	}

	// branch is passed on as sent: "active" and "all" are the message
	// service's to check, like order.
	for _, branch := range []string{"all", "active", "", "sideways"} {
		if r := g.do("GET", "/v1/conversations/c1/messages?order=desc&branch="+branch, ""); r.status != 200 {
			t.Errorf("branch=%s: status %d: %s", branch, r.status, r.body)
		}
		req := b.lastCall(t).req.(*chatv1.ListMessagesRequest)
		if req.GetBranch() != branch || req.GetOrder() != "desc" || req.GetConversationId() != "c1" {
			t.Errorf("branch=%s: request = %v", branch, req)
		}
	}
}

// docs/api.md "Checks at the gateway": a non-ASCII Idempotency-Key is 400. grpc-gateway
// would drop it from the metadata, and the create would run without it.
func TestMalformedIdempotencyKey(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, key := range []string{
		"ключ",
		"caf\xe9",
		"tab\there",
		strings.Repeat("k", 256),
	} {
		for _, path := range []string{"/v1/conversations", "/v1/conversations/c1/messages"} {
			r := g.do("POST", path, `{}`, "Idempotency-Key", key)
			e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
			if len(e.Error.Details) != 1 || e.Error.Details[0].Field != "idempotency_key" ||
				e.Error.Details[0].Description != "must be 1 to 255 printable ASCII characters" {
				t.Errorf("key %q: %s", key, r.body)
			}
		}
	}
	// Given twice.
	req, err := http.NewRequest("POST", g.url+"/v1/conversations", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Idempotency-Key", "a")
	req.Header.Add("Idempotency-Key", "b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("two keys: status %d", resp.StatusCode)
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}

	// The longest valid key, spaces and symbols included, is forwarded.
	key := "k ~!" + strings.Repeat("x", 251)
	if r := g.do("POST", "/v1/conversations", `{}`, "Idempotency-Key", key); r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := b.lastCall(t).md.Get("idempotency-key"); len(got) != 1 || got[0] != key {
		t.Errorf("metadata idempotency-key = %q", got)
	}
}

// Headers that grpc-gateway passes on as metadata can be too large for a
// service (gRPC C++ takes 8 KiB, and tells grpc-go so): a 400, not the 500
// of a call grpc-go refuses to send.
func TestForwardedHeadersTooLarge(t *testing.T) {
	b := startBackend(t, grpc.MaxHeaderListSize(8<<10)) // As gRPC C++ does.
	g := newGatewayTo(t, b.addr, b.addr, b.addr, server.Options{})
	big := strings.Repeat("a", 9000)
	for _, h := range []string{"Authorization", "User-Agent", "Accept-Language", "X-Forwarded-For", "Referer"} {
		value := big
		if h == "Authorization" {
			value = "Bearer " + big
		}
		e := envelopeOf(t, g.do("GET", "/v1/conversations/c1", "", h, value), 400, "INVALID_ARGUMENT")
		if e.Error.Message != "request headers too large: at most 6144 bytes of them are passed to the services" {
			t.Errorf("%s: message = %q", h, e.Error.Message)
		}
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}
	// Large headers that are not passed on, and passed-on ones up to the
	// limit, are fine.
	for _, h := range [][]string{
		{"Cookie", big},
		{"X-Custom", big},
		{"Authorization", "Bearer " + strings.Repeat("a", 5000), "User-Agent", strings.Repeat("u", 500)},
	} {
		if r := g.do("GET", "/v1/conversations/c1", "", h...); r.status != 200 {
			t.Errorf("%s: status %d: %s", h[0], r.status, r.body)
		}
	}
}
