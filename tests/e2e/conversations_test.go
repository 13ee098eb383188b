package e2e

// ConversationService through the gateway: docs/api.md "Conversations" and the
// decisions taken where it is silent (404 for malformed ids, archived
// listing, page_size rules, partial PUT, idempotency keys).

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var conversationFields = []string{"id", "title", "metadata", "archived", "pinned",
	"message_count", "last_message_at", "active_leaf_id", "created_at", "updated_at"}

func TestConversationCreateAnswers201WithDefaults(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	before := time.Now().Add(-time.Minute)
	c := createConversation(t, s, a, map[string]any{})
	for _, f := range conversationFields {
		if _, ok := c[f]; !ok && f != "last_message_at" {
			t.Errorf("conversation lacks %q: %v", f, c)
		}
	}
	if !uuidV7Pattern.MatchString(Str(c, "id")) {
		t.Errorf("id %q is not a UUIDv7", Str(c, "id"))
	}
	created := timeField(t, c, "created_at")
	updated := timeField(t, c, "updated_at")
	if created.Before(before) || created.After(time.Now().Add(time.Minute)) || updated.Before(created) {
		t.Errorf("created_at %v updated_at %v", created, updated)
	}
	title := Str(c, "title")
	if !strings.HasPrefix(title, "New Chat - ") {
		t.Errorf("default title %q", title)
	} else if stamp, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(title, "New Chat - ")); err != nil ||
		stamp.Sub(created).Abs() > time.Second {
		// Only the prefix is decided; the rest is worth a note.
		t.Logf("default title %q does not carry created_at %v as RFC 3339", title, created)
	}
	if m, ok := c["metadata"].(map[string]any); !ok || len(m) != 0 {
		t.Errorf("metadata %v, want {}", c["metadata"])
	}
	if c["archived"] != false || c["pinned"] != false || countOf(c["message_count"]) != 0 {
		t.Errorf("archived %v pinned %v message_count %v", c["archived"], c["pinned"], c["message_count"])
	}
	if !unsetTime(c, "last_message_at") {
		t.Errorf("last_message_at %v before any message", c["last_message_at"])
	}
	if got := conversation(t, s, a, Str(c, "id")); !sameJSON(got, c) {
		t.Errorf("GET differs from the create answer:\n got %v\nwant %v", got, c)
	}

	// An explicit empty title is "not given".
	e := createConversation(t, s, a, map[string]any{"title": ""})
	if !strings.HasPrefix(Str(e, "title"), "New Chat - ") {
		t.Errorf("empty title became %q", Str(e, "title"))
	}

	// Given title and metadata come back as sent.
	meta := map[string]any{"project": "apollo", "lang": "fr", "empty": ""}
	g := createConversation(t, s, a, map[string]any{"title": "  Été <b>&</b> 😀  ", "metadata": meta})
	if Str(g, "title") != "  Été <b>&</b> 😀  " || !sameJSON(g["metadata"], meta) {
		t.Errorf("title %q metadata %v", Str(g, "title"), g["metadata"])
	}
	if Str(g, "id") <= Str(c, "id") {
		t.Errorf("ids are not time-ordered: %s then %s", Str(c, "id"), Str(g, "id"))
	}
	if got := conversation(t, s, a, Str(g, "id")); !sameJSON(got, g) {
		t.Errorf("GET differs from the create answer:\n got %v\nwant %v", got, g)
	}
}

func TestConversationTitleLimitsCountCharacters(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	for _, title := range []string{"x", strings.Repeat("é", 255), strings.Repeat("😀", 255)} {
		c := createConversation(t, s, a, map[string]any{"title": title})
		if Str(c, "title") != title {
			t.Errorf("title of %d characters came back as %q", len([]rune(title)), Str(c, "title"))
		}
	}
	for _, title := range []string{strings.Repeat("a", 256), strings.Repeat("é", 256)} {
		r := s.Do(t, "POST", "/v1/conversations", map[string]any{"title": title}, Bearer(a.Access)...)
		expectInvalid(t, r, "title")
	}
	if n := len(allConversations(t, s, a, nil)); n != 3 {
		t.Errorf("%d conversations, want 3: a refused create stored something", n)
	}
}

func TestConversationMetadataLimitsListEveryViolation(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	edge := map[string]any{strings.Repeat("k", 64): strings.Repeat("v", 512)}
	for i := 1; i < 16; i++ {
		edge[fmt.Sprintf("key%02d", i)] = "é😀"
	}
	c := createConversation(t, s, a, map[string]any{"metadata": edge})
	if !sameJSON(c["metadata"], edge) {
		t.Errorf("16 keys at the limits came back as %v", c["metadata"])
	}

	cases := map[string]map[string]any{
		"17 keys":         {},
		"empty key":       {"": "v"},
		"65-char key":     {strings.Repeat("k", 65): "v"},
		"513-char value":  {"k": strings.Repeat("v", 513)},
		"513-é value":     {"k": strings.Repeat("é", 513)},
		"non-string":      nil, // sent raw below
		"multi-violation": nil,
	}
	for i := 0; i < 17; i++ {
		cases["17 keys"][fmt.Sprintf("k%02d", i)] = "v"
	}
	for name, meta := range cases {
		if meta == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			r := s.Do(t, "POST", "/v1/conversations", map[string]any{"metadata": meta}, Bearer(a.Access)...)
			expectInvalid(t, r, "metadata")
			r = s.Do(t, "PATCH", "/v1/conversations/"+Str(c, "id"), map[string]any{"metadata": meta}, Bearer(a.Access)...)
			expectInvalid(t, r, "metadata")
		})
	}
	t.Run("non-string", func(t *testing.T) {
		r := s.Do(t, "POST", "/v1/conversations", `{"metadata": {"n": 1}}`, Bearer(a.Access)...)
		ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	})
	t.Run("multi-violation", func(t *testing.T) {
		// Too long a title, too many keys, one key too long, one value too
		// long: every one of them is reported.
		meta := map[string]any{strings.Repeat("k", 65): "v", "long": strings.Repeat("v", 513)}
		for i := 0; i < 15; i++ {
			meta[fmt.Sprintf("k%02d", i)] = "v"
		}
		r := s.Do(t, "POST", "/v1/conversations",
			map[string]any{"title": strings.Repeat("t", 256), "metadata": meta}, Bearer(a.Access)...)
		expectInvalid(t, r, "title", "metadata")
		if n := countFields(violationFields(r), "metadata", true); n < 3 {
			t.Errorf("%d metadata violations, want one each for the key count, the long key and the long value: %q",
				n, Violations(r))
		}
	})
	if n := len(allConversations(t, s, a, nil)); n != 1 {
		t.Errorf("%d conversations, want 1: a refused create stored something", n)
	}
	if got := conversation(t, s, a, Str(c, "id")); !sameJSON(got, c) {
		t.Errorf("a refused update changed the conversation:\n got %v\nwant %v", got, c)
	}
}

func TestConversationMalformedUnknownIdsAre404(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	own := createConversation(t, s, a, nil)
	unknown := randomUUIDv7()
	for _, method := range []string{"GET", "PATCH", "PUT", "DELETE"} {
		var body any
		if method == "PATCH" || method == "PUT" {
			body = map[string]any{"title": "x"}
		}
		want := s.Do(t, method, "/v1/conversations/"+unknown, body, Bearer(a.Access)...)
		ExpectError(t, want, http.StatusNotFound, "NOT_FOUND")
		for _, id := range []string{"not-a-uuid", "12345", strings.ToUpper(unknown), unknown[:35],
			"00000000-0000-0000-0000-000000000000"} {
			t.Run(method+" "+id, func(t *testing.T) {
				r := s.Do(t, method, "/v1/conversations/"+url.PathEscape(id), body, Bearer(a.Access)...)
				expectSameNotFound(t, r, want)
			})
		}
	}
	if got := conversation(t, s, a, Str(own, "id")); !sameJSON(got, own) {
		t.Errorf("own conversation changed: %v", got)
	}
}

func TestConversationPatchAndPutArePartialUpdates(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	c := createConversation(t, s, a, map[string]any{"title": "Original", "metadata": map[string]any{"a": "1"}})
	id := Str(c, "id")
	path := "/v1/conversations/" + id
	prev := c

	step := func(method string, body any, check func(got map[string]any) bool) {
		t.Helper()
		r := s.Do(t, method, path, body, Bearer(a.Access)...)
		mustStatus(t, r, http.StatusOK, fmt.Sprintf("%s %v", method, body))
		if !check(r.JSON) {
			t.Fatalf("%s %v: got %v (before %v)", method, body, r.JSON, prev)
		}
		if Str(r.JSON, "id") != id || Str(r.JSON, "created_at") != Str(c, "created_at") {
			t.Fatalf("%s %v changed id or created_at: %v", method, body, r.JSON)
		}
		if !timeField(t, r.JSON, "updated_at").After(timeField(t, prev, "updated_at")) {
			t.Errorf("%s %v did not advance updated_at: %s -> %s", method, body,
				Str(prev, "updated_at"), Str(r.JSON, "updated_at"))
		}
		if got := conversation(t, s, a, id); !sameJSON(got, r.JSON) {
			t.Fatalf("GET after %s differs from its answer:\n got %v\nwant %v", method, got, r.JSON)
		}
		prev = r.JSON
	}
	meta1 := map[string]any{"a": "1"}
	step("PATCH", map[string]any{"pinned": true}, func(g map[string]any) bool {
		return g["pinned"] == true && g["archived"] == false && Str(g, "title") == "Original" && sameJSON(g["metadata"], meta1)
	})
	step("PUT", map[string]any{"archived": true}, func(g map[string]any) bool {
		return g["pinned"] == true && g["archived"] == true && Str(g, "title") == "Original" && sameJSON(g["metadata"], meta1)
	})
	step("PATCH", map[string]any{"title": "Renamed"}, func(g map[string]any) bool {
		return g["pinned"] == true && g["archived"] == true && Str(g, "title") == "Renamed" && sameJSON(g["metadata"], meta1)
	})
	meta2 := map[string]any{"b": "2"}
	step("PUT", map[string]any{"metadata": meta2}, func(g map[string]any) bool {
		return g["pinned"] == true && g["archived"] == true && Str(g, "title") == "Renamed" && sameJSON(g["metadata"], meta2)
	})
	// Explicit false values change too (they are in the body).
	step("PATCH", map[string]any{"pinned": false}, func(g map[string]any) bool {
		return g["pinned"] == false && g["archived"] == true && Str(g, "title") == "Renamed"
	})
	step("PUT", map[string]any{"archived": false}, func(g map[string]any) bool {
		return g["pinned"] == false && g["archived"] == false && Str(g, "title") == "Renamed" && sameJSON(g["metadata"], meta2)
	})
	// An explicit empty map clears the metadata.
	step("PATCH", map[string]any{"metadata": map[string]any{}}, func(g map[string]any) bool {
		m, ok := g["metadata"].(map[string]any)
		return ok && len(m) == 0 && Str(g, "title") == "Renamed"
	})
	step("PUT", map[string]any{"title": "Both", "pinned": true}, func(g map[string]any) bool {
		return g["pinned"] == true && g["archived"] == false && Str(g, "title") == "Both"
	})

	// Refused updates change nothing.
	for _, method := range []string{"PATCH", "PUT"} {
		expectInvalid(t, s.Do(t, method, path, map[string]any{"title": ""}, Bearer(a.Access)...), "title")
		expectInvalid(t, s.Do(t, method, path, map[string]any{"title": strings.Repeat("é", 256)}, Bearer(a.Access)...), "title")
		r := s.Do(t, method, path, map[string]any{"title": "", "metadata": map[string]any{"": "x"}}, Bearer(a.Access)...)
		expectInvalid(t, r, "title", "metadata")
	}
	// Output-only fields in the body never change anything.
	for _, body := range []map[string]any{{"message_count": 99}, {"id": randomUUIDv7()},
		{"created_at": "2001-01-01T00:00:00Z"}, {"last_message_at": "2001-01-01T00:00:00Z"}} {
		r := s.Do(t, "PATCH", path, body, Bearer(a.Access)...)
		if r.Status != http.StatusOK && r.Status != http.StatusBadRequest {
			t.Errorf("PATCH %v: %d %s", body, r.Status, r.Body)
		}
	}
	got := conversation(t, s, a, id)
	if Str(got, "title") != "Both" || got["pinned"] != true || countOf(got["message_count"]) != 0 ||
		Str(got, "created_at") != Str(c, "created_at") || !unsetTime(got, "last_message_at") {
		t.Errorf("after refused updates: %v (want %v)", got, prev)
	}
	if n := len(allConversations(t, s, a, nil)); n != 1 {
		t.Errorf("%d conversations, want 1", n)
	}
}

func TestConversationDeleteAnswers204AndTakesItsMessages(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	c := createTitled(t, s, a, "doomed")
	keep := createTitled(t, s, a, "kept")
	id := Str(c, "id")
	var msgIDs []string
	for i := 0; i < 3; i++ {
		msgIDs = append(msgIDs, Str(createMessage(t, s, a, id, "user", fmt.Sprintf("m%d", i)), "id"))
	}
	createMessage(t, s, a, Str(keep, "id"), "user", "stays")
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+id+"'"); n != "3" {
		t.Fatalf("%s messages in the database before the delete, want 3", n)
	}
	expectNoContent(t, s.Do(t, "DELETE", "/v1/conversations/"+id, nil, Bearer(a.Access)...), "delete")

	unknown := s.Do(t, "GET", "/v1/conversations/"+randomUUIDv7(), nil, Bearer(a.Access)...)
	expectSameNotFound(t, s.Do(t, "GET", "/v1/conversations/"+id, nil, Bearer(a.Access)...), unknown)
	expectSameNotFound(t, s.Do(t, "DELETE", "/v1/conversations/"+id, nil, Bearer(a.Access)...),
		s.Do(t, "DELETE", "/v1/conversations/"+randomUUIDv7(), nil, Bearer(a.Access)...))
	ExpectError(t, s.Do(t, "GET", "/v1/conversations/"+id+"/messages", nil, Bearer(a.Access)...),
		http.StatusNotFound, "NOT_FOUND")
	ExpectError(t, s.Do(t, "GET", "/v1/conversations/"+id+"/messages/"+msgIDs[0], nil, Bearer(a.Access)...),
		http.StatusNotFound, "NOT_FOUND")
	ExpectError(t, s.Do(t, "POST", "/v1/conversations/"+id+"/messages",
		map[string]any{"role": "user", "content": "late"}, Bearer(a.Access)...), http.StatusNotFound, "NOT_FOUND")
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+id+"'"); n != "0" {
		t.Errorf("%s messages of the deleted conversation left in the database", n)
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM conversations WHERE id = '"+id+"'"); n != "0" {
		t.Errorf("%s rows of the deleted conversation left in the database", n)
	}
	if got := ids(allConversations(t, s, a, nil)); !slices.Equal(got, []string{Str(keep, "id")}) {
		t.Errorf("listing %v, want only the kept conversation", got)
	}
	if got := countOf(conversation(t, s, a, Str(keep, "id"))["message_count"]); got != 1 {
		t.Errorf("the other conversation has %d messages, want 1", got)
	}
}

func TestConversationDeleteAllTakesOnlyTheCallersOwn(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	var aIDs []string
	for i := 0; i < 3; i++ {
		c := createTitled(t, s, a, fmt.Sprintf("a%d", i))
		aIDs = append(aIDs, Str(c, "id"))
		createMessage(t, s, a, Str(c, "id"), "user", "hello")
	}
	// Archived ones go too.
	mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+aIDs[0], map[string]any{"archived": true}, Bearer(a.Access)...),
		http.StatusOK, "archive")
	var bIDs []string
	for i := 0; i < 2; i++ {
		c := createTitled(t, s, b, fmt.Sprintf("b%d", i))
		bIDs = append(bIDs, Str(c, "id"))
		createMessage(t, s, b, Str(c, "id"), "user", "hello")
	}
	bBefore := allConversations(t, s, b, nil)

	expectNoContent(t, s.Do(t, "DELETE", "/v1/conversations", nil, Bearer(a.Access)...), "delete all")
	if got := allConversations(t, s, a, nil); len(got) != 0 {
		t.Errorf("A still lists %v", ids(got))
	}
	if got := allConversations(t, s, a, url.Values{"archived": {"true"}}); len(got) != 0 {
		t.Errorf("A still lists archived %v", ids(got))
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE user_id = '"+a.ID+"'"); n != "0" {
		t.Errorf("%s messages of A left in the database", n)
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM conversations WHERE user_id = '"+a.ID+"'"); n != "0" {
		t.Errorf("%s conversations of A left in the database", n)
	}
	if got := allConversations(t, s, b, nil); !sameJSON(got, bBefore) {
		t.Errorf("B's conversations changed:\n got %v\nwant %v", got, bBefore)
	}
	for _, id := range bIDs {
		if n := len(allMessages(t, s, b, id, nil)); n != 1 {
			t.Errorf("B's conversation %s has %d messages, want 1", id, n)
		}
	}
	// Deleting all of nothing is fine too.
	expectNoContent(t, s.Do(t, "DELETE", "/v1/conversations", nil, Bearer(a.Access)...), "delete all again")
}

func TestConversationListingIsPinnedFirstThenMostRecentActivity(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	byTitle := map[string]string{}
	for _, title := range []string{"c1", "c2", "c3", "c4"} {
		byTitle[title] = Str(createTitled(t, s, a, title), "id")
	}
	expect := func(when string, want ...string) {
		t.Helper()
		got := allConversations(t, s, a, nil)
		if !slices.Equal(titles(got), want) {
			t.Fatalf("%s: order %v, want %v", when, titles(got), want)
		}
		for i := 1; i < len(got); i++ {
			if got[i-1]["pinned"] == got[i]["pinned"] &&
				timeField(t, got[i-1], "updated_at").Before(timeField(t, got[i], "updated_at")) {
				t.Fatalf("%s: updated_at not descending: %v", when, got)
			}
		}
	}
	patch := func(title string, body map[string]any) {
		t.Helper()
		mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+byTitle[title], body, Bearer(a.Access)...),
			http.StatusOK, "patch "+title)
	}
	expect("fresh", "c4", "c3", "c2", "c1")
	m := createMessage(t, s, a, byTitle["c1"], "user", "activity")
	expect("after a message in c1", "c1", "c4", "c3", "c2")
	patch("c3", map[string]any{"pinned": true})
	expect("after pinning c3", "c3", "c1", "c4", "c2")
	patch("c2", map[string]any{"pinned": true})
	expect("after pinning c2", "c2", "c3", "c1", "c4")
	patch("c4", map[string]any{"metadata": map[string]any{"n": "1"}})
	expect("after editing c4", "c2", "c3", "c4", "c1")
	mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+byTitle["c1"]+"/messages/"+Str(m, "id"),
		map[string]any{"content": "edited"}, Bearer(a.Access)...), http.StatusOK, "edit message")
	expect("after editing c1's message", "c2", "c3", "c1", "c4")
	patch("c4", map[string]any{"metadata": map[string]any{"n": "2"}})
	expect("after editing c4's metadata", "c2", "c3", "c4", "c1")
	expectNoContent(t, s.Do(t, "DELETE", "/v1/conversations/"+byTitle["c1"]+"/messages/"+Str(m, "id"), nil,
		Bearer(a.Access)...), "delete message")
	expect("after deleting c1's message", "c2", "c3", "c1", "c4")
	patch("c3", map[string]any{"pinned": false})
	expect("after unpinning c3", "c2", "c3", "c1", "c4")
	patch("c2", map[string]any{"pinned": false})
	expect("after unpinning c2", "c2", "c3", "c1", "c4")
	createMessage(t, s, a, byTitle["c4"], "assistant", "activity")
	expect("after a message in c4", "c4", "c2", "c3", "c1")

	// Listing entries are the same objects GET answers.
	for _, c := range allConversations(t, s, a, nil) {
		if got := conversation(t, s, a, Str(c, "id")); !sameJSON(got, c) {
			t.Errorf("listing entry differs from GET:\n list %v\n  get %v", c, got)
		}
	}
}

func TestConversationListingArchivedAndTitleSearch(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	for _, title := range []string{"Alpha project", "beta notes", "ALPHA archived", "gamma", "100% done",
		"snake_case", "back\\slash", "Ünïcode Straße"} {
		c := createTitled(t, s, a, title)
		if strings.Contains(title, "archived") {
			mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+Str(c, "id"), map[string]any{"archived": true},
				Bearer(a.Access)...), http.StatusOK, "archive")
		}
	}
	cases := []struct {
		query url.Values
		want  []string
	}{
		{nil, []string{"Ünïcode Straße", "back\\slash", "snake_case", "100% done", "gamma", "beta notes", "Alpha project"}},
		{url.Values{"archived": {"false"}}, []string{"Ünïcode Straße", "back\\slash", "snake_case", "100% done", "gamma", "beta notes", "Alpha project"}},
		{url.Values{"archived": {"true"}}, []string{"ALPHA archived"}},
		{url.Values{"q": {"alpha"}}, []string{"Alpha project"}},
		{url.Values{"q": {"ALPHA"}}, []string{"Alpha project"}},
		{url.Values{"q": {"aLpHa"}, "archived": {"true"}}, []string{"ALPHA archived"}},
		{url.Values{"q": {"PROJ"}}, []string{"Alpha project"}},
		{url.Values{"q": {"a"}}, []string{"Ünïcode Straße", "back\\slash", "snake_case", "gamma", "beta notes", "Alpha project"}},
		{url.Values{"q": {"nothing like it"}}, nil},
		// The pattern characters of LIKE are plain characters here.
		{url.Values{"q": {"%"}}, []string{"100% done"}},
		{url.Values{"q": {"_"}}, []string{"snake_case"}},
		{url.Values{"q": {"\\"}}, []string{"back\\slash"}},
		{url.Values{"q": {"straße"}}, []string{"Ünïcode Straße"}},
	}
	for _, tc := range cases {
		t.Run(tc.query.Encode(), func(t *testing.T) {
			got := titles(allConversations(t, s, a, tc.query))
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	r := s.Do(t, "GET", "/v1/conversations?archived=maybe", nil, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
}

func TestConversationListingPagination(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	const total = 105
	var created []string
	for i := 0; i < total; i++ {
		created = append(created, Str(createTitled(t, s, a, fmt.Sprintf("conv %03d", i)), "id"))
	}
	newestFirst := slices.Clone(created)
	slices.Reverse(newestFirst)

	page := func(q url.Values) ([]map[string]any, string) {
		t.Helper()
		return listPage(t, s, a, "/v1/conversations", "conversations", q)
	}
	if got, next := page(nil); len(got) != 20 || next == "" {
		t.Errorf("default page: %d items, next %q; want 20 and a token", len(got), next)
	}
	if got, next := page(url.Values{"page_size": {"0"}}); len(got) != 20 || next == "" {
		t.Errorf("page_size=0: %d items, next %q; want 20 and a token", len(got), next)
	}
	if got, next := page(url.Values{"page_size": {"1000"}}); len(got) != 100 || next == "" {
		t.Errorf("page_size=1000: %d items, next %q; want 100 and a token", len(got), next)
	} else if !slices.Equal(ids(got), newestFirst[:100]) {
		t.Errorf("page_size=1000: wrong conversations or order")
	}
	if got, next := page(url.Values{"page_size": {"100"}}); len(got) != 100 || next == "" {
		t.Errorf("page_size=100: %d items, next %q", len(got), next)
	} else if rest, last := page(url.Values{"page_size": {"100"}, "page_token": {next}}); len(rest) != 5 || last != "" {
		t.Errorf("second page of 100: %d items, next %q; want 5 and no token", len(rest), last)
	}

	// Small pages together give every conversation exactly once, in order.
	for _, size := range []int{1, 7, 20, 35, 105} {
		var got []string
		q := url.Values{"page_size": {fmt.Sprint(size)}}
		pages := 0
		for {
			items, next := page(q)
			pages++
			if len(items) > size {
				t.Fatalf("page_size=%d: a page of %d", size, len(items))
			}
			got = append(got, ids(items)...)
			if next == "" {
				break
			}
			if pages > total+1 {
				t.Fatalf("page_size=%d: the listing never ends", size)
			}
			q.Set("page_token", next)
		}
		if !slices.Equal(got, newestFirst) {
			t.Errorf("page_size=%d: %d ids over %d pages, not every conversation once in order", size, len(got), pages)
		}
		if want := (total + size - 1) / size; pages < want || pages > want+1 {
			t.Errorf("page_size=%d: %d pages, want %d", size, pages, want)
		}
	}

	for _, q := range []url.Values{{"page_size": {"-1"}}, {"page_token": {"garbage"}},
		{"page_token": {"AAAA"}}, {"page_token": {strings.Repeat("x", 300)}}, {"page_size": {"abc"}}} {
		ExpectError(t, s.Do(t, "GET", "/v1/conversations?"+q.Encode(), nil, Bearer(a.Access)...),
			http.StatusBadRequest, "INVALID_ARGUMENT")
	}
	// A message listing's token is foreign here.
	createMessage(t, s, a, created[0], "user", "one")
	createMessage(t, s, a, created[0], "user", "two")
	if _, msgToken := listPage(t, s, a, messagesPath(created[0]), "messages", url.Values{"page_size": {"1"}}); msgToken == "" {
		t.Errorf("no next_page_token on a message page of 1 of 2")
	} else {
		ExpectError(t, s.Do(t, "GET", "/v1/conversations?page_token="+url.QueryEscape(msgToken), nil, Bearer(a.Access)...),
			http.StatusBadRequest, "INVALID_ARGUMENT")
	}
	// A tampered token is refused, not followed.
	_, next := page(url.Values{"page_size": {"10"}})
	tampered := []byte(next)
	tampered[len(tampered)/2] ^= 0x01
	if string(tampered) != next {
		r := s.Do(t, "GET", "/v1/conversations?page_size=10&page_token="+url.QueryEscape(string(tampered)), nil,
			Bearer(a.Access)...)
		if r.Status != http.StatusBadRequest && r.Status != http.StatusOK {
			t.Errorf("tampered token: %d %s", r.Status, r.Body)
		}
	}
}

func TestConversationIdempotencyKey(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	key := randomKey()
	body := map[string]any{"title": "once", "metadata": map[string]any{"k": "v"}}
	first := s.Do(t, "POST", "/v1/conversations", body, append(Bearer(a.Access), "Idempotency-Key", key)...)
	mustStatus(t, first, http.StatusCreated, "first create")
	again := s.Do(t, "POST", "/v1/conversations", body, append(Bearer(a.Access), "Idempotency-Key", key)...)
	mustStatus(t, again, http.StatusCreated, "retried create")
	if !sameJSON(again.JSON, first.JSON) {
		t.Errorf("retry answered another conversation:\n got %s\nwant %s", again.Body, first.Body)
	}
	if n := len(allConversations(t, s, a, nil)); n != 1 {
		t.Fatalf("%d conversations after a retry, want 1", n)
	}

	// The same key with another body is a conflict and creates nothing.
	other := s.Do(t, "POST", "/v1/conversations", map[string]any{"title": "twice"},
		append(Bearer(a.Access), "Idempotency-Key", key)...)
	ExpectError(t, other, http.StatusConflict, "ALREADY_EXISTS")
	if n := len(allConversations(t, s, a, nil)); n != 1 {
		t.Errorf("%d conversations after a conflicting retry, want 1", n)
	}

	// Keys are per user: B's first use of A's key creates B's own.
	theirs := s.Do(t, "POST", "/v1/conversations", map[string]any{"title": "twice"},
		append(Bearer(b.Access), "Idempotency-Key", key)...)
	mustStatus(t, theirs, http.StatusCreated, "B with A's key")
	if Str(theirs.JSON, "id") == Str(first.JSON, "id") || Str(theirs.JSON, "title") != "twice" {
		t.Errorf("B got %s", theirs.Body)
	}
	theirsAgain := s.Do(t, "POST", "/v1/conversations", map[string]any{"title": "twice"},
		append(Bearer(b.Access), "Idempotency-Key", key)...)
	if theirsAgain.Status != http.StatusCreated || Str(theirsAgain.JSON, "id") != Str(theirs.JSON, "id") {
		t.Errorf("B's retry: %d %s", theirsAgain.Status, theirsAgain.Body)
	}
	if got := conversation(t, s, a, Str(first.JSON, "id")); Str(got, "title") != "once" {
		t.Errorf("A's conversation became %v", got)
	}

	// Without a key, or with fresh keys, every create is a new conversation.
	createConversation(t, s, a, body)
	createConversation(t, s, a, body)
	createConversation(t, s, a, body, "Idempotency-Key", randomKey())
	if n := len(allConversations(t, s, a, nil)); n != 4 {
		t.Errorf("%d conversations, want 4", n)
	}

	// Concurrent duplicates create exactly one.
	concurrentKey := randomKey()
	const n = 8
	var wg sync.WaitGroup
	answers := make([]Response, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = s.Try("POST", "/v1/conversations", map[string]any{"title": "race"},
				append(Bearer(a.Access), "Idempotency-Key", concurrentKey)...)
		}()
	}
	wg.Wait()
	raceIDs := map[string]bool{}
	for i := range answers {
		if errs[i] != nil {
			t.Fatalf("concurrent create %d: %v", i, errs[i])
		}
		if answers[i].Status != http.StatusCreated {
			t.Errorf("concurrent create %d: %d %s", i, answers[i].Status, answers[i].Body)
			continue
		}
		raceIDs[Str(answers[i].JSON, "id")] = true
	}
	if len(raceIDs) != 1 {
		t.Errorf("concurrent duplicates answered %d different ids: %v", len(raceIDs), raceIDs)
	}
	if got := allConversations(t, s, a, url.Values{"q": {"race"}}); len(got) != 1 {
		t.Errorf("concurrent duplicates created %d conversations, want 1", len(got))
	}
}

func TestConversationHugeBodyIsA4xxEnvelope(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	huge := `{"title":"t","metadata":{"k":"` + strings.Repeat("a", 1<<20) + `"}}`
	r := s.Do(t, "POST", "/v1/conversations", huge, Bearer(a.Access)...)
	if r.Status < 400 || r.Status >= 500 || Str(r.JSON, "error", "code") == "" {
		t.Errorf("huge body: %d %.300s", r.Status, r.Body)
	}
	for _, body := range []string{`{"title":`, `not json`, `[1]`, `{"title": 5}`, `{"pinned": "yes"}`, `{"unknown_field": 1}`} {
		r := s.Do(t, "POST", "/v1/conversations", body, Bearer(a.Access)...)
		ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	}
	if n := len(allConversations(t, s, a, nil)); n != 0 {
		t.Errorf("%d conversations after refused creates, want 0", n)
	}
}
