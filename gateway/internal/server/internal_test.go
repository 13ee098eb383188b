package server

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/chat-backend/gateway"
	chatv1 "github.com/chat-backend/gateway/gen/chat/v1"
	"github.com/chat-backend/gateway/internal/jsonout"
)

// grpc-gateway fills update_mask of a PATCH with FieldMaskFromRequestBody.
// metadata is a map<string, string>: its path must be "metadata" as a whole
// (field_mask.proto: a map field ends the path), never "metadata.<key>",
// which a service would read as "change only this key".
func TestFieldMaskKeepsMapFieldsWhole(t *testing.T) {
	for body, want := range map[string][]string{
		`{"title":"t","metadata":{"a":"1","b.c":"2"}}`: {"metadata", "title"},
		`{"metadata":{}}`:                  {"metadata"},
		`{"archived":true,"pinned":false}`: {"archived", "pinned"},
		`{}`:                               nil,
		`{"metadata":{"x":"1"},"archived":false,"title":""}`: {"archived", "metadata", "title"},
	} {
		fm, err := runtime.FieldMaskFromRequestBody(strings.NewReader(body), &chatv1.Conversation{})
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if !slices.Equal(fm.GetPaths(), want) {
			t.Errorf("%s: paths = %q, want %q", body, fm.GetPaths(), want)
		}
	}
	fm, err := runtime.FieldMaskFromRequestBody(strings.NewReader(`{"content":"c","metadata":{"k":"v"}}`), &chatv1.Message{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fm.GetPaths(), []string{"content", "metadata"}) {
		t.Errorf("message paths = %q", fm.GetPaths())
	}
}

func TestRouteTableFromTheEmbeddedDocument(t *testing.T) {
	rt, err := newRouteTable(gateway.OpenAPI, map[string][]string{"/healthz": {"GET"}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/v1/auth/profile":                            true,
		"/v1/conversations/c1":                        true,
		"/v1/conversations/c1/messages/m1":            true,
		"/v1/conversations":                           false,
		"/v1/conversations/c1/messages":               false,
		"/v1/conversations//messages/m1":              false,
		"/v1/conversations/c1/messages/m1:regenerate": false,
		"/v1/conversations/c1:x":                      false,
		"/v1/auth/login":                              false,
		"/healthz":                                    false,
	} {
		if got := rt.isUpdate(path); got != want {
			t.Errorf("isUpdate(%q) = %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string][]string{
		"/v1/conversations/c1/chat":                   {"POST"},
		"/v1/conversations/c1/messages/m1":            {"DELETE", "GET", "PATCH", "PUT"},
		"/v1/conversations/c1/messages/m1:regenerate": {"POST"},
		"/v1/conversations/c1/messages/m1:fork":       {"POST"},
		"/v1/conversations/c1/messages/m1:cancel":     {"POST"},
		"/v1/conversations/c1/messages/m1/stream":     {"GET"},
		"/v1/conversations/c1/messages/a:b:fork":      {"POST"},
		"/v1/conversations/c1/messages/m1:frobnicate": nil,
		"/v1/conversations/c1/messages/m1:":           nil,
		"/v1/conversations/c1/messages/:fork":         nil,
		"/v1/conversations/c1:fork":                   nil,
		"/v1/conversations":                           {"DELETE", "GET", "POST"},
		"/healthz":                                    {"GET"},
		"/nope":                                       nil,
	} {
		if got := rt.allowed(path); !slices.Equal(got, want) {
			t.Errorf("allowed(%q) = %q, want %q", path, got, want)
		}
	}
	if _, err := newRouteTable([]byte(`{"paths":{}}`), nil); err == nil {
		t.Error("a document without paths was accepted")
	}
}

// Every name of nonNegativeFields is an integer field of chat.v1, so a
// renamed field cannot silently lose its check.
func TestNonNegativeFieldsExist(t *testing.T) {
	for name := range nonNegativeFields {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		fd, ok := d.(protoreflect.FieldDescriptor)
		if !ok || typeProblem(fd, 1) != "must be an integer from 0 to 9223372036854775807" &&
			typeProblem(fd, 1) != "must be an integer from 0 to 2147483647" {
			t.Errorf("%s is not a signed integer field", name)
		}
	}
}

func TestAddHeaderParams(t *testing.T) {
	rt, err := newRouteTable(gateway.OpenAPI, nil)
	if err != nil {
		t.Fatal(err)
	}
	const stream = "/v1/conversations/{conversation_id}/messages/{id}/stream"
	if err := rt.addHeaderParams("GET", stream, map[string]protoreflect.Name{"Last-Event-ID": "before"}); err == nil {
		t.Error("a header for a field the request lacks was accepted")
	}
	if err := rt.addHeaderParams("POST", stream, map[string]protoreflect.Name{"Last-Event-ID": "after"}); err == nil {
		t.Error("a header for a route that does not exist was accepted")
	}
	if err := rt.addHeaderParams("GET", stream, map[string]protoreflect.Name{"Last-Event-ID": "after"}); err != nil {
		t.Fatal(err)
	}
	op, _ := rt.operation("GET", stream)
	if fd := op.headers["Last-Event-ID"]; fd == nil || fd.FullName() != "chat.v1.StreamReplyRequest.after" {
		t.Errorf("headers = %v", op.headers)
	}
}

func TestSplitVerb(t *testing.T) {
	for _, tc := range []struct {
		path, verb string
		segments   []string
	}{
		{"/v1/conversations/{conversation_id}/messages/{id}:regenerate", ":regenerate",
			[]string{"v1", "conversations", "{conversation_id}", "messages", "{id}"}},
		{"/v1/conversations/c1/messages/m1:fork", ":fork", []string{"v1", "conversations", "c1", "messages", "m1"}},
		{"/v1/conversations/c1/messages/m1", "", []string{"v1", "conversations", "c1", "messages", "m1"}},
		{"/v1/conversations/c:1/messages", "", []string{"v1", "conversations", "c:1", "messages"}},
		{"/x/a:b:c", ":c", []string{"x", "a:b"}},
		{"/x/m1:", ":", []string{"x", "m1"}},
		{"/x/:v", ":v", []string{"x", ""}},
		{"/x/{name=a:b}", "", []string{"x", "{name=a:b}"}},
		{"/", "", []string{""}},
	} {
		segments, verb := splitVerb(tc.path)
		if verb != tc.verb || !slices.Equal(segments, tc.segments) {
			t.Errorf("splitVerb(%q) = %q %q, want %q %q", tc.path, segments, verb, tc.segments, tc.verb)
		}
	}
}

func TestPutAsPatchLeavesOtherRequestsAlone(t *testing.T) {
	rt, err := newRouteTable(gateway.OpenAPI, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	h := putAsPatch(rt, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = r.Method }))
	for _, tc := range []struct{ method, path, want string }{
		{"PUT", "/v1/conversations/c1", "PATCH"},
		{"PUT", "/v1/auth/profile", "PATCH"},
		{"PUT", "/v1/conversations", "PUT"},
		{"PATCH", "/v1/conversations/c1", "PATCH"},
		{"GET", "/v1/conversations/c1", "GET"},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if seen != tc.want || r.Method != tc.method {
			t.Errorf("%s %s: handler saw %s (caller's request now %s)", tc.method, tc.path, seen, r.Method)
		}
	}
}

func TestBodyErrors(t *testing.T) {
	m := newJSONMarshaler()
	var req chatv1.LoginRequest
	if err := m.NewDecoder(strings.NewReader("")).Decode(&req); err != io.EOF {
		t.Errorf("empty body: %v, want io.EOF", err)
	}
	if err := m.NewDecoder(strings.NewReader(" {\"login\":\"x\"}\n ")).Decode(&req); err != nil {
		t.Errorf("one value with spaces around it: %v", err)
	}
	for body, want := range map[string]string{
		`{"login":`:     "malformed JSON body: unexpected end of input",
		"\r\n ":         "malformed JSON body: unexpected end of input",
		`[1,2`:          "malformed JSON body: unexpected end of input",
		`{"login" "x"}`: "malformed JSON body: invalid character '\"' after object key (at byte 10)",
		`{"nope":1}`:    `invalid JSON body: (line 1:2): unknown field "nope"`,
		`{"login":1}`:   "invalid JSON body: (line 1:10): invalid value for string field login: 1",
		// The body is one JSON value, not a prefix of one.
		`{"login":"x"}}`:     "malformed JSON body: data after the JSON value",
		`{"login":"x"} {}`:   "malformed JSON body: data after the JSON value",
		`{"login":"x"} junk`: "malformed JSON body: data after the JSON value",
	} {
		err := m.NewDecoder(strings.NewReader(body)).Decode(&req)
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

func TestRecorderKeepsFlushing(t *testing.T) {
	w := httptest.NewRecorder()
	rec := &recorder{ResponseWriter: w}
	if err := http.NewResponseController(rec).Flush(); err != nil {
		t.Fatalf("Flush through the recorder: %v", err)
	}
	if !w.Flushed || rec.status != http.StatusOK {
		t.Errorf("flushed %v, status %d", w.Flushed, rec.status)
	}
	if got := rec.Unwrap(); got != w {
		t.Errorf("Unwrap() = %v", got)
	}

	// A writer that cannot flush says so instead of failing silently.
	rec = &recorder{ResponseWriter: struct{ http.ResponseWriter }{httptest.NewRecorder()}}
	if err := http.NewResponseController(rec).Flush(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Flush of a writer without Flush = %v, want http.ErrNotSupported", err)
	}
}

func TestAcceptsEventStream(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                 false,
		"application/json":                 false,
		"*/*":                              false,
		"text/event-stream":                true,
		"TEXT/Event-Stream; charset=utf-8": true,
		"application/json, text/event-stream;q=0.5": true,
		"text/event-stream;q=0":                     false,
		"text/event-stream;q=0.0, */*":              false,
		"text/event-streams":                        false,
		"text/event-stream;q=bad":                   true,
		",,text/event-stream":                       true,
	} {
		h := http.Header{}
		if accept != "" {
			h.Set("Accept", accept)
		}
		if got := acceptsEventStream(h); got != want {
			t.Errorf("Accept %q: %v, want %v", accept, got, want)
		}
	}
	h := http.Header{"Accept": {"application/json", "text/event-stream"}}
	if !acceptsEventStream(h) {
		t.Error("a second Accept header line is ignored")
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		remote, header string
		values         []string
		want           string
	}{
		{"192.0.2.1:5555", "", nil, "192.0.2.1"},
		{"192.0.2.1:5555", "", []string{"198.51.100.1"}, "192.0.2.1"}, // Not trusted.
		{"[::ffff:192.0.2.1]:5555", "", nil, "192.0.2.1"},
		{"[2001:db8:a:b:1:2:3:4]:5555", "", nil, "2001:db8:a:b::/64"},
		{"192.0.2.1:5555", "X-Forwarded-For", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"192.0.2.1:5555", "X-Forwarded-For", []string{"1.1.1.1", "198.51.100.2 "}, "198.51.100.2"},
		{"192.0.2.1:5555", "X-Forwarded-For", []string{"198.51.100.3:80"}, "198.51.100.3"},
		{"192.0.2.1:5555", "X-Forwarded-For", []string{"[2001:db8::1]"}, "2001:db8::/64"},
		{"192.0.2.1:5555", "X-Forwarded-For", []string{"fe80::1%eth0"}, "fe80::/64"},
		{"192.0.2.1:5555", "X-Forwarded-For", []string{"198.51.100.1, "}, "192.0.2.1"},
		{"192.0.2.1:5555", "X-Forwarded-For", []string{"unknown"}, "192.0.2.1"},
		{"192.0.2.1:5555", "X-Real-IP", []string{"198.51.100.4"}, "198.51.100.4"},
		{"192.0.2.1:5555", "X-Real-IP", nil, "192.0.2.1"},
		{"pipe", "", nil, "pipe"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.values {
			r.Header.Add(tc.header, v)
			if tc.header == "" {
				r.Header.Add("X-Forwarded-For", v)
			}
		}
		if got := clientKey(r, tc.header); got != tc.want {
			t.Errorf("clientKey(%s, %s: %q) = %q, want %q", tc.remote, tc.header, tc.values, got, tc.want)
		}
	}
}

func TestNullMember(t *testing.T) {
	for body, want := range map[string]string{
		`{"title":null}`:                           "title",
		`{"title":"a","pinned":null}`:              "pinned",
		`{"metadata":{"k":"v"},"title":null}`:      "title",
		`{"a":[1,{"b":null}]}`:                     "b",
		`{"title":"null","metadata":{"null":"x"}}`: "",
		`{"a":[null]}`:                             "",
		`{"a\"b":null}`:                            `a"b`,
		`{"x":"a\\","y": null}`:                    "y",
		`{"x":"a: null","y":["n"]}`:                "",
		`null`:                                     "",
		`{}`:                                       "",
	} {
		got, ok := nullMember([]byte(body))
		if got != want || ok != (want != "") {
			t.Errorf("nullMember(%s) = %q %v, want %q", body, got, ok, want)
		}
	}
}

// An answer taken undecoded whose bytes do not decode (a string that is
// not UTF-8) is the service's fault: INTERNAL, as gRPC's own decoding
// error was, not UNKNOWN.
func TestUndecodableAnswerIsInternal(t *testing.T) {
	page := &chatv1.ListMessagesResponse{}
	jsonout.SetWire(page, protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte("a\xffb")))
	_, err := newJSONMarshaler().Marshal(page)
	if status.Code(err) != codes.Internal {
		t.Fatalf("error %v, want INTERNAL", err)
	}
}
