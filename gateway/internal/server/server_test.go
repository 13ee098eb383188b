package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chat-backend/gateway"
	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/server"
)

// ---------------------------------------------------------------------------
// Harness: the real gateway handler on an httptest server, talking gRPC to
// fake backends.

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type gw struct {
	t    *testing.T
	url  string
	logs *syncBuffer
	// handler is the gateway under test.
	handler *server.Handler
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newGatewayTo serves the gateway with its three upstreams at these addresses.
func newGatewayTo(t *testing.T, authAddr, convAddr, msgAddr string, opts server.Options) *gw {
	t.Helper()
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := server.New(context.Background(), server.Upstreams{
		Auth:         dial(t, authAddr),
		Conversation: dial(t, convAddr),
		Message:      dial(t, msgAddr),
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &gw{t: t, url: ts.URL, logs: logs, handler: h}
}

// newGateway starts one backend that serves all three services.
func newGateway(t *testing.T, opts server.Options) (*gw, *backend) {
	t.Helper()
	b := startBackend(t)
	return newGatewayTo(t, b.addr, b.addr, b.addr, opts), b
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; headers are name, value pairs.
func (g *gw) do(method, path, body string, headers ...string) response {
	g.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return g.send(method, path, r, headers...)
}

func (g *gw) send(method, path string, body io.Reader, headers ...string) response {
	g.t.Helper()
	req, err := http.NewRequest(method, g.url+path, body)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

type envelope struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"details"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// envelopeOf checks that r is an error envelope with the given status and
// code, that details is an array and request_id matches X-Request-Id.
func envelopeOf(t *testing.T, r response, httpStatus int, code string) envelope {
	t.Helper()
	if r.status != httpStatus {
		t.Errorf("status = %d, want %d (body %s)", r.status, httpStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil || raw.Error == nil {
		t.Fatalf("not an envelope: %s (%v)", r.body, err)
	}
	for _, k := range []string{"code", "message", "details", "request_id"} {
		if _, ok := raw.Error[k]; !ok {
			t.Errorf("envelope lacks %q: %s", k, r.body)
		}
	}
	if d := string(raw.Error["details"]); !strings.HasPrefix(d, "[") {
		t.Errorf("details = %s, want an array", d)
	}
	var e envelope
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Code != code {
		t.Errorf("code = %q, want %q (body %s)", e.Error.Code, code, r.body)
	}
	if id := r.header.Get("X-Request-Id"); id == "" || e.Error.RequestID != id {
		t.Errorf("request_id = %q, X-Request-Id = %q", e.Error.RequestID, id)
	}
	return e
}

func mustStatus(t *testing.T, c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	t.Helper()
	st := status.New(c, msg)
	for _, d := range details {
		var err error
		if st, err = st.WithDetails(d); err != nil {
			t.Fatal(err)
		}
	}
	return st.Err()
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// ---------------------------------------------------------------------------
// Errors

func TestErrorEnvelopeForEveryCode(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	const secret = `ERROR: relation "conversations" does not exist (SQLSTATE 42P01) at /src/services/conversation/db.cc:88`
	for _, tc := range []struct {
		code       codes.Code
		httpStatus int
		name       string
		message    string // "" = the service's message passes through
	}{
		{codes.Unknown, 500, "UNKNOWN", "internal error"},
		{codes.InvalidArgument, 400, "INVALID_ARGUMENT", ""},
		{codes.DeadlineExceeded, 504, "DEADLINE_EXCEEDED", "the service did not answer in time"},
		{codes.NotFound, 404, "NOT_FOUND", ""},
		{codes.AlreadyExists, 409, "ALREADY_EXISTS", ""},
		{codes.PermissionDenied, 403, "PERMISSION_DENIED", ""},
		{codes.ResourceExhausted, 429, "RESOURCE_EXHAUSTED", ""},
		{codes.FailedPrecondition, 412, "FAILED_PRECONDITION", ""},
		{codes.Aborted, 409, "ABORTED", ""},
		{codes.OutOfRange, 400, "OUT_OF_RANGE", ""},
		{codes.Unimplemented, 501, "UNIMPLEMENTED", ""},
		{codes.Internal, 500, "INTERNAL", "internal error"},
		{codes.Unavailable, 503, "UNAVAILABLE", "service unavailable, retry later"},
		{codes.DataLoss, 500, "DATA_LOSS", "internal error"},
		{codes.Unauthenticated, 401, "UNAUTHENTICATED", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.setFail(status.Error(tc.code, secret))
			r := g.do("GET", "/v1/conversations/c1", "")
			e := envelopeOf(t, r, tc.httpStatus, tc.name)
			want := tc.message
			if want == "" {
				want = secret
			}
			if e.Error.Message != want {
				t.Errorf("message = %q, want %q", e.Error.Message, want)
			}
			if len(e.Error.Details) != 0 {
				t.Errorf("details = %v, want none", e.Error.Details)
			}
			if tc.message != "" && strings.Contains(string(r.body), "db.cc") {
				t.Errorf("internals leaked: %s", r.body)
			}
		})
	}
	if !strings.Contains(g.logs.String(), "db.cc:88") {
		t.Error("the scrubbed original message is not in the log")
	}
}

// A service that cancels a call (it is shutting down) while the client
// still waits has not been refused by the client: 503, retry, never 499.
func TestUpstreamCancelWhileTheClientWaitsIsUnavailable(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setFail(status.Error(codes.Canceled, "context canceled"))
	r := g.do("GET", "/v1/conversations/c1", "")
	e := envelopeOf(t, r, 503, "UNAVAILABLE")
	if e.Error.Message != "service unavailable, retry later" {
		t.Errorf("message = %q", e.Error.Message)
	}
}

func TestBadRequestDetailsListEveryViolation(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setFail(mustStatus(t, codes.InvalidArgument, "validation failed", &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "password", Description: "must contain a digit"},
			{Field: "username", Description: "must be 3..80 of [A-Za-z0-9_]"},
		},
	}))
	r := g.do("POST", "/v1/auth/register", `{"username":"x","email":"a@b.c","password":"p"}`)
	e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
	if e.Error.Message != "validation failed" || len(e.Error.Details) != 2 ||
		e.Error.Details[0].Field != "password" || e.Error.Details[0].Description != "must contain a digit" ||
		e.Error.Details[1].Field != "username" {
		t.Errorf("envelope = %s", r.body)
	}
}

func TestRetryAfterFromRetryInfo(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setFail(mustStatus(t, codes.ResourceExhausted, "too many failed logins",
		&errdetails.RetryInfo{RetryDelay: durationpb.New(90*time.Second + time.Millisecond)}))
	r := g.do("POST", "/v1/auth/login", `{"login":"bob","password":"x"}`)
	envelopeOf(t, r, 429, "RESOURCE_EXHAUSTED")
	if got := r.header.Get("Retry-After"); got != "91" {
		t.Errorf("Retry-After = %q, want 91", got)
	}

	b.setFail(status.Error(codes.ResourceExhausted, "slow down"))
	r = g.do("POST", "/v1/auth/login", `{"login":"bob","password":"x"}`)
	envelopeOf(t, r, 429, "RESOURCE_EXHAUSTED")
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After without RetryInfo = %q, want 1", got)
	}
}

func TestTransportErrorsDoNotLeak(t *testing.T) {
	// An address where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	b := startBackend(t)
	g := newGatewayTo(t, b.addr, dead, b.addr, server.Options{})
	r := g.do("GET", "/v1/conversations/c1", "", "X-Request-Id", "rid")
	e := envelopeOf(t, r, 503, "UNAVAILABLE")
	if e.Error.Message != "service unavailable, retry later" {
		t.Errorf("message = %q", e.Error.Message)
	}
	_, port, _ := net.SplitHostPort(dead)
	for _, leak := range []string{"127.0.0.1", port, "refused", "dial", "transport"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("answer leaks %q: %s", leak, r.body)
		}
	}
	if !strings.Contains(g.logs.String(), port) {
		t.Error("the log lacks the original transport error")
	}
}

func TestClientDeadlineIsScrubbed(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	b.setBlock() // The call ends only when its deadline passes.
	r := g.do("GET", "/v1/conversations/c1", "", "Grpc-Timeout", "20m")
	e := envelopeOf(t, r, 504, "DEADLINE_EXCEEDED")
	if e.Error.Message != "the service did not answer in time" {
		t.Errorf("message = %q", e.Error.Message)
	}
}

// ---------------------------------------------------------------------------
// Request ids and forwarded headers

func TestRequestIDPropagation(t *testing.T) {
	g, b := newGateway(t, server.Options{})

	r := g.do("GET", "/v1/conversations/c1", "", "X-Request-Id", "client-chosen.id-42")
	if r.status != 200 || r.header.Get("X-Request-Id") != "client-chosen.id-42" {
		t.Fatalf("status %d, X-Request-Id %q", r.status, r.header.Get("X-Request-Id"))
	}
	if got := b.lastCall(t).md.Get("x-request-id"); !slices.Equal(got, []string{"client-chosen.id-42"}) {
		t.Errorf("metadata x-request-id = %q", got)
	}

	for name, bad := range map[string]string{
		"too long":  strings.Repeat("a", 129),
		"non-ASCII": "id-\u00e9\u00e9",
	} {
		t.Run(name, func(t *testing.T) {
			r := g.do("GET", "/v1/conversations/c1", "", "X-Request-Id", bad)
			id := r.header.Get("X-Request-Id")
			if !uuidRE.MatchString(id) {
				t.Errorf("X-Request-Id = %q, want a new UUID", id)
			}
			if got := b.lastCall(t).md.Get("x-request-id"); !slices.Equal(got, []string{id}) {
				t.Errorf("metadata x-request-id = %q, want [%s]", got, id)
			}
		})
	}

	r = g.do("GET", "/v1/conversations/c1", "")
	id := r.header.Get("X-Request-Id")
	if !uuidRE.MatchString(id) {
		t.Errorf("made X-Request-Id = %q", id)
	}
	if got := b.lastCall(t).md.Get("x-request-id"); !slices.Equal(got, []string{id}) {
		t.Errorf("metadata x-request-id = %q, want [%s]", got, id)
	}

	// Errors, routing errors and health answers carry it too.
	b.setFail(status.Error(codes.NotFound, "conversation not found"))
	e := envelopeOf(t, g.do("GET", "/v1/conversations/c1", "", "X-Request-Id", "rid-err"), 404, "NOT_FOUND")
	if e.Error.RequestID != "rid-err" {
		t.Errorf("request_id = %q", e.Error.RequestID)
	}
	for _, path := range []string{"/nope", "/healthz", "/openapi.json", "/metrics"} {
		if got := g.do("GET", path, "", "X-Request-Id", "rid-x").header.Get("X-Request-Id"); got != "rid-x" {
			t.Errorf("GET %s: X-Request-Id = %q", path, got)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	r := g.do("POST", "/v1/conversations/c1/messages", `{"role":"user","content":"hi"}`,
		"Authorization", "Bearer tok-123", "Idempotency-Key", "key-1", "Grpc-Metadata-X-Evil", "1")
	if r.status != 201 {
		t.Fatalf("status = %d: %s", r.status, r.body)
	}
	md := b.lastCall(t).md
	if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer tok-123"}) {
		t.Errorf("authorization = %q", got)
	}
	if got := md.Get("idempotency-key"); !slices.Equal(got, []string{"key-1"}) {
		t.Errorf("idempotency-key = %q", got)
	}
	for _, k := range []string{"grpcgateway-authorization", "x-evil"} {
		if got := md.Get(k); len(got) != 0 {
			t.Errorf("%s forwarded: %q", k, got)
		}
	}
}

func TestAccessLogHoldsNoSecrets(t *testing.T) {
	g, _ := newGateway(t, server.Options{})
	g.do("POST", "/v1/auth/login", `{"login":"bob","password":"hunter2-secret"}`,
		"Authorization", "Bearer tok-very-secret", "X-Request-Id", "rid-log")
	logs := g.logs.String()
	for _, secret := range []string{"hunter2-secret", "tok-very-secret"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log holds %q:\n%s", secret, logs)
		}
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "http request" && rec["request_id"] == "rid-log" {
			found = true
			if rec["route"] != "/v1/auth/login" || rec["status"] != float64(200) || rec["method"] != "POST" {
				t.Errorf("access log = %v", rec)
			}
		}
	}
	if !found {
		t.Errorf("no access log line for rid-log:\n%s", logs)
	}
}

func TestAccessLogHoldsNoShareToken(t *testing.T) {
	g, _ := newGateway(t, server.Options{})
	const token = "Sh4reT0kenSh4reT0kenSh4reT0kenSh4reT0ken123"
	g.do("GET", "/v1/shares/"+token, "", "X-Request-Id", "rid-share")
	// The web client's page of the same share (webclient.go).
	g.do("GET", "/s/"+token, "", "X-Request-Id", "rid-share-page")
	logs := g.logs.String()
	if strings.Contains(logs, token) {
		t.Errorf("log holds the share token:\n%s", logs)
	}
	found := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		want := map[any]string{"rid-share": "/v1/shares/{token}", "rid-share-page": "/s/{token}"}[rec["request_id"]]
		if rec["msg"] == "http request" && want != "" {
			found[want] = true
			if rec["path"] != want {
				t.Errorf("access log path = %v, want %s", rec["path"], want)
			}
		}
	}
	if len(found) != 2 {
		t.Errorf("access log lines for %v only:\n%s", found, logs)
	}
}

// ---------------------------------------------------------------------------
// Success statuses and bodies

func TestSuccessStatuses(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, tc := range []struct {
		method, path, body string
		rpc                string
		status             int
	}{
		{"POST", "/v1/auth/register", `{"username":"bob","email":"b@x.io","password":"Secret123"}`, "Register", 201},
		{"POST", "/v1/conversations", `{"title":"t"}`, "CreateConversation", 201},
		{"POST", "/v1/conversations/c1/messages", `{"role":"user","content":"hi"}`, "CreateMessage", 201},
		{"POST", "/v1/conversations/c1/messages/m1:fork", `{"title":"t"}`, "ForkConversation", 201},
		{"POST", "/v1/conversations/c1/messages/m1:fork", "", "ForkConversation", 201},
		{"POST", "/v1/auth/logout", `{"refresh_token":"r"}`, "Logout", 204},
		{"DELETE", "/v1/auth/profile", `{"current_password":"p"}`, "DeleteAccount", 204},
		{"DELETE", "/v1/conversations/c1", "", "DeleteConversation", 204},
		{"DELETE", "/v1/conversations", "", "DeleteAllConversations", 204},
		{"DELETE", "/v1/conversations/c1/messages/m1", "", "DeleteMessage", 204},
		{"DELETE", "/v1/conversations/c1/messages", "", "ClearMessages", 204},
		{"POST", "/v1/auth/login", `{"login":"bob","password":"p"}`, "Login", 200},
		{"POST", "/v1/auth/refresh", `{"refresh_token":"r"}`, "Refresh", 200},
		{"GET", "/v1/auth/profile", "", "GetProfile", 200},
		{"PATCH", "/v1/auth/profile", `{"current_password":"p"}`, "UpdateProfile", 200},
		{"GET", "/v1/auth/jwks", "", "GetJwks", 200},
		{"GET", "/v1/conversations?page_size=5&archived=true&q=x", "", "ListConversations", 200},
		{"GET", "/v1/conversations/c1", "", "GetConversation", 200},
		{"PATCH", "/v1/conversations/c1", `{"pinned":true}`, "UpdateConversation", 200},
		{"GET", "/v1/conversations/c1/messages?order=desc", "", "ListMessages", 200},
		{"GET", "/v1/conversations/c1/messages/m1", "", "GetMessage", 200},
		{"PATCH", "/v1/conversations/c1/messages/m1", `{"content":"x"}`, "UpdateMessage", 200},
		{"POST", "/v1/conversations/c1/messages/m1:cancel", "", "CancelReply", 200},
	} {
		t.Run(tc.rpc, func(t *testing.T) {
			r := g.do(tc.method, tc.path, tc.body)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r.body)
			}
			if got := b.lastCall(t).method; got != tc.rpc {
				t.Errorf("backend got %s, want %s", got, tc.rpc)
			}
			if tc.status == 204 {
				if len(r.body) != 0 {
					t.Errorf("204 body = %q, want none", r.body)
				}
				if ct := r.header.Get("Content-Type"); ct != "" {
					t.Errorf("204 Content-Type = %q, want none", ct)
				}
				return
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !json.Valid(r.body) {
				t.Errorf("body is not JSON: %s", r.body)
			}
		})
	}
}

func TestResponsesUseProtoNamesAndShowDefaults(t *testing.T) {
	g, _ := newGateway(t, server.Options{})
	r := g.do("GET", "/v1/conversations/c1", "")
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "c1", "title": "t", "metadata": map[string]any{}, "archived": false, "pinned": false,
		"message_count": 0, "last_message_at": nil, "created_at": nil, "updated_at": nil,
		// active_message_id is input only: optional, so it is left out.
		"active_leaf_id": "",
	}
	if len(got) != len(want) {
		t.Errorf("fields = %v, want %v", got, want)
	}
	for k, v := range want {
		gv, ok := got[k]
		if !ok {
			t.Errorf("field %q missing: %s", k, r.body)
			continue
		}
		if gb, _ := json.Marshal(gv); string(gb) != mustJSON(v) {
			t.Errorf("%s = %s, want %s", k, gb, mustJSON(v))
		}
	}

	r = g.do("POST", "/v1/auth/register", `{"username":"bob","email":"b@x.io","password":"Secret123"}`)
	if !bytes.Contains(r.body, []byte(`"token_type":`)) || !bytes.Contains(r.body, []byte(`"expires_in":`)) ||
		bytes.Contains(r.body, []byte(`tokenType`)) {
		t.Errorf("register answer is not snake_case: %s", r.body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ---------------------------------------------------------------------------
// Bad requests

func TestBodyLimit(t *testing.T) {
	g, b := newGateway(t, server.Options{MaxBodyBytes: 64})
	big := `{"login":"` + strings.Repeat("a", 100) + `","password":"x"}`

	// Content-Length says it up front.
	r := g.do("POST", "/v1/auth/login", big)
	e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
	if e.Error.Message != "request body exceeds 64 bytes" {
		t.Errorf("message = %q", e.Error.Message)
	}

	// Chunked: no length; the reader stops at the limit.
	r = g.send("POST", "/v1/auth/login", io.MultiReader(strings.NewReader(big)))
	e = envelopeOf(t, r, 400, "INVALID_ARGUMENT")
	if e.Error.Message != "request body exceeds 64 bytes" {
		t.Errorf("chunked: message = %q", e.Error.Message)
	}
	r = g.send("POST", "/v1/conversations/c1/chat", io.MultiReader(strings.NewReader(`{"content":"`+strings.Repeat("a", 100)+`"}`)))
	e = envelopeOf(t, r, 400, "INVALID_ARGUMENT")
	if e.Error.Message != "request body exceeds 64 bytes" {
		t.Errorf("chat, chunked: message = %q", e.Error.Message)
	}
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}

	// At the limit is fine.
	ok := `{"login":"` + strings.Repeat("a", 64-len(`{"login":"","password":"x"}`)) + `","password":"x"}`
	if len(ok) != 64 {
		t.Fatalf("len = %d", len(ok))
	}
	if r := g.send("POST", "/v1/auth/login", io.MultiReader(strings.NewReader(ok))); r.status != 200 {
		t.Errorf("64-byte body: status %d: %s", r.status, r.body)
	}
}

func TestMalformedBodies(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, tc := range []struct {
		name, body, message string
	}{
		{"not JSON", `{login: bob}`, "malformed JSON body: "},
		{"truncated", `{"login":"bob"`, "malformed JSON body: unexpected end of input"},
		{"unknown field", `{"login":"bob","password":"p","admin":true}`, `invalid JSON body: `},
		{"wrong type", `{"login":5,"password":"p"}`, `invalid JSON body: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.do("POST", "/v1/auth/login", tc.body)
			e := envelopeOf(t, r, 400, "INVALID_ARGUMENT")
			if !strings.HasPrefix(e.Error.Message, tc.message) {
				t.Errorf("message = %q, want prefix %q", e.Error.Message, tc.message)
			}
		})
	}
	e := envelopeOf(t, g.do("POST", "/v1/auth/login", `{"login":"bob","admin":true}`), 400, "INVALID_ARGUMENT")
	if !strings.Contains(e.Error.Message, `unknown field "admin"`) {
		t.Errorf("message = %q, want it to name the field", e.Error.Message)
	}
	// Unknown fields inside a sub-message body are rejected too.
	envelopeOf(t, g.do("PATCH", "/v1/conversations/c1", `{"title":"x","owner":"me"}`), 400, "INVALID_ARGUMENT")
	// A bad query parameter.
	envelopeOf(t, g.do("GET", "/v1/conversations?page_size=ten", ""), 400, "INVALID_ARGUMENT")
	if n := b.callCount(); n != 0 {
		t.Errorf("the backend was called %d times", n)
	}
}

func TestRoutingErrors(t *testing.T) {
	g, _ := newGateway(t, server.Options{})

	e := envelopeOf(t, g.do("GET", "/v1/nope", ""), 404, "NOT_FOUND")
	if e.Error.Message != "route not found" {
		t.Errorf("404 message = %q", e.Error.Message)
	}
	// GET / is the web client (webclient_test.go); other paths outside the
	// API are not.
	envelopeOf(t, g.do("GET", "/nope", ""), 404, "NOT_FOUND")
	envelopeOf(t, g.do("GET", "/v1/conversations/c1/messages/m1/extra", ""), 404, "NOT_FOUND")

	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/v1/auth/profile", "DELETE, GET, PATCH, PUT"},
		{"GET", "/v1/auth/login", "POST"},
		{"PUT", "/v1/conversations", "DELETE, GET, POST"},
		{"POST", "/v1/conversations/c1", "DELETE, GET, PATCH, PUT"},
		{"GET", "/v1/conversations/c1/chat", "POST"},
		{"GET", "/v1/conversations/c1/messages/m1:regenerate", "POST"},
		{"DELETE", "/v1/conversations/c1/messages/m1:fork", "POST"},
		{"GET", "/v1/conversations/c1/messages/m1:cancel", "POST"},
		{"POST", "/v1/conversations/c1/messages/m1/stream", "GET"},
		{"POST", "/v1/conversations/c1/messages/m1", "DELETE, GET, PATCH, PUT"},
		{"POST", "/healthz", "GET"},
		{"DELETE", "/openapi.json", "GET"},
	} {
		r := g.do(tc.method, tc.path, "")
		e := envelopeOf(t, r, 405, "UNIMPLEMENTED")
		if e.Error.Message != "method not allowed" {
			t.Errorf("%s %s: message = %q", tc.method, tc.path, e.Error.Message)
		}
		if got := r.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

// TestCustomMethods: ":regenerate", ":fork" and ":cancel" on a message reach their
// RPCs and leave GET, PATCH, PUT and DELETE of the message alone; a verb the
// route does not have is never passed on as part of an id.
func TestCustomMethods(t *testing.T) {
	g, b := newGateway(t, server.Options{})

	// The message routes without a verb are not shadowed.
	for _, tc := range []struct{ method, body, rpc string }{
		{"GET", "", "GetMessage"},
		{"PATCH", `{"content":"x"}`, "UpdateMessage"},
		{"PUT", `{"content":"x"}`, "UpdateMessage"},
		{"DELETE", "", "DeleteMessage"},
	} {
		r := g.do(tc.method, "/v1/conversations/c1/messages/m1", tc.body)
		if r.status >= 300 {
			t.Errorf("%s: status %d: %s", tc.method, r.status, r.body)
		}
		c := b.lastCall(t)
		if c.method != tc.rpc || c.req.(interface{ GetId() string }).GetId() != "m1" {
			t.Errorf("%s: backend got %s %v", tc.method, c.method, c.req)
		}
	}

	r := g.do("POST", "/v1/conversations/c1/messages/m1:fork", `{"title":"Branch"}`)
	if r.status != 201 {
		t.Fatalf("fork: status %d: %s", r.status, r.body)
	}
	fork := b.lastCall(t).req.(*chatv1.ForkConversationRequest)
	if fork.GetConversationId() != "c1" || fork.GetId() != "m1" || fork.Title == nil || fork.GetTitle() != "Branch" {
		t.Errorf("fork request = %v", fork)
	}
	var conv map[string]any
	if err := json.Unmarshal(r.body, &conv); err != nil || conv["id"] != "c2" || conv["active_leaf_id"] != "m3" {
		t.Errorf("fork answer = %s", r.body)
	}
	envelopeOf(t, g.do("POST", "/v1/conversations/c1/messages/m1:fork", `{"title":"t","model":"m"}`), 400, "INVALID_ARGUMENT")

	// A colon in an earlier segment is part of that id, as always.
	if r := g.do("GET", "/v1/conversations/c:1/messages/m1", ""); r.status != 200 {
		t.Errorf("colon in conversation_id: status %d: %s", r.status, r.body)
	}
	if req := b.lastCall(t).req.(*chatv1.GetMessageRequest); req.GetConversationId() != "c:1" || req.GetId() != "m1" {
		t.Errorf("request = %v", req)
	}

	calls := b.callCount()
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/conversations/c1/messages/m1:frobnicate"},
		{"GET", "/v1/conversations/c1/messages/m1:frobnicate"},
		{"PATCH", "/v1/conversations/c1/messages/m1:frobnicate"},
		{"DELETE", "/v1/conversations/c1/messages/m1:frobnicate"},
		{"POST", "/v1/conversations/c1/messages/m1:Regenerate"},
		{"POST", "/v1/conversations/c1/messages/m1:"},
		{"POST", "/v1/conversations/c1/messages/:regenerate"},
		{"POST", "/v1/conversations/c1/messages:regenerate"},
		{"POST", "/v1/conversations/c1:fork"},
		{"GET", "/v1/conversations/c1:fork"},
		{"POST", "/v1/conversations/c1/chat:regenerate"},
		{"POST", "/v1/conversations/c1:cancel"},
		{"GET", "/v1/conversations/c1/messages/m1/stream:cancel"},
		{"GET", "/healthz:x"},
	} {
		e := envelopeOf(t, g.do(tc.method, tc.path, "{}"), 404, "NOT_FOUND")
		if e.Error.Message != "route not found" {
			t.Errorf("%s %s: message = %q", tc.method, tc.path, e.Error.Message)
		}
	}
	for _, method := range []string{"GET", "PATCH", "PUT", "DELETE"} {
		for _, verb := range []string{"regenerate", "fork", "cancel"} {
			r := g.do(method, "/v1/conversations/c1/messages/m1:"+verb, "{}")
			envelopeOf(t, r, 405, "UNIMPLEMENTED")
			if got := r.header.Get("Allow"); got != "POST" {
				t.Errorf("%s :%s: Allow = %q", method, verb, got)
			}
		}
	}
	if n := b.callCount(); n != calls {
		t.Errorf("the backend was called %d times", n-calls)
	}

	// A colon inside a message id (the one before the verb is the id's).
	r = g.do("POST", "/v1/conversations/c1/messages/a:b:fork", "")
	if r.status != 201 || b.lastCall(t).req.(*chatv1.ForkConversationRequest).GetId() != "a:b" {
		t.Errorf("a:b:fork = %d %v", r.status, b.lastCall(t).req)
	}
}

// ---------------------------------------------------------------------------
// Partial updates

func TestPutBehavesLikePatch(t *testing.T) {
	g, b := newGateway(t, server.Options{})
	for _, method := range []string{"PATCH", "PUT"} {
		t.Run(method, func(t *testing.T) {
			r := g.do(method, "/v1/conversations/c1", `{"title":"new","metadata":{"a":"1","b.c":"2"}}`)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			req := b.lastCall(t).req.(*chatv1.UpdateConversationRequest)
			if req.GetId() != "c1" || req.GetConversation().GetTitle() != "new" ||
				req.GetConversation().GetMetadata()["b.c"] != "2" {
				t.Errorf("request = %v", req)
			}
			// A map field is masked as a whole, never per key.
			if got := req.GetUpdateMask().GetPaths(); !slices.Equal(got, []string{"metadata", "title"}) {
				t.Errorf("update_mask = %q, want [metadata title]", got)
			}

			r = g.do(method, "/v1/conversations/c1", `{"metadata":{}}`)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			req = b.lastCall(t).req.(*chatv1.UpdateConversationRequest)
			if got := req.GetUpdateMask().GetPaths(); !slices.Equal(got, []string{"metadata"}) {
				t.Errorf("clearing metadata: update_mask = %q, want [metadata]", got)
			}

			r = g.do(method, "/v1/conversations/c1/messages/m1", `{"content":"edited"}`)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			mreq := b.lastCall(t).req.(*chatv1.UpdateMessageRequest)
			if mreq.GetConversationId() != "c1" || mreq.GetId() != "m1" || mreq.GetMessage().GetContent() != "edited" ||
				!slices.Equal(mreq.GetUpdateMask().GetPaths(), []string{"content"}) {
				t.Errorf("request = %v", mreq)
			}

			r = g.do(method, "/v1/auth/profile", `{"email":"new@x.io","current_password":"p"}`)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			preq := b.lastCall(t).req.(*chatv1.UpdateProfileRequest)
			if preq.Email == nil || preq.GetEmail() != "new@x.io" || preq.Username != nil || preq.NewPassword != nil {
				t.Errorf("request = %v", preq)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Operations

func TestHealthz(t *testing.T) {
	g, _ := newGateway(t, server.Options{})
	r := g.do("GET", "/healthz", "")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` ||
		r.header.Get("Content-Type") != "application/json" {
		t.Errorf("healthz = %d %s", r.status, r.body)
	}
}

func TestReadyz(t *testing.T) {
	auth, conv, msg := startBackend(t), startBackend(t), startBackend(t)
	g := newGatewayTo(t, auth.addr, conv.addr, msg.addr, server.Options{})

	r := g.do("GET", "/readyz", "")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"status":"ready"}` {
		t.Fatalf("readyz = %d %s", r.status, r.body)
	}

	msg.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	e := envelopeOf(t, g.do("GET", "/readyz", ""), 503, "UNAVAILABLE")
	if len(e.Error.Details) != 1 || e.Error.Details[0].Field != "message" ||
		e.Error.Details[0].Description != "not serving" {
		t.Errorf("details = %+v", e.Error.Details)
	}

	// An upstream where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	g = newGatewayTo(t, dead, conv.addr, msg.addr, server.Options{})
	r = g.do("GET", "/readyz", "")
	e = envelopeOf(t, r, 503, "UNAVAILABLE")
	if len(e.Error.Details) != 2 || e.Error.Details[0].Field != "auth" || e.Error.Details[1].Field != "message" {
		t.Errorf("details = %+v", e.Error.Details)
	}
	if strings.Contains(string(r.body), "127.0.0.1") {
		t.Errorf("readyz leaks an address: %s", r.body)
	}
}

func TestMetrics(t *testing.T) {
	g, _ := newGateway(t, server.Options{})
	g.do("GET", "/v1/conversations/secret-id-1", "")
	g.do("GET", "/v1/conversations/secret-id-2", "")
	g.do("PUT", "/v1/conversations/secret-id-3", `{"title":"x"}`)
	g.do("GET", "/v1/nope/secret-id-4", "")

	r := g.do("GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("metrics = %d", r.status)
	}
	body := string(r.body)
	for _, want := range []string{
		`gateway_http_requests_total{code="200",method="GET",route="/v1/conversations/{id}"} 2`,
		`gateway_http_requests_total{code="200",method="PUT",route="/v1/conversations/{id}"} 1`,
		`gateway_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`gateway_http_request_duration_seconds_count{code="200",method="GET",route="/v1/conversations/{id}"} 2`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "secret-id") {
		t.Error("metrics hold a raw path")
	}
}

// TestOpenAPI checks that the document is served as it was built; what it
// says is checked by the gateway package's TestOpenAPIDocument.
func TestOpenAPI(t *testing.T) {
	g, _ := newGateway(t, server.Options{})
	r := g.do("GET", "/openapi.json", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("openapi = %d %q", r.status, r.header.Get("Content-Type"))
	}
	if !bytes.Equal(r.body, gateway.OpenAPI) {
		t.Error("GET /openapi.json differs from the embedded document")
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("not an OpenAPI 3 document: %q %v", doc.OpenAPI, err)
	}
}

func TestCORS(t *testing.T) {
	g, _ := newGateway(t, server.Options{CORSAllowedOrigins: []string{"https://app.example"}})

	r := g.do("OPTIONS", "/v1/conversations/c1", "",
		"Origin", "https://app.example",
		"Access-Control-Request-Method", "PATCH",
		"Access-Control-Request-Headers", "authorization,content-type,idempotency-key,x-request-id")
	if r.status >= 300 {
		t.Errorf("preflight status = %d", r.status)
	}
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("Allow-Origin = %q", got)
	}
	if got := strings.ToLower(r.header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "idempotency-key") ||
		!strings.Contains(got, "authorization") {
		t.Errorf("Allow-Headers = %q", got)
	}
	if got := r.header.Get("Access-Control-Allow-Methods"); got != "PATCH" {
		t.Errorf("Allow-Methods = %q", got)
	}

	r = g.do("GET", "/v1/conversations/c1", "", "Origin", "https://app.example")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("Allow-Origin = %q", got)
	}
	if got := r.header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "X-Request-Id") ||
		!strings.Contains(got, "Retry-After") {
		t.Errorf("Expose-Headers = %q", got)
	}

	r = g.do("GET", "/v1/conversations/c1", "", "Origin", "https://evil.example")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin allowed: %q", got)
	}

	// Without configured origins there is no CORS at all.
	plain, _ := newGateway(t, server.Options{})
	r = plain.do("GET", "/v1/conversations/c1", "", "Origin", "https://app.example")
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("CORS without origins: %q", got)
	}
}
