package e2e

// SPEC "Robustness": every limit is enforced at the edge with a 4xx in the
// envelope, never a 5xx: malformed path ids, query values, page tokens,
// header values, tokens and bodies, on every REST route of
// gateway/api/chat_v1.yaml; and nothing changes.

import (
	"encoding/base64"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Page tokens are chat.internal cursors (proto/chat/internal/page_token.proto)
// serialized and base64url-encoded (common/page_token.cc); these build them.
func pbVarint(v uint64) []byte {
	var out []byte
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

func pbInt(field int, v int64) []byte {
	return append(pbVarint(uint64(field<<3)), pbVarint(uint64(v))...)
}

func pbString(field int, s string) []byte {
	out := append(pbVarint(uint64(field<<3|2)), pbVarint(uint64(len(s)))...)
	return append(out, s...)
}

func conversationCursor(updatedAtMicros int64, id string) string {
	var b []byte
	b = append(b, pbInt(4, updatedAtMicros)...)
	b = append(b, pbString(5, id)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func messageCursor(conversationID string, seq int64) string {
	b := append(pbString(1, conversationID), pbInt(3, seq)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tamperSignature returns variants of an access token whose signature
// decodes to the same bytes under a lenient base64url decoder.
func tamperedTokens(token string) map[string]string {
	dot := strings.LastIndexByte(token, '.')
	sig := token[dot+1:]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	// An RS256 signature is 256 bytes: the last character carries 2 bits of
	// data and 4 bits that must be zero.
	nonCanonical := token[:len(token)-1] + string(alphabet[last^1])
	return map[string]string{
		"signature with == appended":   token + "==",
		"space inside the signature":   token[:dot+1+len(sig)/2] + " " + token[dot+1+len(sig)/2:],
		"non-canonical last character": nonCanonical,
	}
}

type restRoute struct {
	method, path string // path with {c} (conversation id) and {m} (message id)
	body         any    // a valid body, or nil for routes without one
	authed       bool
}

func TestRobustMalformedInputOnEveryRouteIs4xxInTheEnvelopeAndChangesNothing(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	c := Str(createTitled(t, s, a, "c1"), "id")
	other := Str(createTitled(t, s, a, "c2"), "id")
	createTitled(t, s, a, "c3")
	m := Str(createMessage(t, s, a, c, "user", "one"), "id")
	createMessage(t, s, a, c, "assistant", "two")
	createMessage(t, s, a, c, "user", "three")
	_, convToken := listPage(t, s, a, "/v1/conversations", "conversations", url.Values{"page_size": {"1"}})
	_, msgToken := listPage(t, s, a, "/v1/conversations/"+c+"/messages", "messages", url.Values{"page_size": {"1"}})
	if convToken == "" || msgToken == "" {
		t.Fatalf("no page tokens to tamper with: %q %q", convToken, msgToken)
	}

	snapshot := func() string {
		var b strings.Builder
		for _, q := range []url.Values{nil, {"archived": {"true"}}} {
			for _, conv := range allConversations(t, s, a, q) {
				b.WriteString(string(mustJSON(conv)))
			}
		}
		for _, msg := range allMessages(t, s, a, c, nil) {
			b.WriteString(string(mustJSON(msg)))
		}
		b.WriteString(string(mustJSON(getOK(t, s, a, "/v1/auth/profile"))))
		b.WriteString(sqlOne(t, s, "SELECT (SELECT count(*) FROM users) || '/' || (SELECT count(*) FROM conversations) || '/' || (SELECT count(*) FROM messages)"))
		return b.String()
	}
	before := snapshot()

	newName := "n_" + a.Username[2:]
	routes := []restRoute{
		{"POST", "/v1/auth/register", map[string]any{"username": "r_" + a.Username[2:], "email": "r_" + a.Email, "password": "Passw0rd!"}, false},
		{"POST", "/v1/auth/login", map[string]any{"login": a.Username, "password": a.Password}, false},
		{"POST", "/v1/auth/refresh", map[string]any{"refresh_token": a.Refresh}, false},
		{"POST", "/v1/auth/logout", map[string]any{"refresh_token": a.Refresh}, false},
		{"GET", "/v1/auth/profile", nil, true},
		{"PATCH", "/v1/auth/profile", map[string]any{"username": newName, "current_password": a.Password}, true},
		{"PUT", "/v1/auth/profile", map[string]any{"username": newName, "current_password": a.Password}, true},
		// A wrong password: a variant that got through must not take the
		// account (and every later check) with it.
		{"DELETE", "/v1/auth/profile", map[string]any{"current_password": "Wr0ngpass"}, true},
		{"POST", "/v1/conversations", map[string]any{"title": "new"}, true},
		{"GET", "/v1/conversations", nil, true},
		{"DELETE", "/v1/conversations", nil, true},
		{"GET", "/v1/conversations/{c}", nil, true},
		{"PATCH", "/v1/conversations/{c}", map[string]any{"title": "renamed"}, true},
		{"PUT", "/v1/conversations/{c}", map[string]any{"title": "renamed"}, true},
		{"DELETE", "/v1/conversations/{c}", nil, true},
		{"POST", "/v1/conversations/{c}/messages", map[string]any{"role": "user", "content": "new"}, true},
		{"GET", "/v1/conversations/{c}/messages", nil, true},
		{"DELETE", "/v1/conversations/{c}/messages", nil, true},
		{"GET", "/v1/conversations/{c}/messages/{m}", nil, true},
		{"PATCH", "/v1/conversations/{c}/messages/{m}", map[string]any{"content": "edited"}, true},
		{"PUT", "/v1/conversations/{c}/messages/{m}", map[string]any{"content": "edited"}, true},
		{"DELETE", "/v1/conversations/{c}/messages/{m}", nil, true},
		{"POST", "/v1/conversations/{c}/chat", map[string]any{"content": "hi"}, true},
		// m is a user message: a regenerate that got through is a 400 still.
		{"POST", "/v1/conversations/{c}/messages/{m}:regenerate", map[string]any{"model": ""}, true},
		{"POST", "/v1/conversations/{c}/messages/{m}:fork", map[string]any{"title": "forked"}, true},
		// m is a user message, which has ended: a cancel that got through
		// answers it unchanged, a stream its text and done.
		{"GET", "/v1/conversations/{c}/messages/{m}/stream", nil, true},
		{"POST", "/v1/conversations/{c}/messages/{m}:cancel", nil, true},
	}
	fill := func(path, conv, msg string) string {
		return strings.ReplaceAll(strings.ReplaceAll(path, "{c}", conv), "{m}", msg)
	}
	// Each subtest reports its own failures.
	fails := &failures{}
	check := func(what string, r Response, err error, want int) {
		if err != nil {
			fails.add("%s: %v", what, err)
			return
		}
		if p := envelopeProblem(r); p != "" {
			fails.add("%s: %s", what, p)
		} else if want != 0 && r.Status != want {
			fails.add("%s: status %d, want %d; body %.200s", what, r.Status, want, r.Body)
		}
	}
	auth := Bearer(a.Access)

	t.Run("path ids", func(t *testing.T) {
		fails = &failures{}
		defer func() { fails.reportUpTo(t, "path ids", 200) }()
		bad := map[string]string{
			"%FF": "%FF", "%00": "%00", "300 characters": strings.Repeat("a", 300), "not a UUID": "not-a-uuid",
			"UUID with a non-hex digit": "0190b7a0-0000-7000-8000-00000000000g", "%2F": "a%2Fb",
		}
		for _, rt := range routes {
			if !strings.Contains(rt.path, "{c}") {
				continue
			}
			for name, id := range bad {
				r, err := s.Call(rt.method, fill(rt.path, id, m), rt.body, auth...)
				check(rt.method+" "+rt.path+" with conversation id "+name, r, err, 0)
				if strings.Contains(rt.path, "{m}") {
					r, err = s.Call(rt.method, fill(rt.path, c, id), rt.body, auth...)
					check(rt.method+" "+rt.path+" with message id "+name, r, err, 0)
				}
			}
		}
	})

	t.Run("query values", func(t *testing.T) {
		fails = &failures{}
		defer func() { fails.reportUpTo(t, "query values", 200) }()
		const maxInt64 = math.MaxInt64
		queries := map[string]string{
			"page_size=-1":                   "page_size=-1",
			"page_size=99999999999999999999": "page_size=99999999999999999999",
			"page_size=abc":                  "page_size=abc",
			"page_token=garbage":             "page_token=garbage!!",
			"q=%FF":                          "q=%FF",
			"archived=maybe":                 "archived=maybe",
		}
		convTokens := map[string]string{
			"a tampered page token (id not a UUID)": conversationCursor(1, "not-a-uuid"),
			"a page token with time MaxInt64 µs":    conversationCursor(maxInt64, other),
			"a page token with time MinInt64 µs":    conversationCursor(math.MinInt64, other),
			"a real page token with a flipped byte": flipMiddle(convToken),
			"a real page token cut in half":         convToken[:len(convToken)/2],
			"a page token of the messages listing":  msgToken,
		}
		msgTokens := map[string]string{
			"a page token of another conversation":      messageCursor(other, 1),
			"a page token whose conversation id is %FF": messageCursor("\xff", 1),
			"a real page token with a flipped byte":     flipMiddle(msgToken),
			"a page token of the conversations listing": convToken,
		}
		for name, q := range queries {
			r, err := s.Call("GET", "/v1/conversations?"+q, nil, auth...)
			check("GET /v1/conversations?"+name, r, err, 0)
			if name != "archived=maybe" && name != "q=%FF" {
				r, err = s.Call("GET", "/v1/conversations/"+c+"/messages?"+q, nil, auth...)
				check("GET messages?"+name, r, err, 0)
			}
		}
		for _, q := range []string{"order=sideways", "branch=sideways", "branch=%FF", "branch=all&branch=active"} {
			r, err := s.Call("GET", "/v1/conversations/"+c+"/messages?"+q, nil, auth...)
			check("GET messages?"+q, r, err, http.StatusBadRequest)
		}
		for name, token := range convTokens {
			r, err := s.Call("GET", "/v1/conversations?page_token="+url.QueryEscape(token), nil, auth...)
			check("GET /v1/conversations with "+name, r, err, 0)
		}
		for name, token := range msgTokens {
			r, err := s.Call("GET", "/v1/conversations/"+c+"/messages?page_token="+url.QueryEscape(token), nil, auth...)
			check("GET messages with "+name, r, err, 0)
		}
		// Positions that may exist: never a 5xx, whatever else.
		for name, token := range map[string]string{
			"seq MaxInt64": messageCursor(c, math.MaxInt64), "seq -1": messageCursor(c, -1), "seq MinInt64": messageCursor(c, math.MinInt64),
		} {
			r, err := s.Call("GET", "/v1/conversations/"+c+"/messages?page_token="+url.QueryEscape(token), nil, auth...)
			if err != nil || r.Status >= 500 {
				fails.add("GET messages with a page token at %s: status %d (%v), want no 5xx; body %.200s", name, r.Status, err, r.Body)
			}
		}
	})

	t.Run("bodies", func(t *testing.T) {
		fails = &failures{}
		defer func() { fails.reportUpTo(t, "bodies", 200) }()
		for _, rt := range routes {
			if rt.body == nil {
				continue
			}
			valid := rt.body.(map[string]any)
			wrongTypes := map[string]any{}
			withUnknown := map[string]any{"no_such_field": 1}
			var firstString string
			for k, v := range valid {
				wrongTypes[k] = []int{1, 2}
				withUnknown[k] = v
				if firstString == "" || k == "content" {
					firstString = k
				}
			}
			huge := `{"` + firstString + `":"` + strings.Repeat("a", 1<<20+1024) + `"}`
			variants := map[string]any{
				"malformed JSON":                  `{"` + firstString + `": `,
				"a JSON array":                    `[]`,
				"JSON null":                       `null`,
				"wrong types":                     wrongTypes,
				"an unknown field":                withUnknown,
				"a body over 1 MiB":               huge,
				"invalid UTF-8 in " + firstString: []byte(`{"` + firstString + `":"a` + "\xff\xfe" + `b"}`),
				"trailing garbage":                string(mustJSON(valid)) + "}",
			}
			if firstString == "content" {
				variants["NUL in content"] = `{"role":"user","content":"a\u0000b"}`
			}
			for name, body := range variants {
				r, err := s.Call(rt.method, fill(rt.path, c, m), body, auth...)
				check(rt.method+" "+rt.path+" with "+name, r, err, 0)
			}
		}
	})

	t.Run("headers", func(t *testing.T) {
		fails = &failures{}
		defer func() { fails.reportUpTo(t, "headers", 200) }()
		for _, path := range []string{"/v1/conversations", "/v1/conversations/" + c + "/messages"} {
			body := map[string]any{"title": "idem"}
			if strings.HasSuffix(path, "/messages") {
				body = map[string]any{"role": "user", "content": "idem"}
			}
			for name, key := range map[string]string{"é": "clé-é", "emoji": "key-😀", "latin-1 byte": "key-\xe9"} {
				r, err := s.Call("POST", path, body, append(Bearer(a.Access), "Idempotency-Key", key)...)
				check("POST "+path+" with a non-ASCII Idempotency-Key ("+name+")", r, err, http.StatusBadRequest)
			}
		}
		// Deletes last: a token wrongly accepted there takes the data.
		var ordered []restRoute
		for _, deletes := range []bool{false, true} {
			for _, rt := range routes {
				if rt.authed && (rt.method == "DELETE") == deletes {
					ordered = append(ordered, rt)
				}
			}
		}
		for name, token := range tamperedTokens(a.Access) {
			for _, rt := range ordered {
				r, err := s.Call(rt.method, fill(rt.path, c, m), rt.body, Bearer(token)...)
				check(rt.method+" "+rt.path+" with an access token, "+name, r, err, http.StatusUnauthorized)
			}
		}
	})

	if after := snapshot(); after != before {
		t.Errorf("malformed input changed the user's data:\nbefore %s\nafter  %s", before, after)
	}
}

// flipMiddle changes one character in the middle of a token.
func flipMiddle(token string) string {
	i := len(token) / 2
	ch := byte('A')
	if token[i] == 'A' {
		ch = 'B'
	}
	return token[:i] + string(ch) + token[i+1:]
}
