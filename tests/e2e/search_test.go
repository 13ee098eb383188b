package e2e

// Full-text search through the gateway (docs/api.md "Search"): the query
// forms, snippets, isolation, paging, and malformed input answered 400 in
// the envelope, also under parallel load.

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// searchPath builds /v1/search with its query parameters, escaped.
func searchPath(q string, extra ...string) string {
	v := url.Values{}
	v.Set("q", q)
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return "/v1/search?" + v.Encode()
}

type searchHit struct {
	ConversationID, Title, MessageID, Role, Snippet, CreatedAt string
}

func searchHits(t *testing.T, r Response) []searchHit {
	t.Helper()
	mustStatus(t, r, http.StatusOK, "search")
	results, _ := Get(r.JSON, "results").([]any)
	var hits []searchHit
	for _, x := range results {
		hits = append(hits, searchHit{
			ConversationID: Str(x, "conversation_id"),
			Title:          Str(x, "conversation_title"),
			MessageID:      Str(x, "message_id"),
			Role:           Str(x, "role"),
			Snippet:        Str(x, "snippet"),
			CreatedAt:      Str(x, "created_at"),
		})
	}
	return hits
}

func search(t *testing.T, s *Stack, a Account, q string, extra ...string) []searchHit {
	t.Helper()
	return searchHits(t, s.Do(t, "GET", searchPath(q, extra...), nil, Bearer(a.Access)...))
}

func messageIDs(hits []searchHit) []string {
	var ids []string
	for _, h := range hits {
		if h.MessageID == "" {
			ids = append(ids, "title:"+h.ConversationID)
		} else {
			ids = append(ids, h.MessageID)
		}
	}
	return ids
}

func expectIDs(t *testing.T, what string, hits []searchHit, want ...string) {
	t.Helper()
	got := messageIDs(hits)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: found %v, want %v", what, got, want)
	}
}

func TestSearchQueryFormsAndSnippets(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "Trip to Kyoto"), "id")
	fox := Str(createMessage(t, s, a, conv, "user", "The quick brown fox visits the Café"), "id")
	think := Str(createMessage(t, s, a, conv, "assistant", "Quick thinking: <script>alert(1)</script> & more"), "id")
	ru := Str(createMessage(t, s, a, conv, "user", "Привет, МИР"), "id")
	ja := Str(createMessage(t, s, a, conv, "assistant", "東京都に住んでいます"), "id")

	expectIDs(t, "words", search(t, s, a, "quick brown"), fox)
	expectIDs(t, "phrase", search(t, s, a, `"brown fox"`), fox)
	expectIDs(t, "phrase out of order", search(t, s, a, `"fox brown"`))
	expectIDs(t, "exclusion", search(t, s, a, "quick -fox"), think)
	expectIDs(t, "prefix", search(t, s, a, "thin*"), think)
	expectIDs(t, "accents and case", search(t, s, a, "CAFE"), fox)
	expectIDs(t, "cyrillic", search(t, s, a, "мир"), ru)
	expectIDs(t, "japanese", search(t, s, a, "東京"), ja)
	expectIDs(t, "title", search(t, s, a, "kyoto"), "title:"+conv)

	hits := search(t, s, a, "thinking")
	if len(hits) != 1 {
		t.Fatalf("thinking: %v", hits)
	}
	h := hits[0]
	if h.ConversationID != conv || h.Title != "Trip to Kyoto" || h.Role != "assistant" {
		t.Errorf("hit fields: %+v", h)
	}
	if want := "Quick <mark>thinking</mark>: &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"; h.Snippet != want {
		t.Errorf("snippet %q, want %q", h.Snippet, want)
	}
	if _, err := time.Parse(time.RFC3339Nano, h.CreatedAt); err != nil || !strings.HasSuffix(h.CreatedAt, "Z") {
		t.Errorf("created_at %q is not RFC 3339 in UTC", h.CreatedAt)
	}
	title := search(t, s, a, "kyoto")[0]
	if title.Role != "" || title.Snippet != "Trip to <mark>Kyoto</mark>" {
		t.Errorf("title hit: %+v", title)
	}
	if j := search(t, s, a, "東京")[0].Snippet; j != "<mark>東京</mark>都に住んでいます" {
		t.Errorf("japanese snippet %q", j)
	}

	// Edited and deleted messages are found as they are now.
	r := s.Do(t, "PATCH", "/v1/conversations/"+conv+"/messages/"+fox,
		map[string]any{"content": "a slow green turtle"}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "edit")
	expectIDs(t, "after edit, old words", search(t, s, a, "fox"))
	expectIDs(t, "after edit, new words", search(t, s, a, "turtle"), fox)
	expectNoContent(t, s.Do(t, "DELETE", "/v1/conversations/"+conv+"/messages/"+ru, nil, Bearer(a.Access)...), "delete")
	expectIDs(t, "after delete", search(t, s, a, "мир"))
}

func TestSearchIsolationAndConversationFilter(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	convA := Str(createTitled(t, s, a, "Alpha"), "id")
	convB := Str(createTitled(t, s, b, "Beta"), "id")
	secret := Str(createMessage(t, s, b, convB, "user", "zanzibar treasure map"), "id")
	Str(createMessage(t, s, a, convA, "user", "nothing here"), "id")

	expectIDs(t, "another user's words", search(t, s, a, "zanzibar"))
	expectIDs(t, "another user's prefix", search(t, s, a, "zanz*"))
	expectIDs(t, "own words", search(t, s, b, "zanzibar"), secret)
	// Another user's conversation is answered like a missing one.
	for _, id := range []string{convB, randomUUIDv7()} {
		r := s.Do(t, "GET", searchPath("zanzibar", "conversation_id", id), nil, Bearer(a.Access)...)
		ExpectError(t, r, http.StatusNotFound, "NOT_FOUND")
	}
	expectIDs(t, "own conversation", search(t, s, b, "treasure", "conversation_id", convB), secret)
	expectIDs(t, "own conversation without the word", search(t, s, a, "treasure", "conversation_id", convA))
}

func TestSearchPages(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "Paging"), "id")
	want := map[string]bool{}
	for i := 0; i < 7; i++ {
		want[Str(createMessage(t, s, a, conv, "user", fmt.Sprintf("pagination item %d", i)), "id")] = true
	}
	seen := map[string]bool{}
	token := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("more pages than results")
		}
		extra := []string{"page_size", "3"}
		if token != "" {
			extra = append(extra, "page_token", token)
		}
		r := s.Do(t, "GET", searchPath("pagination", extra...), nil, Bearer(a.Access)...)
		hits := searchHits(t, r)
		if len(hits) > 3 {
			t.Fatalf("page of %d", len(hits))
		}
		for _, h := range hits {
			if seen[h.MessageID] {
				t.Errorf("%s on two pages", h.MessageID)
			}
			seen[h.MessageID] = true
		}
		token = Str(r.JSON, "next_page_token")
		if token == "" {
			break
		}
		// The token of this search is refused by another.
		r = s.Do(t, "GET", searchPath("item", "page_token", token), nil, Bearer(a.Access)...)
		ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	}
	if len(seen) != len(want) {
		t.Errorf("saw %d results over the pages, want %d", len(seen), len(want))
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("%s never listed", id)
		}
	}
}

// The malformed searches of a user, with the field each must name.
func badSearches() []struct{ path, field string } {
	return []struct{ path, field string }{
		{"/v1/search", "q"},
		{searchPath(""), "q"},
		{searchPath("   "), "q"},
		{searchPath("-only -exclusions"), "q"},
		{searchPath(strings.Repeat("x", 1001)), "q"},
		{searchPath(strings.Repeat("x", 201)), "q"},
		{"/v1/search?q=%C3%28", ""},
		{searchPath("ok", "page_token", "not a token!"), "page_token"},
		{searchPath("ok", "page_token", "AAAA"), "page_token"},
		{searchPath("ok", "conversation_id", "not-a-uuid"), "conversation_id"},
		{searchPath("ok", "conversation_id", "12345678-1234-1234-1234-12345678901"), "conversation_id"},
		{searchPath("ok", "page_size", "-1"), "page_size"},
		{searchPath("ok", "page_size", "many"), ""},
		{searchPath("ok", "page_size", "99999999999"), ""},
	}
}

func TestSearchMalformedInput(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "Inputs"), "id")
	createMessage(t, s, a, conv, "user", "ok fine")
	for _, c := range badSearches() {
		r := s.Do(t, "GET", c.path, nil, Bearer(a.Access)...)
		if problem := envelopeProblem(r); problem != "" {
			t.Errorf("%s: %s", c.path, problem)
			continue
		}
		ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
		if c.field != "" {
			found := false
			for _, v := range Violations(r) {
				found = found || strings.HasPrefix(v, c.field+":")
			}
			if !found {
				t.Errorf("%s: violations %v name no %s", c.path, Violations(r), c.field)
			}
		}
	}
	// A tampered token of a real search.
	r := s.Do(t, "GET", searchPath("ok", "page_size", "1"), nil, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "search")
	createMessage(t, s, a, conv, "user", "ok again")
	r = s.Do(t, "GET", searchPath("ok", "page_size", "1"), nil, Bearer(a.Access)...)
	token := Str(r.JSON, "next_page_token")
	if token == "" {
		t.Fatal("no next_page_token")
	}
	tampered := token[:len(token)-2] + "!!"
	r = s.Do(t, "GET", searchPath("ok", "page_token", tampered), nil, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	// The longest q (of the longest words) is fine; without a token it is
	// 401.
	word := strings.Repeat("é", 200)
	q := strings.Join([]string{word, word, word, word, word[:len(word)-8]}, " ")
	if n := utf8.RuneCountInString(q); n != 1000 {
		t.Fatal(n)
	}
	expectIDs(t, "longest q", search(t, s, a, q))
	ExpectError(t, s.Do(t, "GET", searchPath("ok"), nil), http.StatusUnauthorized, "UNAUTHENTICATED")
}

func TestSearchParallelMixKeepsServing(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "Parallel"), "id")
	id := Str(createMessage(t, s, a, conv, "user", "concurrent needle in a haystack"), "id")
	bad := badSearches()
	var f failures
	parallel(64, 32, func(i int) {
		var path string
		good := i%2 == 0
		switch {
		case good && i%4 == 0:
			path = searchPath("needle hay*")
		case good:
			path = searchPath(`"concurrent needle"`, "conversation_id", conv)
		default:
			path = bad[i%len(bad)].path
		}
		r, err := s.Try("GET", path, nil, Bearer(a.Access)...)
		if err != nil {
			f.add("%s: %v", path, err)
			return
		}
		if good {
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), id) {
				f.add("%s: %d %.200s", path, r.Status, r.Body)
			}
			return
		}
		if problem := envelopeProblem(r); problem != "" {
			f.add("%s: %s", path, problem)
		}
	})
	f.report(t, "parallel searches")
	expectIDs(t, "after the load", search(t, s, a, "needle"), id)
}
