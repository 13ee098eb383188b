package e2e

// Isolation between users through the gateway: another user's ids answer
// exactly like missing ones and change nothing, every route needs an access
// token, and an account takes its conversations and messages with it.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// route is one REST call on a conversation or message, with the ids still
// to fill in, in its path or its body.
type route struct {
	name, method, path string
	body               any
}

// chatRoutes lists every conversation and message route, and every field
// that names a message (parent_id, active_message_id); {c} is a
// conversation id and {m} a message id.
func chatRoutes() []route {
	return []route{
		{"create conversation", "POST", "/v1/conversations", map[string]any{"title": "t"}},
		{"list conversations", "GET", "/v1/conversations", nil},
		{"delete all conversations", "DELETE", "/v1/conversations", nil},
		{"get conversation", "GET", "/v1/conversations/{c}", nil},
		{"patch conversation", "PATCH", "/v1/conversations/{c}", map[string]any{"title": "pwned", "pinned": false}},
		{"put conversation", "PUT", "/v1/conversations/{c}", map[string]any{"archived": true, "metadata": map[string]any{}}},
		{"delete conversation", "DELETE", "/v1/conversations/{c}", nil},
		{"list messages", "GET", "/v1/conversations/{c}/messages", nil},
		{"create message", "POST", "/v1/conversations/{c}/messages", map[string]any{"role": "user", "content": "pwned"}},
		{"clear messages", "DELETE", "/v1/conversations/{c}/messages", nil},
		{"get message", "GET", "/v1/conversations/{c}/messages/{m}", nil},
		{"patch message", "PATCH", "/v1/conversations/{c}/messages/{m}", map[string]any{"content": "pwned"}},
		{"put message", "PUT", "/v1/conversations/{c}/messages/{m}", map[string]any{"content": "pwned", "metadata": map[string]any{}}},
		{"delete message", "DELETE", "/v1/conversations/{c}/messages/{m}", nil},
		{"chat", "POST", "/v1/conversations/{c}/chat", map[string]any{"content": "pwned"}},
		{"list every branch", "GET", "/v1/conversations/{c}/messages?branch=all", nil},
		{"switch branch", "PATCH", "/v1/conversations/{c}", map[string]any{"active_message_id": "{m}", "title": "pwned"}},
		{"switch branch by PUT", "PUT", "/v1/conversations/{c}", map[string]any{"active_message_id": "{m}", "pinned": true}},
		{"create message under a parent", "POST", "/v1/conversations/{c}/messages",
			map[string]any{"role": "user", "content": "pwned", "parent_id": "{m}"}},
		{"chat under a parent", "POST", "/v1/conversations/{c}/chat", map[string]any{"content": "pwned", "parent_id": "{m}"}},
		{"regenerate", "POST", "/v1/conversations/{c}/messages/{m}:regenerate", map[string]any{}},
		{"resume a reply", "GET", "/v1/conversations/{c}/messages/{m}/stream", nil},
		{"resume a reply after an offset", "GET", "/v1/conversations/{c}/messages/{m}/stream?after=1", nil},
		{"cancel a reply", "POST", "/v1/conversations/{c}/messages/{m}:cancel", map[string]any{}},
		{"fork", "POST", "/v1/conversations/{c}/messages/{m}:fork", map[string]any{"title": "pwned"}},
	}
}

func (r route) at(conv, msg string) string {
	return strings.NewReplacer("{c}", conv, "{m}", msg).Replace(r.path)
}

// bodyAt is the body with the ids filled in, as JSON text.
func (r route) bodyAt(conv, msg string) any {
	if r.body == nil {
		return nil
	}
	return strings.NewReplacer("{c}", conv, "{m}", msg).Replace(string(mustJSON(r.body)))
}

// names reports whether the route takes the placeholder, in its path or
// its body.
func (r route) names(placeholder string) bool {
	return strings.Contains(r.path, placeholder) || r.body != nil && strings.Contains(string(mustJSON(r.body)), placeholder)
}

// streams reports whether the route answers a stream of events.
func (r route) streams() bool {
	return strings.HasSuffix(r.path, "/chat") || strings.HasSuffix(r.path, ":regenerate") ||
		strings.Contains(r.path, "/stream")
}

// snapshot is everything A can read, for comparing before and after.
func snapshot(t *testing.T, s *Stack, a Account) string {
	t.Helper()
	all := map[string]any{}
	for _, archived := range []string{"false", "true"} {
		convs := allConversations(t, s, a, url.Values{"archived": {archived}})
		all["conversations archived="+archived] = convs
		for _, c := range convs {
			id := Str(c, "id")
			all["get "+id] = conversation(t, s, a, id)
			all["messages "+id] = allMessages(t, s, a, id, nil)
			msgs := allMessages(t, s, a, id, url.Values{"branch": {"all"}})
			all["every branch "+id] = msgs
			for _, m := range msgs {
				all["get "+id+"/"+Str(m, "id")] = getOK(t, s, a, messagesPath(id)+"/"+Str(m, "id"))
			}
		}
	}
	all["rows"] = sqlOne(t, s, "SELECT (SELECT count(*) FROM conversations WHERE user_id = '"+a.ID+"') || '/' || "+
		"(SELECT count(*) FROM messages WHERE user_id = '"+a.ID+"')")
	out, _ := json.MarshalIndent(all, "", " ")
	return string(out)
}

// streamError reads the error of an answer that may be a JSON envelope or
// the first line of a newline-delimited JSON or SSE stream.
func streamError(r Response) Response {
	if r.JSON != nil {
		return r
	}
	body := strings.TrimSpace(string(r.Body))
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "data:"))
		var decoded map[string]any
		if json.Unmarshal([]byte(line), &decoded) == nil {
			if inner, ok := decoded["result"].(map[string]any); ok && inner["error"] != nil {
				decoded = inner
			}
			if decoded["error"] != nil {
				r.JSON = decoded
				r.Body = []byte(line)
				return r
			}
		}
	}
	return r
}

func TestIsolationMatrixAnotherUsersIdsAre404AndChangeNothing(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	key := randomKey()
	c1 := createConversation(t, s, a, map[string]any{"title": "A's secret", "metadata": map[string]any{"k": "v"}},
		"Idempotency-Key", key)
	conv1 := Str(c1, "id")
	mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+conv1, map[string]any{"pinned": true}, Bearer(a.Access)...),
		http.StatusOK, "pin")
	m1 := createMessage(t, s, a, conv1, "user", "A's first message")
	reply := createMessage(t, s, a, conv1, "assistant", "A's reply")
	// A second version of the reply is the active leaf: switching B's way
	// to the first would show.
	mustStatus(t, s.Do(t, "POST", messagesPath(conv1), map[string]any{"role": "assistant", "content": "A's reply, v2",
		"parent_id": Str(m1, "id")}, Bearer(a.Access)...), http.StatusCreated, "version")
	conv2 := Str(createTitled(t, s, a, "A's archive"), "id")
	createMessage(t, s, a, conv2, "user", "archived message")
	mustStatus(t, s.Do(t, "PATCH", "/v1/conversations/"+conv2, map[string]any{"archived": true}, Bearer(a.Access)...),
		http.StatusOK, "archive")
	bConv := Str(createTitled(t, s, b, "B's own"), "id")
	bMsg := Str(createMessage(t, s, b, bConv, "user", "B's message"), "id")
	bConv2 := Str(createTitled(t, s, b, "B's other"), "id")
	bMsg2 := Str(createMessage(t, s, b, bConv2, "assistant", "B's other message"), "id")

	before := snapshot(t, s, a)
	bBefore := snapshot(t, s, b)

	type attempt struct {
		name              string
		conv, msg         string // what B sends
		wantConv, wantMsg string // the same route on ids that do not exist
		headers           []string
		onlyMessageRoutes bool
	}
	missing := randomUUIDv7()
	attempts := []attempt{
		{name: "A's first conversation", conv: conv1, msg: Str(m1, "id"), wantConv: missing, wantMsg: randomUUIDv7()},
		{name: "A's first conversation, A's reply", conv: conv1, msg: Str(reply, "id"), wantConv: missing,
			wantMsg: randomUUIDv7()},
		{name: "A's archived conversation", conv: conv2, msg: Str(m1, "id"), wantConv: missing, wantMsg: randomUUIDv7()},
		{name: "B's conversation, A's message", conv: bConv, msg: Str(m1, "id"), wantConv: bConv, wantMsg: randomUUIDv7(),
			onlyMessageRoutes: true},
		{name: "A's conversation, B's message", conv: conv1, msg: bMsg, wantConv: missing, wantMsg: bMsg,
			onlyMessageRoutes: true},
		{name: "B's conversation, B's message of another conversation", conv: bConv, msg: bMsg2, wantConv: bConv,
			wantMsg: randomUUIDv7(), onlyMessageRoutes: true},
		{name: "A's conversation with A's idempotency key", conv: conv1, msg: Str(m1, "id"), wantConv: missing,
			wantMsg: randomUUIDv7(), headers: []string{"Idempotency-Key", key}},
	}
	for _, at := range attempts {
		for _, rt := range chatRoutes() {
			if !rt.names("{c}") || at.onlyMessageRoutes && !rt.names("{m}") {
				continue
			}
			t.Run(at.name+"/"+rt.name, func(t *testing.T) {
				headers := append(Bearer(b.Access), at.headers...)
				want := s.Do(t, rt.method, rt.at(at.wantConv, at.wantMsg), rt.bodyAt(at.wantConv, at.wantMsg), headers...)
				got := s.Do(t, rt.method, rt.at(at.conv, at.msg), rt.bodyAt(at.conv, at.msg), headers...)
				if rt.streams() {
					want, got = streamError(want), streamError(got)
				}
				ExpectError(t, want, http.StatusNotFound, "NOT_FOUND")
				expectSameNotFound(t, got, want)
			})
		}
	}

	// B's calls changed nothing of B's either (a refused switch or fork,
	// a refused create under a parent).
	if after := snapshot(t, s, b); after != bBefore {
		t.Errorf("B's data changed:\nbefore %s\n after %s", bBefore, after)
	}
	// A's conversations appear nowhere in B's listings or searches.
	for _, q := range []url.Values{nil, {"archived": {"true"}}, {"q": {"secret"}}, {"q": {"A's"}, "archived": {"true"}}} {
		for _, c := range allConversations(t, s, b, q) {
			if id := Str(c, "id"); id != bConv && id != bConv2 {
				t.Errorf("B lists %v with %v", c, q)
			}
		}
	}
	// B's creates with A's idempotency key are B's own.
	r := s.Do(t, "POST", "/v1/conversations", map[string]any{"title": "A's secret", "metadata": map[string]any{"k": "v"}},
		append(Bearer(b.Access), "Idempotency-Key", key)...)
	mustStatus(t, r, http.StatusCreated, "B's create with A's key")
	if Str(r.JSON, "id") == conv1 {
		t.Errorf("B's create with A's idempotency key answered A's conversation")
	}
	// B deleting everything of theirs leaves A alone.
	expectNoContent(t, s.Do(t, "DELETE", "/v1/conversations", nil, Bearer(b.Access)...), "B deletes all")

	if after := snapshot(t, s, a); after != before {
		t.Errorf("A's data changed:\nbefore %s\n after %s", before, after)
	}
	if bBefore == snapshot(t, s, b) {
		t.Errorf("B's delete-all did not delete B's conversations")
	}
}

func TestIsolationEveryConversationAndMessageRouteNeedsAToken(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "guarded"), "id")
	msg := Str(createMessage(t, s, a, conv, "user", "guarded"), "id")
	before := snapshot(t, s, a)
	credentials := map[string][]string{
		"no header":     nil,
		"garbage":       Bearer("garbage"),
		"refresh token": Bearer(a.Refresh),
		"empty bearer":  {"Authorization", "Bearer "},
		"basic":         {"Authorization", "Basic " + a.Access},
	}
	for name, headers := range credentials {
		for _, rt := range chatRoutes() {
			t.Run(name+"/"+rt.name, func(t *testing.T) {
				r := s.Do(t, rt.method, rt.at(conv, msg), rt.bodyAt(conv, msg), headers...)
				if rt.streams() {
					r = streamError(r)
				}
				ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
			})
		}
	}
	if after := snapshot(t, s, a); after != before {
		t.Errorf("unauthenticated calls changed A's data:\nbefore %s\n after %s", before, after)
	}
}

func TestIsolationDeletingTheAccountTakesConversationsAndMessages(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	var aConvs []string
	for i := 0; i < 2; i++ {
		c := createConversation(t, s, a, map[string]any{"title": "mine"}, "Idempotency-Key", randomKey())
		aConvs = append(aConvs, Str(c, "id"))
		for j := 0; j < 3; j++ {
			mustStatus(t, s.Do(t, "POST", messagesPath(Str(c, "id")), map[string]any{"role": "user", "content": "hi"},
				append(Bearer(a.Access), "Idempotency-Key", randomKey())...), http.StatusCreated, "create message")
		}
	}
	bConv := Str(createTitled(t, s, b, "theirs"), "id")
	createMessage(t, s, b, bConv, "user", "still here")
	bBefore := snapshot(t, s, b)
	rows := func(table, user string) string {
		t.Helper()
		return sqlOne(t, s, "SELECT count(*) FROM "+table+" WHERE user_id = '"+user+"'")
	}
	if rows("conversations", a.ID) != "2" || rows("messages", a.ID) != "6" {
		t.Fatalf("before: %s conversations, %s messages", rows("conversations", a.ID), rows("messages", a.ID))
	}

	expectNoContent(t, s.Do(t, "DELETE", "/v1/auth/profile", map[string]any{"current_password": a.Password},
		Bearer(a.Access)...), "delete account")
	for _, table := range []string{"conversations", "messages", "idempotency_keys"} {
		if n := rows(table, a.ID); n != "0" {
			t.Errorf("%s rows of %s left after the account was deleted", n, table)
		}
	}
	for _, id := range aConvs {
		if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+id+"'"); n != "0" {
			t.Errorf("%s messages of conversation %s left", n, id)
		}
	}
	if after := snapshot(t, s, b); after != bBefore {
		t.Errorf("B's data changed:\nbefore %s\n after %s", bBefore, after)
	}

	// The deleted user's still-unexpired access token finds nothing and
	// creates nothing.
	for _, rt := range []route{
		{"get", "GET", "/v1/conversations/" + aConvs[0], nil},
		{"list", "GET", "/v1/conversations", nil},
		{"create", "POST", "/v1/conversations", map[string]any{"title": "ghost"}},
		{"append", "POST", messagesPath(aConvs[0]), map[string]any{"role": "user", "content": "ghost"}},
	} {
		r := s.Do(t, rt.method, rt.path, rt.body, Bearer(a.Access)...)
		switch {
		case r.Status >= 500, r.Status == http.StatusCreated:
			t.Errorf("%s with a deleted user's token: %d %s", rt.name, r.Status, r.Body)
		case r.Status == http.StatusOK && len(items(r.JSON, "conversations")) != 0:
			t.Errorf("%s with a deleted user's token lists %s", rt.name, r.Body)
		}
	}
	for _, table := range []string{"conversations", "messages"} {
		if n := rows(table, a.ID); n != "0" {
			t.Errorf("%s rows of %s for the deleted user", n, table)
		}
	}
}

func TestIsolationRowLevelSecurityHidesOtherUsersRows(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	for _, u := range []Account{a, b} {
		c := Str(createTitled(t, s, u, "rls"), "id")
		createMessage(t, s, u, c, "user", "rls")
	}
	// The services' own roles, as the harness created them.
	for _, role := range []string{"chat_conversation", "chat_message"} {
		roleURL, err := withRole(s.AdminURL, role, rolePassword)
		if err != nil {
			t.Fatal(err)
		}
		last := func(sql string) string {
			t.Helper()
			out, err := Psql(roleURL, sql)
			if err != nil {
				t.Fatalf("%s: %q: %v: %s", role, sql, err, out)
			}
			lines := strings.Split(out, "\n")
			return lines[len(lines)-1]
		}
		// Without the caller's id a session sees nothing, not even with a
		// query that names no owner.
		if n := last("SELECT count(*) FROM conversations"); n != "0" {
			t.Errorf("%s without app.user_id sees %s conversations", role, n)
		}
		if n := last("SELECT count(*) FROM conversations WHERE user_id = '" + b.ID + "'"); n != "0" {
			t.Errorf("%s without app.user_id sees %s of B's conversations", role, n)
		}
		if role == "chat_message" {
			if n := last("SELECT count(*) FROM messages"); n != "0" {
				t.Errorf("%s without app.user_id sees %s messages", role, n)
			}
		}
		// With A's id it sees A's rows only; psql runs the statements of
		// one -c in one transaction, so the local setting holds.
		set := "SELECT set_config('app.user_id', '" + a.ID + "', true); "
		if n := last(set + "SELECT count(*) FROM conversations"); n != "1" {
			t.Errorf("%s as A sees %s conversations, want 1", role, n)
		}
		if n := last(set + "SELECT count(*) FROM conversations WHERE user_id = '" + b.ID + "'"); n != "0" {
			t.Errorf("%s as A sees %s of B's conversations", role, n)
		}
		// Writes as A cannot touch B's rows (updated_at: a column both roles
		// may update; the message role may not set titles at all).
		if n := last(set + "WITH u AS (UPDATE conversations SET updated_at = now() WHERE user_id = '" + b.ID +
			"' RETURNING 1) SELECT count(*) FROM u"); n != "0" {
			t.Errorf("%s as A updated %s of B's conversations", role, n)
		}
	}
	for _, c := range allConversations(t, s, b, nil) {
		if Str(c, "title") != "rls" {
			t.Errorf("B's conversation retitled %q through A's database session", Str(c, "title"))
		}
	}
}
