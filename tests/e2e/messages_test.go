package e2e

// MessageService through the gateway: docs/api.md "Messages" and the decisions
// taken where it is silent (content counted in code points, verbatim storage,
// exact counts, keyset pagination with tokens bound to their listing,
// idempotency keys).

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

var messageFields = []string{"id", "conversation_id", "parent_id", "role", "content", "status", "model", "metadata",
	"sibling_index", "sibling_count", "created_at", "updated_at"}

func messagesPath(convID string) string { return "/v1/conversations/" + convID + "/messages" }

func messagePath(convID, id string) string { return messagesPath(convID) + "/" + id }

// expectCounts checks message_count and that last_message_at is the
// created_at of newest (unset when newest is nil).
func expectCounts(t *testing.T, s *Stack, a Account, convID string, count int64, newest map[string]any) map[string]any {
	t.Helper()
	c := conversation(t, s, a, convID)
	if got := countOf(c["message_count"]); got != count {
		t.Errorf("message_count %v, want %d", c["message_count"], count)
	}
	if newest == nil {
		if !unsetTime(c, "last_message_at") {
			t.Errorf("last_message_at %v without messages", c["last_message_at"])
		}
	} else if unsetTime(c, "last_message_at") ||
		!timeField(t, c, "last_message_at").Equal(timeField(t, newest, "created_at")) {
		t.Errorf("last_message_at %v, want the newest message's created_at %s", c["last_message_at"], Str(newest, "created_at"))
	}
	return c
}

func TestMessageCreateAnswers201AndKeepsCountsExact(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := createTitled(t, s, a, "counts")
	convID := Str(conv, "id")
	prev := conv
	var created []map[string]any
	for i, role := range []string{"user", "assistant", "system", "user"} {
		r := s.Do(t, "POST", messagesPath(convID), map[string]any{"role": role, "content": fmt.Sprintf("message %d", i)},
			Bearer(a.Access)...)
		mustStatus(t, r, http.StatusCreated, "create "+role)
		m := r.JSON
		for _, f := range messageFields {
			if _, ok := m[f]; !ok {
				t.Errorf("message lacks %q: %s", f, r.Body)
			}
		}
		if !uuidV7Pattern.MatchString(Str(m, "id")) || Str(m, "conversation_id") != convID ||
			Str(m, "role") != role || Str(m, "content") != fmt.Sprintf("message %d", i) ||
			Str(m, "status") != "complete" || Str(m, "model") != "" {
			t.Errorf("message %s", r.Body)
		}
		if meta, ok := m["metadata"].(map[string]any); !ok || len(meta) != 0 {
			t.Errorf("metadata %v, want {}", m["metadata"])
		}
		if timeField(t, m, "updated_at").Before(timeField(t, m, "created_at")) {
			t.Errorf("fresh message: updated_at %s before created_at %s", Str(m, "updated_at"), Str(m, "created_at"))
		}
		if got := getOK(t, s, a, messagesPath(convID)+"/"+Str(m, "id")); !sameJSON(got, m) {
			t.Errorf("GET differs from the create answer:\n got %v\nwant %v", got, m)
		}
		created = append(created, m)
		c := expectCounts(t, s, a, convID, int64(i+1), m)
		if !timeField(t, c, "updated_at").After(timeField(t, prev, "updated_at")) {
			t.Errorf("appending did not advance the conversation's updated_at: %s -> %s",
				Str(prev, "updated_at"), Str(c, "updated_at"))
		}
		prev = c
	}
	for i := 1; i < len(created); i++ {
		if Str(created[i], "id") <= Str(created[i-1], "id") ||
			timeField(t, created[i], "created_at").Before(timeField(t, created[i-1], "created_at")) {
			t.Errorf("message %d is not newer than message %d", i, i-1)
		}
	}
	if got := allMessages(t, s, a, convID, nil); !sameJSON(got, created) {
		t.Errorf("listing differs from the created messages:\n got %v\nwant %v", got, created)
	}

	// Metadata round-trips, with the same limits as a conversation's.
	meta := map[string]any{"source": "import", "é": "😀"}
	r := s.Do(t, "POST", messagesPath(convID), map[string]any{"role": "user", "content": "meta", "metadata": meta},
		Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "create with metadata")
	if !sameJSON(r.JSON["metadata"], meta) {
		t.Errorf("metadata %v", r.JSON["metadata"])
	}
	expectCounts(t, s, a, convID, 5, r.JSON)
}

func TestMessageValidationListsEveryViolation(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "validation"), "id")
	path := messagesPath(convID)
	tooMany := map[string]any{}
	for i := 0; i < 17; i++ {
		tooMany[fmt.Sprintf("k%02d", i)] = "v"
	}
	cases := []struct {
		name   string
		body   any
		fields []string
	}{
		{"empty body", map[string]any{}, []string{"role", "content"}},
		{"bad role", map[string]any{"role": "tool", "content": "x"}, []string{"role"}},
		{"upper-case role", map[string]any{"role": "USER", "content": "x"}, []string{"role"}},
		{"no role", map[string]any{"content": "x"}, []string{"role"}},
		{"empty content", map[string]any{"role": "user", "content": ""}, []string{"content"}},
		{"no content", map[string]any{"role": "user"}, []string{"content"}},
		{"everything wrong", map[string]any{"role": "robot", "content": "", "metadata": tooMany},
			[]string{"role", "content", "metadata"}},
		{"long key", map[string]any{"role": "user", "content": "x", "metadata": map[string]any{strings.Repeat("k", 65): "v"}},
			[]string{"metadata"}},
		{"long value", map[string]any{"role": "user", "content": "x", "metadata": map[string]any{"k": strings.Repeat("é", 513)}},
			[]string{"metadata"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectInvalid(t, s.Do(t, "POST", path, tc.body, Bearer(a.Access)...), tc.fields...)
		})
	}
	for _, body := range []string{`{"role":`, `not json`, `[1]`, `{"role": "user", "content": 5}`,
		`{"role": "user", "content": "x", "unknown_field": 1}`, `{"role": "user", "content": "x", "metadata": {"n": 1}}`} {
		ExpectError(t, s.Do(t, "POST", path, body, Bearer(a.Access)...), http.StatusBadRequest, "INVALID_ARGUMENT")
	}
	expectCounts(t, s, a, convID, 0, nil)
	if n := len(allMessages(t, s, a, convID, nil)); n != 0 {
		t.Errorf("%d messages after refused creates", n)
	}
	// A missing conversation is 404, and nothing is stored.
	ExpectError(t, s.Do(t, "POST", messagesPath(randomUUIDv7()), map[string]any{"role": "user", "content": "x"},
		Bearer(a.Access)...), http.StatusNotFound, "NOT_FOUND")
	ExpectError(t, s.Do(t, "POST", messagesPath("not-a-uuid"), map[string]any{"role": "user", "content": "x"},
		Bearer(a.Access)...), http.StatusNotFound, "NOT_FOUND")
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE user_id = '"+a.ID+"'"); n != "0" {
		t.Errorf("%s messages stored by refused creates", n)
	}
}

func TestMessageContentLimitsCountCharacters(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "limits"), "id")
	path := messagesPath(convID)
	accepted := []string{
		strings.Repeat("a", 100000),
		strings.Repeat("é", 100000),      // 200,000 bytes
		strings.Repeat("😀", 100000),      // 400,000 bytes
		strings.Repeat("e\u0301", 50000), // 100,000 code points
	}
	for _, content := range accepted {
		r := s.Do(t, "POST", path, map[string]any{"role": "user", "content": content}, Bearer(a.Access)...)
		mustStatus(t, r, http.StatusCreated, fmt.Sprintf("%d bytes of content", len(content)))
		if Str(r.JSON, "content") != content {
			t.Errorf("content of %d bytes came back altered", len(content))
		}
		if got := getOK(t, s, a, path+"/"+Str(r.JSON, "id")); Str(got, "content") != content {
			t.Errorf("stored content of %d bytes differs", len(content))
		}
	}
	for _, content := range []string{strings.Repeat("a", 100001), strings.Repeat("é", 100001),
		strings.Repeat("😀", 100001)} {
		r := s.Do(t, "POST", path, map[string]any{"role": "user", "content": content}, Bearer(a.Access)...)
		expectInvalid(t, r, "content")
	}
	if n := countOf(conversation(t, s, a, convID)["message_count"]); n != int64(len(accepted)) {
		t.Errorf("message_count %d, want %d", n, len(accepted))
	}
}

func TestMessageContentIsStoredVerbatim(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "verbatim"), "id")
	path := messagesPath(convID)
	contents := []string{
		"<script>alert('x')</script> & \"quotes\" \u00e9 \U0001F600",
		"  leading and trailing spaces \t\n",
		"line one\r\nline two\rline three\n",
		"e\u0301 is not normalised to \u00e9",
		"\u200b zero width, \u00a0 no-break, \u2028 line separator, \u202e right-to-left",
		`back\slash \n not a newline, {"json": true}, %s %d ' -- ; DROP TABLE messages;`,
		"&lt;already escaped&gt; &amp;",
		"\uFEFFbyte order mark",
		" ",
	}
	var created []map[string]any
	for _, content := range contents {
		m := createMessage(t, s, a, convID, "user", content)
		if Str(m, "content") != content {
			t.Errorf("create answered %q for %q", Str(m, "content"), content)
		}
		if got := getOK(t, s, a, path+"/"+Str(m, "id")); Str(got, "content") != content {
			t.Errorf("GET answered %q for %q", Str(got, "content"), content)
		}
		created = append(created, m)
	}
	listed := allMessages(t, s, a, convID, nil)
	for i, m := range listed {
		if i < len(contents) && Str(m, "content") != contents[i] {
			t.Errorf("listing answered %q for %q", Str(m, "content"), contents[i])
		}
	}
	// What the database holds is what was sent, byte for byte.
	got := sqlOne(t, s, "SELECT encode(convert_to(content, 'UTF8'), 'hex') FROM messages WHERE id = '"+
		Str(created[0], "id")+"'")
	if want := fmt.Sprintf("%x", contents[0]); got != want {
		t.Errorf("stored bytes %s, want %s", got, want)
	}

	// An edit is verbatim too.
	edited := "<b>bold</b> & \"more\" \U0001F600"
	r := s.Do(t, "PATCH", path+"/"+Str(created[1], "id"), map[string]any{"content": edited}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "edit")
	if Str(r.JSON, "content") != edited || Str(getOK(t, s, a, path+"/"+Str(created[1], "id")), "content") != edited {
		t.Errorf("edited content %q", Str(r.JSON, "content"))
	}

	// A NUL character or invalid UTF-8 is refused, on create and on edit.
	bad := map[string]string{
		"NUL":              `{"role":"user","content":"a\u0000b"}`,
		"only NUL":         `{"role":"user","content":"\u0000"}`,
		"invalid UTF-8":    "{\"role\":\"user\",\"content\":\"a\xffb\"}",
		"overlong UTF-8":   "{\"role\":\"user\",\"content\":\"a\xc0\xafb\"}",
		"truncated UTF-8":  "{\"role\":\"user\",\"content\":\"a\xe2\x82\"}",
		"UTF-16 surrogate": "{\"role\":\"user\",\"content\":\"a\xed\xa0\x80b\"}",
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			ExpectError(t, s.Do(t, "POST", path, body, Bearer(a.Access)...), http.StatusBadRequest, "INVALID_ARGUMENT")
			edit := strings.Replace(body, `"role":"user",`, "", 1)
			ExpectError(t, s.Do(t, "PATCH", path+"/"+Str(created[2], "id"), edit, Bearer(a.Access)...),
				http.StatusBadRequest, "INVALID_ARGUMENT")
		})
	}
	// NUL elsewhere (metadata, titles) is refused as well, never a 500.
	for name, req := range map[string][2]string{
		"NUL in message metadata value": {path, `{"role":"user","content":"x","metadata":{"k":"a\u0000"}}`},
		"NUL in message metadata key":   {path, `{"role":"user","content":"x","metadata":{"k\u0000":"v"}}`},
		"NUL in a title":                {"/v1/conversations", `{"title":"a\u0000b"}`},
		"NUL in conversation metadata":  {"/v1/conversations", `{"metadata":{"k":"\u0000"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			ExpectError(t, s.Do(t, "POST", req[0], req[1], Bearer(a.Access)...), http.StatusBadRequest, "INVALID_ARGUMENT")
		})
	}
	if got := getOK(t, s, a, path+"/"+Str(created[2], "id")); Str(got, "content") != contents[2] {
		t.Errorf("a refused edit changed the content to %q", Str(got, "content"))
	}
	expectCounts(t, s, a, convID, int64(len(contents)), created[len(created)-1])
}

func TestMessagePatchAndPutArePartialUpdates(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "edits"), "id")
	path := messagesPath(convID)
	r := s.Do(t, "POST", path, map[string]any{"role": "assistant", "content": "original",
		"metadata": map[string]any{"a": "1"}}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "create")
	m := r.JSON
	newest := createMessage(t, s, a, convID, "user", "the newest")
	msgPath := path + "/" + Str(m, "id")
	prev, prevConv := m, conversation(t, s, a, convID)

	step := func(method string, body any, content string, meta map[string]any) {
		t.Helper()
		r := s.Do(t, method, msgPath, body, Bearer(a.Access)...)
		mustStatus(t, r, http.StatusOK, fmt.Sprintf("%s %v", method, body))
		g := r.JSON
		if Str(g, "content") != content || !sameJSON(g["metadata"], meta) || Str(g, "role") != "assistant" ||
			Str(g, "id") != Str(m, "id") || Str(g, "conversation_id") != convID || Str(g, "status") != "complete" ||
			Str(g, "created_at") != Str(m, "created_at") {
			t.Fatalf("%s %v: got %v, want content %q metadata %v", method, body, g, content, meta)
		}
		if !timeField(t, g, "updated_at").After(timeField(t, prev, "updated_at")) {
			t.Errorf("%s %v did not advance the message's updated_at", method, body)
		}
		if got := getOK(t, s, a, msgPath); !sameJSON(got, g) {
			t.Errorf("GET after %s differs:\n got %v\nwant %v", method, got, g)
		}
		c := expectCounts(t, s, a, convID, 2, newest)
		if !timeField(t, c, "updated_at").After(timeField(t, prevConv, "updated_at")) {
			t.Errorf("%s %v did not advance the conversation's updated_at", method, body)
		}
		prev, prevConv = g, c
	}
	step("PATCH", map[string]any{"metadata": map[string]any{"b": "2"}}, "original", map[string]any{"b": "2"})
	step("PUT", map[string]any{"content": "edited once"}, "edited once", map[string]any{"b": "2"})
	step("PATCH", map[string]any{"content": "edited twice"}, "edited twice", map[string]any{"b": "2"})
	step("PUT", map[string]any{"metadata": map[string]any{"c": "3"}}, "edited twice", map[string]any{"c": "3"})
	step("PATCH", map[string]any{"content": "both", "metadata": map[string]any{}}, "both", map[string]any{})

	for _, method := range []string{"PATCH", "PUT"} {
		expectInvalid(t, s.Do(t, method, msgPath, map[string]any{"content": ""}, Bearer(a.Access)...), "content")
		expectInvalid(t, s.Do(t, method, msgPath, map[string]any{"content": strings.Repeat("é", 100001)},
			Bearer(a.Access)...), "content")
		big := map[string]any{}
		for i := 0; i < 17; i++ {
			big[fmt.Sprint(i)] = "v"
		}
		expectInvalid(t, s.Do(t, method, msgPath, map[string]any{"content": "", "metadata": big}, Bearer(a.Access)...),
			"content", "metadata")
	}
	// Role, status and the output-only fields are not editable: whatever
	// the answer, nothing changes.
	for _, body := range []map[string]any{{"role": "system"}, {"status": "failed"}, {"model": "gpt"},
		{"conversation_id": randomUUIDv7()}, {"id": randomUUIDv7()}, {"created_at": "2001-01-01T00:00:00Z"}} {
		r := s.Do(t, "PATCH", msgPath, body, Bearer(a.Access)...)
		if r.Status != http.StatusOK && r.Status != http.StatusBadRequest {
			t.Errorf("PATCH %v: %d %s", body, r.Status, r.Body)
		}
	}
	got := getOK(t, s, a, msgPath)
	if Str(got, "content") != "both" || Str(got, "role") != "assistant" || Str(got, "status") != "complete" ||
		Str(got, "model") != "" || Str(got, "conversation_id") != convID || Str(got, "created_at") != Str(m, "created_at") {
		t.Errorf("after refused edits: %v", got)
	}
	if ids := ids(allMessages(t, s, a, convID, nil)); !slices.Equal(ids, []string{Str(m, "id"), Str(newest, "id")}) {
		t.Errorf("listing %v: an edit moved or added a message", ids)
	}
	expectCounts(t, s, a, convID, 2, newest)
}

func TestMessageDeleteAndClearKeepCountsExact(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "deletes"), "id")
	path := messagesPath(convID)
	// m0; m1 and m2, two versions under it; m3 under m2. Deleting a message
	// deletes its subtree (trees_test.go), so m1, which is deleted first,
	// is a leaf: a message in the middle of the creation order, off the
	// active branch m0, m2, m3.
	var ms []map[string]any
	for i := 0; i < 4; i++ {
		if i == 2 {
			ms = append(ms, createUnder(t, s, a, convID, Str(ms[0], "id"), "user", "m2"))
			continue
		}
		ms = append(ms, createMessage(t, s, a, convID, "user", fmt.Sprintf("m%d", i)))
	}
	prevConv := conversation(t, s, a, convID)
	del := func(m map[string]any) {
		t.Helper()
		expectNoContent(t, s.Do(t, "DELETE", path+"/"+Str(m, "id"), nil, Bearer(a.Access)...), "delete message")
	}
	advanced := func(what string) {
		t.Helper()
		c := conversation(t, s, a, convID)
		if !timeField(t, c, "updated_at").After(timeField(t, prevConv, "updated_at")) {
			t.Errorf("%s did not advance the conversation's updated_at", what)
		}
		prevConv = c
	}

	del(ms[1])
	advanced("deleting a message")
	expectCounts(t, s, a, convID, 3, ms[3])
	unknown := s.Do(t, "GET", path+"/"+randomUUIDv7(), nil, Bearer(a.Access)...)
	ExpectError(t, unknown, http.StatusNotFound, "NOT_FOUND")
	expectSameNotFound(t, s.Do(t, "GET", path+"/"+Str(ms[1], "id"), nil, Bearer(a.Access)...), unknown)
	expectSameNotFound(t, s.Do(t, "DELETE", path+"/"+Str(ms[1], "id"), nil, Bearer(a.Access)...),
		s.Do(t, "DELETE", path+"/"+randomUUIDv7(), nil, Bearer(a.Access)...))
	expectSameNotFound(t, s.Do(t, "PATCH", path+"/"+Str(ms[1], "id"), map[string]any{"content": "x"}, Bearer(a.Access)...),
		s.Do(t, "PATCH", path+"/"+randomUUIDv7(), map[string]any{"content": "x"}, Bearer(a.Access)...))
	if got := ids(allMessages(t, s, a, convID, nil)); !slices.Equal(got, ids([]map[string]any{ms[0], ms[2], ms[3]})) {
		t.Errorf("listing after a delete: %v", got)
	}
	expectCounts(t, s, a, convID, 3, ms[3])

	// Deleting the newest makes the one before it the last message.
	del(ms[3])
	advanced("deleting the newest message")
	expectCounts(t, s, a, convID, 2, ms[2])

	// Clear: 204, nothing left, the conversation stays.
	expectNoContent(t, s.Do(t, "DELETE", path, nil, Bearer(a.Access)...), "clear")
	advanced("clearing")
	expectCounts(t, s, a, convID, 0, nil)
	if got := allMessages(t, s, a, convID, nil); len(got) != 0 {
		t.Errorf("listing after clear: %v", ids(got))
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+convID+"'"); n != "0" {
		t.Errorf("%s messages in the database after clear", n)
	}
	expectNoContent(t, s.Do(t, "DELETE", path, nil, Bearer(a.Access)...), "clear an empty conversation")
	ExpectError(t, s.Do(t, "DELETE", messagesPath(randomUUIDv7()), nil, Bearer(a.Access)...),
		http.StatusNotFound, "NOT_FOUND")

	// The conversation lives on.
	m := createMessage(t, s, a, convID, "user", "after clear")
	expectCounts(t, s, a, convID, 1, m)
	if got := ids(allMessages(t, s, a, convID, nil)); !slices.Equal(got, []string{Str(m, "id")}) {
		t.Errorf("listing after clear and append: %v", got)
	}
}

func TestMessageIdsAreScopedToTheirConversation(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	x := Str(createTitled(t, s, a, "x"), "id")
	y := Str(createTitled(t, s, a, "y"), "id")
	m := createMessage(t, s, a, x, "user", "in x")
	createMessage(t, s, a, y, "user", "in y")
	for _, method := range []string{"GET", "PATCH", "PUT", "DELETE"} {
		var body any
		if method == "PATCH" || method == "PUT" {
			body = map[string]any{"content": "moved?"}
		}
		want := s.Do(t, method, messagesPath(y)+"/"+randomUUIDv7(), body, Bearer(a.Access)...)
		ExpectError(t, want, http.StatusNotFound, "NOT_FOUND")
		expectSameNotFound(t, s.Do(t, method, messagesPath(y)+"/"+Str(m, "id"), body, Bearer(a.Access)...), want)
		for _, id := range []string{"not-a-uuid", "42"} {
			expectSameNotFound(t, s.Do(t, method, messagesPath(y)+"/"+id, body, Bearer(a.Access)...), want)
		}
	}
	if got := getOK(t, s, a, messagesPath(x)+"/"+Str(m, "id")); !sameJSON(got, m) {
		t.Errorf("message changed through another conversation's path: %v", got)
	}
	expectCounts(t, s, a, x, 1, m)
	if n := countOf(conversation(t, s, a, y)["message_count"]); n != 1 {
		t.Errorf("y has %d messages", n)
	}
}

func TestMessageListingOrderAndPagination(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "long"), "id")
	const total = 205
	var asc []string
	for i := 0; i < total; i++ {
		asc = append(asc, Str(createMessage(t, s, a, convID, "user", fmt.Sprintf("m%03d", i)), "id"))
	}
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	path := messagesPath(convID)
	page := func(q url.Values) ([]map[string]any, string) {
		t.Helper()
		return listPage(t, s, a, path, "messages", q)
	}
	sizes := []struct {
		query url.Values
		want  int
	}{
		{nil, 50}, {url.Values{"page_size": {"0"}}, 50}, {url.Values{"page_size": {"200"}}, 200},
		{url.Values{"page_size": {"1000"}}, 200}, {url.Values{"page_size": {"1"}}, 1},
	}
	for _, tc := range sizes {
		got, next := page(tc.query)
		if len(got) != tc.want || next == "" || !slices.Equal(ids(got), asc[:len(got)]) {
			t.Errorf("%s: %d messages, next %q; want the first %d and a token", tc.query.Encode(), len(got), next, tc.want)
		}
	}
	for _, order := range []string{"", "asc", "desc"} {
		for _, size := range []int{1, 7, 50, 200, 205} {
			q := url.Values{"page_size": {fmt.Sprint(size)}}
			if order != "" {
				q.Set("order", order)
			}
			var got []string
			pages := 0
			for {
				items, next := page(q)
				pages++
				if len(items) > size {
					t.Fatalf("%s: a page of %d", q.Encode(), len(items))
				}
				got = append(got, ids(items)...)
				if next == "" {
					break
				}
				if pages > total+1 {
					t.Fatalf("%s: the listing never ends", q.Encode())
				}
				q.Set("page_token", next)
			}
			want := asc
			if order == "desc" {
				want = desc
			}
			if !slices.Equal(got, want) {
				t.Errorf("order=%q page_size=%d: %d ids over %d pages, not every message once in order",
					order, size, len(got), pages)
			}
			if w := (total + size - 1) / size; pages < w || pages > w+1 {
				t.Errorf("order=%q page_size=%d: %d pages, want %d", order, size, pages, w)
			}
		}
	}
	for _, q := range []url.Values{{"page_size": {"-1"}}, {"order": {"sideways"}}, {"order": {"ASC DROP"}},
		{"page_token": {"garbage"}}, {"page_token": {"AAAA"}}, {"page_size": {"x"}}} {
		ExpectError(t, s.Do(t, "GET", path+"?"+q.Encode(), nil, Bearer(a.Access)...),
			http.StatusBadRequest, "INVALID_ARGUMENT")
	}
}

func TestMessagePageTokensAreBoundToTheirListing(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	x := Str(createTitled(t, s, a, "x"), "id")
	y := Str(createTitled(t, s, a, "y"), "id")
	z := Str(createTitled(t, s, b, "z"), "id")
	for i := 0; i < 5; i++ {
		createMessage(t, s, a, x, "user", fmt.Sprint(i))
		createMessage(t, s, a, y, "user", fmt.Sprint(i))
		createMessage(t, s, b, z, "user", fmt.Sprint(i))
	}
	token := func(who Account, conv string, q url.Values) string {
		t.Helper()
		_, next := listPage(t, s, who, messagesPath(conv), "messages", q)
		if next == "" {
			t.Fatalf("no token for %v", q)
		}
		return next
	}
	ascX := token(a, x, url.Values{"page_size": {"2"}})
	descX := token(a, x, url.Values{"page_size": {"2"}, "order": {"desc"}})
	ascZ := token(b, z, url.Values{"page_size": {"2"}})
	_, convToken := listPage(t, s, a, "/v1/conversations", "conversations", url.Values{"page_size": {"1"}})
	cases := []struct {
		name string
		conv string
		q    url.Values
	}{
		{"x's token on y", y, url.Values{"page_size": {"2"}, "page_token": {ascX}}},
		{"another user's token", y, url.Values{"page_size": {"2"}, "page_token": {ascZ}}},
		{"asc token with desc", x, url.Values{"page_size": {"2"}, "page_token": {ascX}, "order": {"desc"}}},
		{"desc token with asc", x, url.Values{"page_size": {"2"}, "page_token": {descX}, "order": {"asc"}}},
		{"desc token without order", x, url.Values{"page_size": {"2"}, "page_token": {descX}}},
		{"a conversation listing's token", x, url.Values{"page_token": {convToken}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Do(t, "GET", messagesPath(tc.conv)+"?"+tc.q.Encode(), nil, Bearer(a.Access)...)
			ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
		})
	}
	// The tokens work where they belong.
	for _, q := range []url.Values{{"page_size": {"2"}, "page_token": {ascX}},
		{"page_size": {"2"}, "page_token": {descX}, "order": {"desc"}}} {
		if got, _ := listPage(t, s, a, messagesPath(x), "messages", q); len(got) != 2 {
			t.Errorf("%v: %d messages", q, len(got))
		}
	}
}

func TestMessageIdempotencyKey(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "retries"), "id")
	path := messagesPath(convID)
	key := randomKey()
	body := map[string]any{"role": "user", "content": "exactly once", "metadata": map[string]any{"k": "v"}}
	first := s.Do(t, "POST", path, body, append(Bearer(a.Access), "Idempotency-Key", key)...)
	mustStatus(t, first, http.StatusCreated, "first create")
	before := conversation(t, s, a, convID)
	again := s.Do(t, "POST", path, body, append(Bearer(a.Access), "Idempotency-Key", key)...)
	mustStatus(t, again, http.StatusCreated, "retried create")
	if !sameJSON(again.JSON, first.JSON) {
		t.Errorf("retry answered another message:\n got %s\nwant %s", again.Body, first.Body)
	}
	if after := conversation(t, s, a, convID); !sameJSON(after, before) {
		t.Errorf("a retry changed the conversation:\n got %v\nwant %v", after, before)
	}
	expectCounts(t, s, a, convID, 1, first.JSON)

	conflict := s.Do(t, "POST", path, map[string]any{"role": "user", "content": "something else"},
		append(Bearer(a.Access), "Idempotency-Key", key)...)
	ExpectError(t, conflict, http.StatusConflict, "ALREADY_EXISTS")
	expectCounts(t, s, a, convID, 1, first.JSON)

	// Another user's first use of the key is independent.
	bConv := Str(createTitled(t, s, b, "b's"), "id")
	theirs := s.Do(t, "POST", messagesPath(bConv), body, append(Bearer(b.Access), "Idempotency-Key", key)...)
	mustStatus(t, theirs, http.StatusCreated, "B with A's key")
	if Str(theirs.JSON, "id") == Str(first.JSON, "id") || Str(theirs.JSON, "conversation_id") != bConv {
		t.Errorf("B got %s", theirs.Body)
	}
	expectCounts(t, s, b, bConv, 1, theirs.JSON)
	expectCounts(t, s, a, convID, 1, first.JSON)

	// Without a key, the same body twice is two messages.
	createMessage(t, s, a, convID, "user", "exactly once")
	last := createMessage(t, s, a, convID, "user", "exactly once")
	expectCounts(t, s, a, convID, 3, last)

	// Concurrent duplicates create exactly one.
	raceKey := randomKey()
	const n = 8
	var wg sync.WaitGroup
	answers := make([]Response, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = s.Try("POST", path, map[string]any{"role": "assistant", "content": "race"},
				append(Bearer(a.Access), "Idempotency-Key", raceKey)...)
		}()
	}
	wg.Wait()
	raceIDs := map[string]bool{}
	var winner map[string]any
	for i := range answers {
		if errs[i] != nil {
			t.Fatalf("concurrent create %d: %v", i, errs[i])
		}
		if answers[i].Status != http.StatusCreated {
			t.Errorf("concurrent create %d: %d %s", i, answers[i].Status, answers[i].Body)
			continue
		}
		raceIDs[Str(answers[i].JSON, "id")] = true
		winner = answers[i].JSON
	}
	if len(raceIDs) != 1 {
		t.Errorf("concurrent duplicates answered %d different ids: %v", len(raceIDs), raceIDs)
	}
	expectCounts(t, s, a, convID, 4, winner)
	if got := allMessages(t, s, a, convID, nil); len(got) != 4 {
		t.Errorf("%d messages listed, want 4", len(got))
	}
}

func TestMessageConcurrentAppendsKeepCountsExact(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "busy"), "id")
	const writers, each = 4, 25
	var wg sync.WaitGroup
	failures := make(chan string, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := s.Try("POST", messagesPath(convID),
					map[string]any{"role": "user", "content": fmt.Sprintf("w%d-%02d", w, i)}, Bearer(a.Access)...)
				if err != nil {
					failures <- err.Error()
				} else if r.Status != http.StatusCreated {
					failures <- fmt.Sprintf("%d %.300s", r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("append: %s", f)
	}
	listed := allMessages(t, s, a, convID, url.Values{"page_size": {"30"}})
	seen := map[string]bool{}
	perWriter := map[string][]string{}
	var disorder []string
	for i, m := range listed {
		if seen[Str(m, "id")] {
			t.Errorf("message %s listed twice", Str(m, "id"))
		}
		seen[Str(m, "id")] = true
		if i > 0 && timeField(t, m, "created_at").Before(timeField(t, listed[i-1], "created_at")) {
			disorder = append(disorder, fmt.Sprintf("#%d %s (%s) after #%d %s (%s)", i, Str(m, "created_at"),
				Str(m, "content"), i-1, Str(listed[i-1], "created_at"), Str(listed[i-1], "content")))
		}
		content := Str(m, "content")
		perWriter[content[:2]] = append(perWriter[content[:2]], content)
	}
	if len(disorder) > 0 {
		t.Errorf("created_at goes backwards in the listing %d times, e.g. %s", len(disorder), disorder[0])
	}
	// Each writer's messages appear in the order it wrote them.
	for w, contents := range perWriter {
		if !slices.IsSorted(contents) {
			t.Errorf("writer %s's messages out of order: %v", w, contents)
		}
	}
	if len(listed) != writers*each {
		t.Errorf("%d messages listed, want %d", len(listed), writers*each)
	}
	var newest map[string]any
	if len(listed) > 0 {
		newest = listed[len(listed)-1]
	}
	expectCounts(t, s, a, convID, writers*each, newest)
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+convID+"'"); n != fmt.Sprint(writers*each) {
		t.Errorf("%s messages in the database", n)
	}
}

func TestMessagePaginationUnderConcurrentAppends(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "paging while busy"), "id")
	path := messagesPath(convID)
	const seeds, writers, each, size = 60, 3, 40, 5
	var seedIDs []string
	for i := 0; i < seeds; i++ {
		seedIDs = append(seedIDs, Str(createMessage(t, s, a, convID, "user", fmt.Sprintf("seed %02d", i)), "id"))
	}

	// Writers append while two readers page through, one each way; the
	// readers start once every writer has stored its first message.
	var wg sync.WaitGroup
	started := make(chan struct{}, writers)
	failures := make(chan string, writers*each+100)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := s.Try("POST", path, map[string]any{"role": "assistant", "content": fmt.Sprintf("w%d %02d", w, i)},
					Bearer(a.Access)...)
				if err != nil || r.Status != http.StatusCreated {
					failures <- fmt.Sprintf("append: %v %d %.200s", err, r.Status, r.Body)
				}
				if i == 0 {
					started <- struct{}{}
				}
			}
		}()
	}
	for w := 0; w < writers; w++ {
		<-started
	}
	// page walks a listing from another goroutine.
	walk := func(order string) ([]string, string) {
		q := url.Values{"page_size": {fmt.Sprint(size)}, "order": {order}}
		var got []string
		for pages := 0; pages < 1000; pages++ {
			r, err := s.Try("GET", path+"?"+q.Encode(), nil, Bearer(a.Access)...)
			if err != nil || r.Status != http.StatusOK {
				return got, fmt.Sprintf("page %d: %v %d %.200s", pages, err, r.Status, r.Body)
			}
			page := items(r.JSON, "messages")
			if len(page) > size {
				return got, fmt.Sprintf("a page of %d", len(page))
			}
			got = append(got, ids(page)...)
			next := Str(r.JSON, "next_page_token")
			if next == "" {
				return got, ""
			}
			q.Set("page_token", next)
		}
		return got, "the listing never ended"
	}
	var descIDs []string
	var descErr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		descIDs, descErr = walk("desc")
	}()
	ascIDs, ascErr := walk("asc")
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	if ascErr != "" || descErr != "" {
		t.Fatalf("paging: asc %q, desc %q", ascErr, descErr)
	}

	final := ids(allMessages(t, s, a, convID, url.Values{"page_size": {"200"}}))
	if len(final) != seeds+writers*each {
		t.Fatalf("%d messages at the end, want %d", len(final), seeds+writers*each)
	}
	if !slices.Equal(final[:seeds], seedIDs) {
		t.Fatalf("the seeds are not the first messages of the final listing")
	}
	check := func(order string, got []string) {
		t.Helper()
		seen := map[string]int{}
		for _, id := range got {
			seen[id]++
			if seen[id] == 2 {
				t.Errorf("%s: message %s seen twice", order, id)
			}
		}
		for _, id := range seedIDs {
			if seen[id] != 1 {
				t.Errorf("%s: seed message %s seen %d times", order, id, seen[id])
			}
		}
	}
	check("asc", ascIDs)
	check("desc", descIDs)
	// Ascending: what the reader saw is exactly the start of the final
	// listing, with nothing skipped.
	if len(ascIDs) > len(final) || !slices.Equal(ascIDs, final[:len(ascIDs)]) {
		t.Errorf("asc pages (%d ids) are not a prefix of the final listing:\n got %v\nfinal %v",
			len(ascIDs), ascIDs, final)
	}
	// Descending: from the newest message of its first page, every older
	// one exactly once, newest first.
	if len(descIDs) > 0 {
		top := slices.Index(final, descIDs[0])
		want := slices.Clone(final[:top+1])
		slices.Reverse(want)
		if top < 0 || !slices.Equal(descIDs, want) {
			t.Errorf("desc pages (%d ids) are not the final listing from %s down:\n got %v\nwant %v",
				len(descIDs), descIDs[0], descIDs, want)
		}
	}
	t.Logf("asc reader saw %d messages, desc reader %d, of %d", len(ascIDs), len(descIDs), len(final))
}

func TestMessageHugeBodyIsA4xxEnvelope(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	convID := Str(createTitled(t, s, a, "huge"), "id")
	huge := `{"role":"user","content":"` + strings.Repeat("a", 1<<20) + `"}`
	r := s.Do(t, "POST", messagesPath(convID), huge, Bearer(a.Access)...)
	if r.Status < 400 || r.Status >= 500 || Str(r.JSON, "error", "code") == "" {
		t.Errorf("huge body: %d %.300s", r.Status, r.Body)
	}
	m := createMessage(t, s, a, convID, "user", "small")
	r = s.Do(t, "PATCH", messagesPath(convID)+"/"+Str(m, "id"), `{"content":"`+strings.Repeat("a", 1<<20)+`"}`,
		Bearer(a.Access)...)
	if r.Status < 400 || r.Status >= 500 || Str(r.JSON, "error", "code") == "" {
		t.Errorf("huge edit: %d %.300s", r.Status, r.Body)
	}
	expectCounts(t, s, a, convID, 1, m)
	if got := getOK(t, s, a, messagesPath(convID)+"/"+Str(m, "id")); Str(got, "content") != "small" {
		t.Errorf("content became %.50q", Str(got, "content"))
	}
}
