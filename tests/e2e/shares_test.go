package e2e

// Share links through the gateway (docs/api.md "Share links"): a snapshot of
// the active branch that anyone with the token reads without an access
// token; later messages and edits are not shown; revoking, deleting the
// conversation or the account makes the token 404; another user's
// conversation and shares are 404; the shared view names nothing of the
// owner; malformed input is a 4xx and never a 5xx, also under parallel
// load.

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var shareTokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func sharesPath(convID string) string { return "/v1/conversations/" + convID + "/shares" }

// createShare shares a's conversation and checks the answer's shape.
func createShare(t *testing.T, s *Stack, a Account, convID string) map[string]any {
	t.Helper()
	r := s.Do(t, "POST", sharesPath(convID), map[string]any{}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "create share")
	token := Str(r.JSON, "token")
	if !shareTokenPattern.MatchString(token) {
		t.Fatalf("token %q is not 43 characters of base64url", token)
	}
	if got := Str(r.JSON, "url"); got != "/v1/shares/"+token {
		t.Fatalf("url %q, want /v1/shares/<token>", got)
	}
	if !uuidV7Pattern.MatchString(Str(r.JSON, "id")) || Str(r.JSON, "conversation_id") != convID {
		t.Fatalf("share %s", r.Body)
	}
	timeField(t, r.JSON, "created_at")
	return r.JSON
}

// viewShare GETs a shared view without any access token.
func viewShare(t *testing.T, s *Stack, token string) Response {
	t.Helper()
	return s.Do(t, "GET", "/v1/shares/"+token, nil)
}

func sharedContents(t *testing.T, r Response) []string {
	t.Helper()
	mustStatus(t, r, http.StatusOK, "view share")
	var out []string
	for _, m := range items(r.JSON, "messages") {
		out = append(out, Str(m, "content"))
	}
	return out
}

func TestSharesSnapshotViewedWithoutToken(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "Trip plans"), "id")
	question := createMessage(t, s, a, conv, "user", "Where should we go?")
	createMessage(t, s, a, conv, "assistant", "Lisbon.")

	share := createShare(t, s, a, conv)
	if got := asInt(share["message_count"]); got != 2 {
		t.Fatalf("message_count %d, want 2", got)
	}
	token := Str(share, "token")

	view := viewShare(t, s, token)
	if got := sharedContents(t, view); !sameJSON(got, []string{"Where should we go?", "Lisbon."}) {
		t.Fatalf("shared messages %q", got)
	}
	if Str(view.JSON, "title") != "Trip plans" {
		t.Fatalf("title %q", Str(view.JSON, "title"))
	}
	timeField(t, view.JSON, "created_at")
	msgs := items(view.JSON, "messages")
	if Str(msgs[0], "role") != "user" || Str(msgs[1], "role") != "assistant" {
		t.Fatalf("roles: %s", view.Body)
	}
	for _, m := range msgs {
		for key := range m {
			if key != "role" && key != "content" && key != "model" && key != "created_at" {
				t.Fatalf("shared message has field %q: %s", key, view.Body)
			}
		}
	}

	// Nothing of the owner anywhere in the shared view.
	body := string(view.Body)
	for _, secret := range []string{a.ID, a.Username, a.Email, conv, Str(question, "id"), Str(share, "id")} {
		if strings.Contains(body, secret) {
			t.Fatalf("the shared view contains %q: %s", secret, body)
		}
	}
	for _, key := range []string{"user_id", "username", "email", "user", "id", "conversation_id"} {
		if _, ok := view.JSON[key]; ok {
			t.Fatalf("the shared view has field %q: %s", key, body)
		}
	}

	// A later message, an edit of a shared message and a new version of it
	// are not shown.
	createMessage(t, s, a, conv, "user", "And in winter?")
	r := s.Do(t, "PATCH", "/v1/conversations/"+conv+"/messages/"+Str(question, "id"),
		map[string]any{"content": "EDITED"}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusOK, "edit a shared message")
	createUnder(t, s, a, conv, "", "user", "A new version")
	if got := sharedContents(t, viewShare(t, s, token)); !sameJSON(got, []string{"Where should we go?", "Lisbon."}) {
		t.Fatalf("after later changes the shared messages are %q", got)
	}
	// An access token changes nothing: the view is the same for anyone.
	withToken := s.Do(t, "GET", "/v1/shares/"+token, nil, Bearer(a.Access)...)
	if got := sharedContents(t, withToken); !sameJSON(got, []string{"Where should we go?", "Lisbon."}) {
		t.Fatalf("with an access token: %q", got)
	}
	// A share made now shows the branch as it is now.
	again := createShare(t, s, a, conv)
	if got := sharedContents(t, viewShare(t, s, Str(again, "token"))); !sameJSON(got, []string{"A new version"}) {
		t.Fatalf("a new share shows %q", got)
	}

	// The token is in no log line of the gateway or the message service.
	for _, name := range []string{"gateway", "message"} {
		if strings.Contains(s.Logs(name), token) {
			t.Fatalf("the %s log contains a share token", name)
		}
	}
}

func TestSharesListAndRevoke(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createConversation(t, s, a, nil), "id")
	createMessage(t, s, a, conv, "user", "hello")
	first := createShare(t, s, a, conv)
	second := createShare(t, s, a, conv)

	list := getOK(t, s, a, sharesPath(conv))
	shares := items(list, "shares")
	if len(shares) != 2 || Str(shares[0], "id") != Str(second, "id") || Str(shares[1], "id") != Str(first, "id") {
		t.Fatalf("list, newest first: %v", list)
	}
	for _, sh := range shares {
		if Str(sh, "token") != "" || Str(sh, "url") != "" {
			t.Fatalf("a listed share carries its token or url: %v", sh)
		}
		if asInt(sh["message_count"]) != 1 || Str(sh, "conversation_id") != conv {
			t.Fatalf("listed share %v", sh)
		}
	}

	unknown := viewShare(t, s, strings.Repeat("A", 42)+"E")
	ExpectError(t, unknown, http.StatusNotFound, "NOT_FOUND")

	expectNoContent(t, s.Do(t, "DELETE", sharesPath(conv)+"/"+Str(first, "id"), nil, Bearer(a.Access)...), "revoke")
	expectSameNotFound(t, viewShare(t, s, Str(first, "token")), unknown)
	mustStatus(t, viewShare(t, s, Str(second, "token")), http.StatusOK, "the other share")
	again := s.Do(t, "DELETE", sharesPath(conv)+"/"+Str(first, "id"), nil, Bearer(a.Access)...)
	ExpectError(t, again, http.StatusNotFound, "NOT_FOUND")
	if n := len(items(getOK(t, s, a, sharesPath(conv)), "shares")); n != 1 {
		t.Fatalf("%d shares after revoking one of two", n)
	}
}

func TestSharesRevokedWithConversationAndAccount(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	unknown := viewShare(t, s, strings.Repeat("A", 42)+"E")

	conv := Str(createConversation(t, s, a, nil), "id")
	createMessage(t, s, a, conv, "user", "hello")
	share := createShare(t, s, a, conv)
	expectNoContent(t, s.Do(t, "DELETE", "/v1/conversations/"+conv, nil, Bearer(a.Access)...), "delete conversation")
	expectSameNotFound(t, viewShare(t, s, Str(share, "token")), unknown)

	other := Str(createConversation(t, s, a, nil), "id")
	createMessage(t, s, a, other, "user", "hello")
	share = createShare(t, s, a, other)
	mustStatus(t, viewShare(t, s, Str(share, "token")), http.StatusOK, "view before the account goes")
	expectNoContent(t, s.Do(t, "DELETE", "/v1/auth/profile", map[string]any{"current_password": a.Password},
		Bearer(a.Access)...), "delete account")
	expectSameNotFound(t, viewShare(t, s, Str(share, "token")), unknown)
	if n := sqlOne(t, s, "SELECT count(*) FROM shares WHERE user_id = '"+a.ID+"'"); n != "0" {
		t.Fatalf("%s shares left after the account was deleted", n)
	}
}

func TestSharesIsolation(t *testing.T) {
	s := SharedStack(t)
	owner, intruder := s.NewAccount(t), s.NewAccount(t)
	conv := Str(createConversation(t, s, owner, nil), "id")
	createMessage(t, s, owner, conv, "user", "mine")
	share := createShare(t, s, owner, conv)
	shareID := Str(share, "id")
	missing := randomUUIDv7()

	// Each call of the intruder is answered like the same call on ids that
	// do not exist.
	calls := []struct{ method, path, missingPath string }{
		{"POST", sharesPath(conv), sharesPath(missing)},
		{"GET", sharesPath(conv), sharesPath(missing)},
		{"DELETE", sharesPath(conv) + "/" + shareID, sharesPath(missing) + "/" + missing},
	}
	for _, c := range calls {
		var body any
		if c.method == "POST" {
			body = map[string]any{}
		}
		got := s.Do(t, c.method, c.path, body, Bearer(intruder.Access)...)
		want := s.Do(t, c.method, c.missingPath, body, Bearer(intruder.Access)...)
		expectSameNotFound(t, got, want)
	}
	// The intruder's own conversation with the owner's share id.
	mine := Str(createConversation(t, s, intruder, nil), "id")
	r := s.Do(t, "DELETE", sharesPath(mine)+"/"+shareID, nil, Bearer(intruder.Access)...)
	ExpectError(t, r, http.StatusNotFound, "NOT_FOUND")

	// Nothing changed, and the owner's routes need an access token.
	if n := len(items(getOK(t, s, owner, sharesPath(conv)), "shares")); n != 1 {
		t.Fatalf("%d shares after the intruder's calls, want 1", n)
	}
	mustStatus(t, viewShare(t, s, Str(share, "token")), http.StatusOK, "view after the intruder's calls")
	for _, c := range calls {
		ExpectError(t, s.Do(t, c.method, c.path, nil), http.StatusUnauthorized, "UNAUTHENTICATED")
	}
}

func TestSharesMalformedInput(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createConversation(t, s, a, nil), "id")
	createMessage(t, s, a, conv, "user", "hello")
	share := createShare(t, s, a, conv)
	token := Str(share, "token")

	// Every malformed token is the same 404 as an unknown one.
	unknown := viewShare(t, s, strings.Repeat("A", 42)+"E")
	for _, bad := range []string{
		"x",
		token[:42],
		token + "A",
		strings.Repeat("A", 42) + "B", // non-canonical trailing bits
		token[:42] + "=",
		url.PathEscape(token[:42] + "+"),
		url.PathEscape(token[:42] + " "),
		url.PathEscape(token[:41] + "é"),
		strings.Repeat("A", 4000),
		strings.ToUpper(token),
	} {
		if bad == token {
			continue
		}
		r := viewShare(t, s, bad)
		if r.Status >= 500 {
			t.Fatalf("token %.50q: %d %s", bad, r.Status, r.Body)
		}
		expectSameNotFound(t, r, unknown)
	}
	// An escaped "/" splits the path: no route (the gateway's own 404).
	ExpectError(t, viewShare(t, s, url.PathEscape(token[:42]+"/")), http.StatusNotFound, "NOT_FOUND")
	// Bad UTF-8 in the path: the gateway's 400.
	ExpectError(t, viewShare(t, s, "%FF%FE"+token[:41]), http.StatusBadRequest, "INVALID_ARGUMENT")

	// Bad ids: 404 like a missing conversation or share.
	for _, bad := range []string{"nope", "00000000-0000-0000-0000-00000000000g", url.PathEscape("é"), strings.Repeat("1", 300), "%FF"} {
		for _, c := range []struct{ method, path string }{
			{"POST", sharesPath(bad)},
			{"GET", sharesPath(bad)},
			{"DELETE", sharesPath(bad) + "/" + Str(share, "id")},
			{"DELETE", sharesPath(conv) + "/" + bad},
		} {
			var body any
			if c.method == "POST" {
				body = map[string]any{}
			}
			r := s.Do(t, c.method, c.path, body, Bearer(a.Access)...)
			if p := envelopeProblem(r); p != "" {
				t.Fatalf("%s %s: %s", c.method, c.path, p)
			}
			if r.Status != http.StatusNotFound && r.Status != http.StatusBadRequest {
				t.Fatalf("%s %s: %d, want 404 (or 400 for bad UTF-8)", c.method, c.path, r.Status)
			}
		}
	}
	// Malformed JSON and unknown fields in the create body: 400.
	for _, body := range []string{"{", `{"conversation_id": 5}`, `[1]`} {
		r := s.Do(t, "POST", sharesPath(conv), body, Bearer(a.Access)...)
		if p := envelopeProblem(r); p != "" || r.Status != http.StatusBadRequest {
			t.Fatalf("body %s: %d %s", body, r.Status, r.Body)
		}
	}
	// An empty conversation cannot be shared: 412.
	empty := Str(createConversation(t, s, a, nil), "id")
	r := s.Do(t, "POST", sharesPath(empty), map[string]any{}, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusPreconditionFailed, "FAILED_PRECONDITION")

	// Nothing of the above changed the shares.
	if n := len(items(getOK(t, s, a, sharesPath(conv)), "shares")); n != 1 {
		t.Fatalf("%d shares, want 1", n)
	}
	mustStatus(t, viewShare(t, s, token), http.StatusOK, "view after malformed input")
}

func TestSharesCapPerConversation(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createConversation(t, s, a, nil), "id")
	createMessage(t, s, a, conv, "user", "hello")
	const max = 20
	var first string
	for i := 0; i < max; i++ {
		sh := createShare(t, s, a, conv)
		if i == 0 {
			first = Str(sh, "id")
		}
	}
	r := s.Do(t, "POST", sharesPath(conv), map[string]any{}, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusPreconditionFailed, "FAILED_PRECONDITION")
	expectNoContent(t, s.Do(t, "DELETE", sharesPath(conv)+"/"+first, nil, Bearer(a.Access)...), "revoke one")
	createShare(t, s, a, conv)
}

// 32 parallel calls mixing views of live shares, unknown and malformed
// tokens, creates and listings: each gets its right answer, and the
// service keeps serving.
func TestSharesParallelMix(t *testing.T) {
	s := SharedStack(t)
	a, b := s.NewAccount(t), s.NewAccount(t)
	conv := Str(createConversation(t, s, a, nil), "id")
	createMessage(t, s, a, conv, "user", "hello")
	share := createShare(t, s, a, conv)
	token := Str(share, "token")
	convB := Str(createConversation(t, s, b, nil), "id")
	createMessage(t, s, b, convB, "user", "hi")

	var fails failures
	var created atomic.Int32
	parallel(96, 32, func(i int) {
		var r Response
		var err error
		want := http.StatusOK
		switch i % 6 {
		case 0, 1:
			r, err = s.Try("GET", "/v1/shares/"+token, nil)
		case 2:
			r, err = s.Try("GET", "/v1/shares/"+strings.Repeat("A", 42)+"E", nil)
			want = http.StatusNotFound
		case 3:
			r, err = s.Try("GET", "/v1/shares/%FF%FE"+token[:41], nil)
			want = http.StatusBadRequest
		case 4:
			r, err = s.Try("POST", sharesPath(convB), map[string]any{}, Bearer(b.Access)...)
			want = http.StatusCreated
		case 5:
			r, err = s.Try("POST", sharesPath(convB), map[string]any{}, Bearer(a.Access)...)
			want = http.StatusNotFound
		}
		if err != nil {
			fails.add("call %d: %v", i, err)
			return
		}
		if r.Status == http.StatusPreconditionFailed && i%6 == 4 {
			return // the per-conversation cap: 16 creates, 20 allowed
		}
		if r.Status != want {
			fails.add("call %d: %d, want %d: %.200s", i, r.Status, want, r.Body)
		}
		if r.Status == http.StatusCreated {
			created.Add(1)
		}
		if r.Status >= 400 {
			if p := envelopeProblem(r); p != "" {
				fails.add("call %d: %s", i, p)
			}
		}
	})
	fails.report(t, "parallel share calls")
	if got := len(items(getOK(t, s, b, sharesPath(convB)), "shares")); got != int(created.Load()) {
		t.Fatalf("%d shares listed, %d created", got, created.Load())
	}
	if got := sharedContents(t, viewShare(t, s, token)); !sameJSON(got, []string{"hello"}) {
		t.Fatalf("after the load: %q", got)
	}
	expectAllAlive(t, s)
}

// PUBLIC_BASE_URL of the message service goes before a share's path; the
// view is reached by that path on the gateway all the same.
func TestSharesPublicBaseURL(t *testing.T) {
	s := startRobustStack(t, map[string][]string{"message": {"PUBLIC_BASE_URL=https://chat.example.com/"}})
	a := s.NewAccount(t)
	conv := Str(createConversation(t, s, a, nil), "id")
	createMessage(t, s, a, conv, "user", "hello")
	r := s.Do(t, "POST", sharesPath(conv), map[string]any{}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusCreated, "create share")
	token := Str(r.JSON, "token")
	if got, want := Str(r.JSON, "url"), "https://chat.example.com/v1/shares/"+token; got != want {
		t.Fatalf("url %q, want %q", got, want)
	}
	path := strings.TrimPrefix(Str(r.JSON, "url"), "https://chat.example.com")
	if got := sharedContents(t, viewShare(t, s, strings.TrimPrefix(path, "/v1/shares/"))); !sameJSON(got, []string{"hello"}) {
		t.Fatalf("shared messages %q", got)
	}
}

// A PUBLIC_BASE_URL that is not an http(s) URL stops the message service
// before it serves, with the reason in its log.
func TestSharesBadPublicBaseURLStopsTheService(t *testing.T) {
	for _, bad := range []string{"chat.example.com", "ftp://chat.example.com", "https://chat.example.com/?x=1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, filepath.Join(buildDir(), "services/message/chat-message"))
		cmd.Env = append(os.Environ(), "PUBLIC_BASE_URL="+bad, "GRPC_LISTEN=127.0.0.1:0",
			"DATABASE_URL=postgresql://nobody@127.0.0.1:1/none")
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Fatalf("PUBLIC_BASE_URL=%q: err %v (timed out: %v), want a failed start; output %s", bad, err, timedOut, out)
		}
		if !strings.Contains(string(out), "bad --public_base_url") {
			t.Fatalf("PUBLIC_BASE_URL=%q: output %s", bad, out)
		}
	}
}
