package httperr

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
)

// Every gRPC code: its HTTP status, its name, and whether its message may
// reach a client.
var everyCode = []struct {
	code       codes.Code
	httpStatus int
	name       string
	message    string // "" keeps the status's own message
}{
	{codes.Canceled, 499, "CANCELLED", "request cancelled"},
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
}

func TestFromStatusEveryCode(t *testing.T) {
	if len(everyCode) != 16 {
		t.Fatalf("table has %d codes, want all 16 error codes", len(everyCode))
	}
	for _, tc := range everyCode {
		t.Run(tc.name, func(t *testing.T) {
			const secret = `pq: relation "users" does not exist at /src/db.cc:42 dial tcp 10.0.0.7:5432`
			e := FromStatus(status.New(tc.code, secret), "rid-1")
			if e.HTTPStatus != tc.httpStatus {
				t.Errorf("HTTPStatus = %d, want %d", e.HTTPStatus, tc.httpStatus)
			}
			got := e.Envelope.GetError()
			if got.GetCode() != tc.name {
				t.Errorf("code = %q, want %q", got.GetCode(), tc.name)
			}
			want := tc.message
			if want == "" {
				want = secret
			}
			if got.GetMessage() != want {
				t.Errorf("message = %q, want %q", got.GetMessage(), want)
			}
			if got.GetRequestId() != "rid-1" {
				t.Errorf("request_id = %q", got.GetRequestId())
			}
			if HTTPStatus(tc.code) != tc.httpStatus {
				t.Errorf("HTTPStatus(%v) = %d", tc.code, HTTPStatus(tc.code))
			}
		})
	}
}

func TestUnexpectedCodesAreInternalErrors(t *testing.T) {
	for _, c := range []codes.Code{codes.OK, 17, 1 << 31, 1<<32 - 1} {
		e := FromStatus(status.New(c, "secret"), "")
		if e.HTTPStatus != 500 || e.Envelope.GetError().GetCode() != "UNKNOWN" ||
			e.Envelope.GetError().GetMessage() != "internal error" {
			t.Errorf("code %d: got %d %v", c, e.HTTPStatus, e.Envelope)
		}
	}
}

func withDetails(t *testing.T, st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	t.Helper()
	st, err := st.WithDetails(details...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestBadRequestDetailsAreListedInOrder(t *testing.T) {
	st := withDetails(t, status.New(codes.InvalidArgument, "validation failed"),
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "password", Description: "must contain a digit"},
			{Field: "email", Description: "is not an address"},
		}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "username", Description: "is taken"},
		}})
	body := decode(t, FromStatus(st, "r").Marshal())
	want := `[{"description":"must contain a digit","field":"password"},{"description":"is not an address","field":"email"},{"description":"is taken","field":"username"}]`
	if got := compact(t, body["error"]["details"]); got != want {
		t.Errorf("details = %s, want %s", got, want)
	}
}

func TestScrubbedStatusDropsDetails(t *testing.T) {
	st := withDetails(t, status.New(codes.Internal, "boom"),
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "sql", Description: "SELECT 1"}}})
	body := decode(t, FromStatus(st, "r").Marshal())
	if got := compact(t, body["error"]["details"]); got != "[]" {
		t.Errorf("details = %s, want []", got)
	}
}

func TestScrubEvent(t *testing.T) {
	const secret = "/var/lib/postgresql: corrupt page"
	violation := []*chatv1.FieldViolation{{Field: "model", Description: "unknown model"}}
	for _, tc := range []struct {
		code, message string
		details       []*chatv1.FieldViolation
		wantCode      string
		wantMessage   string
		wantDetails   int
	}{
		// The service's own words, not the transport's: they pass.
		{"UNAVAILABLE", "the model provider cannot be reached", nil, "UNAVAILABLE", "the model provider cannot be reached", 0},
		{"DEADLINE_EXCEEDED", "the model provider timed out", nil, "DEADLINE_EXCEEDED", "the model provider timed out", 0},
		{"INVALID_ARGUMENT", "validation failed", violation, "INVALID_ARGUMENT", "validation failed", 1},
		// Codes that can carry internals never do.
		{"INTERNAL", secret, violation, "INTERNAL", "internal error", 0},
		{"UNKNOWN", secret, nil, "UNKNOWN", "internal error", 0},
		{"DATA_LOSS", secret, nil, "DATA_LOSS", "internal error", 0},
		{"OK", secret, nil, "UNKNOWN", "internal error", 0},
		{"", secret, nil, "UNKNOWN", "internal error", 0},
		{"invalid_argument", secret, nil, "UNKNOWN", "internal error", 0},
	} {
		in := &chatv1.Error{Code: tc.code, Message: tc.message, Details: tc.details, RequestId: "theirs"}
		got, replaced := ScrubEvent(in, "rid-1")
		if got.GetCode() != tc.wantCode || got.GetMessage() != tc.wantMessage ||
			len(got.GetDetails()) != tc.wantDetails || got.GetRequestId() != "rid-1" {
			t.Errorf("%s %q: got %v", tc.code, tc.message, got)
		}
		if replaced != (tc.message != tc.wantMessage) {
			t.Errorf("%s %q: replaced = %v", tc.code, tc.message, replaced)
		}
		if got.Details == nil {
			t.Errorf("%s: details is nil, want an empty list", tc.code)
		}
		if in.GetRequestId() != "theirs" || in.GetMessage() != tc.message {
			t.Errorf("%s: the input was changed: %v", tc.code, in)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay *durationpb.Duration // nil: no RetryInfo
		want  int64
	}{
		{"absent", nil, 1},
		{"whole", durationpb.New(7 * time.Second), 7},
		{"rounded up", durationpb.New(2300 * time.Millisecond), 3},
		{"below a second", durationpb.New(10 * time.Millisecond), 1},
		{"zero", durationpb.New(0), 1},
		{"negative", durationpb.New(-5 * time.Second), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status.New(codes.ResourceExhausted, "too many attempts")
			if tc.delay != nil {
				st = withDetails(t, st, &errdetails.RetryInfo{RetryDelay: tc.delay})
			}
			if got := FromStatus(st, "").RetryAfter; got != tc.want {
				t.Errorf("RetryAfter = %d, want %d", got, tc.want)
			}
		})
	}
	// Only RESOURCE_EXHAUSTED answers with Retry-After.
	st := withDetails(t, status.New(codes.Aborted, "retry"), &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	if got := FromStatus(st, "").RetryAfter; got != 0 {
		t.Errorf("ABORTED RetryAfter = %d, want 0", got)
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("X-Request-Id", "keep-me")
	e := FromStatus(withDetails(t, status.New(codes.ResourceExhausted, "slow down"),
		&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)}), "keep-me")
	Write(w, e)
	if w.Code != http.StatusTooManyRequests {
		t.Errorf("status = %d", w.Code)
	}
	for h, want := range map[string]string{
		"Content-Type": "application/json", "Retry-After": "2", "X-Request-Id": "keep-me",
	} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	want := `{"error":{"code":"RESOURCE_EXHAUSTED","details":[],"message":"slow down","request_id":"keep-me"}}`
	if got := compact(t, json.RawMessage(w.Body.Bytes())); got != want {
		t.Errorf("body = %s, want %s", got, want)
	}

	w = httptest.NewRecorder()
	Write(w, New(http.StatusUnauthorized, codes.Unauthenticated, "missing token", "r"))
	if got := w.Header().Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("401 WWW-Authenticate = %q", got)
	}
	if w.Header().Get("Retry-After") != "" {
		t.Error("401 has Retry-After")
	}
}

func decode(t *testing.T, b []byte) map[string]map[string]json.RawMessage {
	t.Helper()
	var m map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// compact re-encodes JSON with sorted keys and no spaces: protojson varies
// its spacing on purpose.
func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A message or detail that echoes bytes that are not UTF-8 (a service quoting
// a bad value) still gives the envelope of its own code, not the fallback.
func TestInvalidUTF8IsReplaced(t *testing.T) {
	type envelope struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Details []struct {
				Field       string `json:"field"`
				Description string `json:"description"`
			} `json:"details"`
		} `json:"error"`
	}
	var got envelope
	st := status.New(codes.InvalidArgument, "bad value \"\xff\"")
	if err := json.Unmarshal(FromStatus(st, "rid").Marshal(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Error.Code != "INVALID_ARGUMENT" || got.Error.Message != "bad value \"\uFFFD\"" {
		t.Errorf("envelope = %+v", got)
	}

	got = envelope{}
	e := New(http.StatusBadRequest, codes.InvalidArgument, "validation failed", "rid",
		&chatv1.FieldViolation{Field: "q\xfe", Description: "not \xc3("})
	if err := json.Unmarshal(e.Marshal(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Error.Code != "INVALID_ARGUMENT" || len(got.Error.Details) != 1 ||
		got.Error.Details[0].Field != "q\uFFFD" || got.Error.Details[0].Description != "not \uFFFD(" {
		t.Errorf("envelope = %+v", got)
	}
}
