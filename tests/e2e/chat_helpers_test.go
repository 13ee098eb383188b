package e2e

// Helpers of the conversation, message and isolation tests: typed shortcuts
// over Stack.Do, pagination walkers, and comparisons that ignore what must
// differ between two answers (the request id).

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var uuidV7Pattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// Try is Stack.Do for goroutines other than the test's: it reports a
// transport failure as an error instead of failing the test from the wrong
// goroutine.
func (s *Stack) Try(method, path string, body any, headers ...string) (Response, error) {
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	default:
		encoded, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		reader = bytes.NewReader(encoded)
	}
	req, err := http.NewRequest(method, s.BaseURL+path, reader)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	out := Response{Status: resp.StatusCode, Header: resp.Header}
	if out.Body, err = io.ReadAll(resp.Body); err != nil {
		return Response{}, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(out.Body) > 0 {
		json.Unmarshal(out.Body, &out.JSON)
	}
	return out, nil
}

// randomUUIDv7 is a well-formed id that names nothing.
func randomUUIDv7() string {
	b := make([]byte, 16)
	rand.Read(b)
	ms := time.Now().UnixMilli()
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randomKey() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "idem-" + hex.EncodeToString(b)
}

// asInt reads a JSON integer that protojson may write as a number or, for
// 64-bit fields, as a string; null and absent read as 0.
func asInt(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case string:
		var i int64
		fmt.Sscan(n, &i)
		return i
	}
	return -1 << 62 // neither: never equal to an expected count
}

func countOf(v any) int64 {
	if v == nil {
		return 0
	}
	return asInt(v)
}

// timeField parses an RFC 3339 UTC timestamp field, failing the test when it
// is missing or malformed.
func timeField(t *testing.T, obj any, field string) time.Time {
	t.Helper()
	raw := Str(obj, field)
	if !rfc3339UTC.MatchString(raw) {
		t.Fatalf("%s %q is not RFC 3339 UTC in %v", field, raw, obj)
	}
	ts, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		t.Fatalf("%s %q: %v", field, raw, err)
	}
	return ts
}

// unsetTime reports whether an optional timestamp is absent, null or "".
func unsetTime(obj any, field string) bool {
	m, _ := obj.(map[string]any)
	v, ok := m[field]
	return !ok || v == nil || v == ""
}

func mustStatus(t *testing.T, r Response, status int, what string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d; body %.400s", what, r.Status, status, r.Body)
	}
}

// expectNoContent checks a delete's answer: 204 and nothing in the body.
func expectNoContent(t *testing.T, r Response, what string) {
	t.Helper()
	if r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("%s: status %d body %q, want 204 and no body", what, r.Status, r.Body)
	}
}

func createConversation(t *testing.T, s *Stack, a Account, body any, headers ...string) map[string]any {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	r := s.Do(t, "POST", "/v1/conversations", body, append(Bearer(a.Access), headers...)...)
	mustStatus(t, r, http.StatusCreated, "create conversation")
	return r.JSON
}

func createTitled(t *testing.T, s *Stack, a Account, title string) map[string]any {
	t.Helper()
	return createConversation(t, s, a, map[string]any{"title": title})
}

func createMessage(t *testing.T, s *Stack, a Account, convID, role, content string) map[string]any {
	t.Helper()
	r := s.Do(t, "POST", "/v1/conversations/"+convID+"/messages",
		map[string]any{"role": role, "content": content}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "create message")
	return r.JSON
}

// createUnder creates a message with parent_id (an id, or "" for a new
// root) and expects 201.
func createUnder(t *testing.T, s *Stack, a Account, convID, parentID, role, content string) map[string]any {
	t.Helper()
	r := s.Do(t, "POST", messagesPath(convID),
		map[string]any{"role": role, "content": content, "parent_id": parentID}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "create message under "+parentID)
	return r.JSON
}

// getOK GETs a path as a and expects 200.
func getOK(t *testing.T, s *Stack, a Account, path string) map[string]any {
	t.Helper()
	r := s.Do(t, "GET", path, nil, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "GET "+path)
	return r.JSON
}

func conversation(t *testing.T, s *Stack, a Account, id string) map[string]any {
	t.Helper()
	return getOK(t, s, a, "/v1/conversations/"+id)
}

// items returns the list of a listing answer under key.
func items(obj map[string]any, key string) []map[string]any {
	raw, _ := obj[key].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, v := range raw {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out
}

// listPage fetches one page of a listing and returns its items and token.
func listPage(t *testing.T, s *Stack, a Account, path, key string, query url.Values) ([]map[string]any, string) {
	t.Helper()
	full := path
	if len(query) > 0 {
		full += "?" + query.Encode()
	}
	body := getOK(t, s, a, full)
	return items(body, key), Str(body, "next_page_token")
}

// listAll walks a listing to its end, page by page; it gives up after 10,000
// pages so that a token that never ends cannot hang the test.
func listAll(t *testing.T, s *Stack, a Account, path, key string, query url.Values) []map[string]any {
	t.Helper()
	var all []map[string]any
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	for page := 0; page < 10000; page++ {
		got, next := listPage(t, s, a, path, key, q)
		all = append(all, got...)
		if next == "" {
			return all
		}
		q.Set("page_token", next)
	}
	t.Fatalf("%s: the listing never ended", path)
	return nil
}

func allConversations(t *testing.T, s *Stack, a Account, query url.Values) []map[string]any {
	t.Helper()
	return listAll(t, s, a, "/v1/conversations", "conversations", query)
}

func allMessages(t *testing.T, s *Stack, a Account, convID string, query url.Values) []map[string]any {
	t.Helper()
	return listAll(t, s, a, "/v1/conversations/"+convID+"/messages", "messages", query)
}

func ids(list []map[string]any) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = Str(m, "id")
	}
	return out
}

func titles(list []map[string]any) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i] = Str(m, "title")
	}
	return out
}

// sqlOne runs a query as the superuser (which row-level security does not
// bind) and returns its single value.
func sqlOne(t *testing.T, s *Stack, query string) string {
	t.Helper()
	out, err := Psql(s.AdminURL, query)
	if err != nil {
		t.Fatalf("psql %q: %v: %s", query, err, out)
	}
	return out
}

// withoutRequestID is the body of an error answer with its request id
// removed, re-encoded canonically, for comparing two answers.
func withoutRequestID(r Response) string {
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return fmt.Sprintf("status %d, non-JSON body %q", r.Status, r.Body)
	}
	if e, ok := body["error"].(map[string]any); ok {
		delete(e, "request_id")
	}
	out, _ := json.Marshal(body)
	return fmt.Sprintf("%d %s", r.Status, out)
}

// expectSameNotFound checks that got is a NOT_FOUND envelope identical to
// want apart from the request id.
func expectSameNotFound(t *testing.T, got, want Response) {
	t.Helper()
	ExpectError(t, got, http.StatusNotFound, "NOT_FOUND")
	if g, w := withoutRequestID(got), withoutRequestID(want); g != w {
		t.Fatalf("404 bodies differ:\n got %s\nwant %s", g, w)
	}
}

// violationFields lists the field names of a validation error, with a
// leading "conversation." or "message." (the request's wrapper) removed.
func violationFields(r Response) []string {
	var out []string
	details, _ := Get(r.JSON, "error", "details").([]any)
	for _, d := range details {
		f := Str(d, "field")
		f = strings.TrimPrefix(f, "conversation.")
		f = strings.TrimPrefix(f, "message.")
		out = append(out, f)
	}
	return out
}

// countFields counts the violations on field or, with prefix, under it
// ("metadata", "metadata.key", "metadata[key]").
func countFields(fields []string, name string, prefix bool) int {
	n := 0
	for _, f := range fields {
		if f == name || prefix && (strings.HasPrefix(f, name+".") || strings.HasPrefix(f, name+"[")) {
			n++
		}
	}
	return n
}

// expectInvalid checks a 400 INVALID_ARGUMENT that names every field of want
// (metadata fields by prefix).
func expectInvalid(t *testing.T, r Response, want ...string) {
	t.Helper()
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	fields := violationFields(r)
	for _, w := range want {
		if countFields(fields, w, w == "metadata") == 0 {
			t.Errorf("no violation for %q in %q", w, Violations(r))
		}
	}
}

// sameJSON compares two decoded JSON values.
func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
