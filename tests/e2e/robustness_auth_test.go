package e2e

// SPEC "Robustness": security controls hold under concurrency, tokens of the
// external issuer never act as a local account, a deleted account's tokens
// stop at once, and the gateway limits auth calls per client.

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestRobustParallelWrongPasswordsAreCountedNoMoreThanTenFailures(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	const n = 40
	responses := make([]Response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			responses[i], errs[i] = s.Call("POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": "Wr0ngpass" + strconv.Itoa(i)})
		}()
	}
	close(start)
	wg.Wait()
	counts := map[int]int{}
	for i, r := range responses {
		if errs[i] != nil {
			t.Fatalf("login %d: %v", i, errs[i])
		}
		counts[r.Status]++
		switch r.Status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			if p := envelopeProblem(r); p != "" || Str(r.JSON, "error", "code") != "RESOURCE_EXHAUSTED" {
				t.Errorf("429 %d: not a RESOURCE_EXHAUSTED envelope: %s %s", i, p, r.Body)
			}
			if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs <= 0 {
				t.Errorf("429 %d: Retry-After %q, want a positive number of seconds", i, r.Header.Get("Retry-After"))
			}
		default:
			t.Errorf("login %d: status %d, want 401 or 429; body %.200s", i, r.Status, r.Body)
		}
	}
	if counts[http.StatusUnauthorized] > 10 {
		t.Errorf("%d of %d parallel wrong passwords were evaluated (401), want at most 10 (the rest 429); statuses %v",
			counts[http.StatusUnauthorized], n, counts)
	}
	r, err := s.Call("POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": a.Password})
	if err != nil || r.Status != http.StatusTooManyRequests {
		t.Errorf("the right password after %d parallel failures: status %d (%v), want 429 until the window passes; body %.200s",
			n, r.Status, err, r.Body)
	}
}

// refreshTwins presents one refresh token n times in parallel and returns
// the pairs of the answers that were 200; every answer must be 200 or 401.
func refreshTwins(t *testing.T, s *Stack, token string, n int) (access, refresh []string) {
	t.Helper()
	responses := make([]Response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			responses[i], errs[i] = s.Call("POST", "/v1/auth/refresh", map[string]string{"refresh_token": token})
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range responses {
		switch {
		case errs[i] != nil:
			t.Fatalf("refresh %d: %v", i, errs[i])
		case r.Status == http.StatusOK:
			access = append(access, Str(r.JSON, "tokens", "access_token"))
			refresh = append(refresh, Str(r.JSON, "tokens", "refresh_token"))
		case r.Status == http.StatusUnauthorized:
		default:
			t.Errorf("parallel refresh %d: status %d, want 200 or 401; body %.200s", i, r.Status, r.Body)
		}
	}
	if len(refresh) == 0 {
		t.Fatalf("none of %d parallel refreshes of a fresh token answered 200", n)
	}
	return access, refresh
}

func expectRefreshRefused(t *testing.T, s *Stack, token, what string) {
	t.Helper()
	r, err := s.Call("POST", "/v1/auth/refresh", map[string]string{"refresh_token": token})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.Status != http.StatusUnauthorized {
		t.Errorf("%s: refresh answered %d, want 401 (a live token survived); body %.200s", what, r.Status, r.Body)
	}
}

func TestRobustRefreshReplayedInParallelLeavesNoTokenAliveAfterLogout(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	_, twins := refreshTwins(t, s, a.Refresh, 8)
	t.Logf("%d of 8 parallel refreshes answered 200", len(twins))
	r, err := s.Call("POST", "/v1/auth/logout", map[string]string{"refresh_token": twins[0]})
	if err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("logout with a twin: %d %v %.200s", r.Status, err, r.Body)
	}
	for i, token := range twins[1:] {
		expectRefreshRefused(t, s, token, "twin "+strconv.Itoa(i+1)+" after logout with twin 0")
	}
	// The replayed token itself is still inside its 10 s grace: a replay now
	// must not mint a pair of a revoked family.
	expectRefreshRefused(t, s, a.Refresh, "the replayed token after logout (inside the grace window)")
}

func TestRobustRefreshReplayedInParallelLeavesNoTokenAliveAfterPasswordChange(t *testing.T) {
	s := SharedStack(t)
	// Which twin keeps the original session (the refresh that rotated the
	// token rather than replaying it) depends on the race; the change is
	// made from each twin in turn, on an account of its own, so that the
	// original session's turn is always among them.
	for k := 0; k < 8; k++ {
		a := s.NewAccount(t)
		access, twins := refreshTwins(t, s, a.Refresh, 8)
		if k >= len(access) {
			continue
		}
		r, err := s.Call("PATCH", "/v1/auth/profile", map[string]string{"new_password": "N3wPassword", "current_password": a.Password},
			Bearer(access[k])...)
		if err != nil || r.Status != http.StatusOK {
			t.Fatalf("password change with twin %d's access token: %d %v %.200s", k, r.Status, err, r.Body)
		}
		for i, token := range twins {
			if i != k {
				expectRefreshRefused(t, s, token, "twin "+strconv.Itoa(i)+" after a password change by twin "+strconv.Itoa(k))
			}
		}
		expectRefreshRefused(t, s, a.Refresh, "the replayed token after a password change by twin "+strconv.Itoa(k)+" (inside the grace window)")
	}
}

func TestRobustDeletedAccountTokenIsRefusedEverywhereAtOnce(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "doomed"), "id")
	msg := Str(createMessage(t, s, a, conv, "user", "doomed"), "id")
	// Warm every route with the token first, so a cache of verified tokens
	// would hold it.
	for _, path := range []string{"/v1/auth/profile", "/v1/conversations", "/v1/conversations/" + conv, "/v1/conversations/" + conv + "/messages"} {
		getOK(t, s, a, path)
	}
	r := s.Do(t, "DELETE", "/v1/auth/profile", map[string]string{"current_password": a.Password}, Bearer(a.Access)...)
	mustStatus(t, r, http.StatusNoContent, "delete account")
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/auth/profile", nil},
		{"PATCH", "/v1/auth/profile", map[string]any{"username": "ghost_" + a.Username[2:], "current_password": a.Password}},
		{"DELETE", "/v1/auth/profile", map[string]any{"current_password": a.Password}},
		{"GET", "/v1/conversations", nil},
		{"GET", "/v1/conversations?archived=true", nil},
		{"POST", "/v1/conversations", map[string]any{"title": "ghost"}},
		{"DELETE", "/v1/conversations", nil},
		{"GET", "/v1/conversations/" + conv, nil},
		{"PATCH", "/v1/conversations/" + conv, map[string]any{"title": "ghost"}},
		{"DELETE", "/v1/conversations/" + conv, nil},
		{"GET", "/v1/conversations/" + conv + "/messages", nil},
		{"POST", "/v1/conversations/" + conv + "/messages", map[string]any{"role": "user", "content": "ghost"}},
		{"DELETE", "/v1/conversations/" + conv + "/messages", nil},
		{"GET", "/v1/conversations/" + conv + "/messages/" + msg, nil},
		{"PATCH", "/v1/conversations/" + conv + "/messages/" + msg, map[string]any{"content": "ghost"}},
		{"DELETE", "/v1/conversations/" + conv + "/messages/" + msg, nil},
		{"POST", "/v1/conversations/" + conv + "/chat", map[string]any{"content": "ghost"}},
	}
	for _, rt := range routes {
		r, err := s.Call(rt.method, rt.path, rt.body, Bearer(a.Access)...)
		if err != nil {
			t.Errorf("%s %s: %v", rt.method, rt.path, err)
			continue
		}
		if r.Status != http.StatusUnauthorized || Str(r.JSON, "error", "code") != "UNAUTHENTICATED" {
			t.Errorf("%s %s with a deleted account's access token: status %d, want 401 UNAUTHENTICATED; body %.200s",
				rt.method, rt.path, r.Status, r.Body)
		}
	}
	if out := sqlOne(t, s, "SELECT count(*) FROM users WHERE id = '"+a.ID+"'"); out != "0" {
		t.Errorf("the deleted user's row is back (%s rows): a call recreated it", out)
	}
}

func TestRobustExternalTokenNeverActsAsALocalAccount(t *testing.T) {
	s, _ := ChatStack(t)
	local := s.NewAccount(t)
	conv := Str(createTitled(t, s, local, "local only"), "id")
	token := externalToken(local.ID, "attacker@example.com", externalSecret)
	for _, path := range []string{"/v1/conversations", "/v1/conversations/" + conv, "/v1/conversations/" + conv + "/messages"} {
		r, err := s.Call("GET", path, nil, Bearer(token)...)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusUnauthorized {
			t.Errorf("GET %s with an external token whose sub is a local user's id: status %d, want 401; body %.300s",
				path, r.Status, r.Body)
		}
	}
	r, _ := s.Call("POST", "/v1/conversations", map[string]any{"title": "planted"}, Bearer(token)...)
	if r.Status != http.StatusUnauthorized {
		t.Errorf("POST /v1/conversations with an external token whose sub is a local user's id: status %d, want 401", r.Status)
	}
	if got := len(allConversations(t, s, local, nil)); got != 1 {
		t.Errorf("the local user now has %d conversations, want 1 (another issuer's token wrote into the account)", got)
	}
}

// An email claim that is not a valid address (docs/api.md "External identity
// provider") is never stored: it could pass for a local username at login.
// The user is still served (the provider vouches for the sub, not the
// email), with the placeholder address <sub>@external.invalid.
func TestRobustExternalTokenWithAnInvalidEmailIsNotStored(t *testing.T) {
	s, _ := ChatStack(t)
	for _, email := range []string{"not-an-email", "a@b@c", "x@" + strings.Repeat("e", 260) + ".com", "bad\u0000@example.com", "alice"} {
		sub := newUUID()
		r, err := s.Call("GET", "/v1/conversations", nil, Bearer(externalToken(sub, email, externalSecret))...)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK {
			t.Errorf("external token whose email claim %.40q is not a valid address: status %d, want 200 with a placeholder address; body %.200s",
				email, r.Status, r.Body)
		}
		if out := sqlOne(t, s, "SELECT count(*) FROM users WHERE email = '"+strings.ReplaceAll(strings.ReplaceAll(email, "'", "''"), "\x00", "")+"'"); out != "0" {
			t.Errorf("external token with email %.40q: the invalid address was stored as a user's email", email)
		}
		if out := sqlOne(t, s, "SELECT email FROM users WHERE id = '"+sub+"'"); out != sub+"@external.invalid" {
			t.Errorf("external token with email %.40q: the profile row's email is %q, want the placeholder", email, out)
		}
	}
}

func TestRobustGatewayLimitsAuthCallsPerClient(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	// One token a minute after a burst of 3: nothing refills during the test.
	calls := []struct {
		name string
		path string
		body any
	}{
		{"register", "/v1/auth/register", map[string]any{"username": "x", "email": "bad", "password": "short"}},
		{"login", "/v1/auth/login", map[string]any{"login": "nobody_" + a.Username, "password": "Wr0ngpass"}},
		{"refresh", "/v1/auth/refresh", map[string]any{"refresh_token": "not-a-refresh-token"}},
	}
	// Each auth call type: a burst of 3 from one client, then a 4th that must
	// be 429 (whether the client has one bucket or one per call type).
	exhaust := func(t *testing.T, g *Stack, what string, spend, last []string) {
		t.Helper()
		for _, c := range calls {
			for i := 0; i < 3; i++ {
				if _, err := g.Call("POST", c.path, c.body, spend...); err != nil {
					t.Fatal(err)
				}
			}
			r, err := g.Call("POST", c.path, c.body, last...)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusTooManyRequests || Str(r.JSON, "error", "code") != "RESOURCE_EXHAUSTED" {
				t.Errorf("%s, %s: the 4th call past a burst of 3: status %d, want 429 RESOURCE_EXHAUSTED; body %.200s", what, c.name, r.Status, r.Body)
			} else if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs <= 0 {
				t.Errorf("%s, %s: 429 with Retry-After %q, want a positive number of seconds", what, c.name, r.Header.Get("Retry-After"))
			}
		}
	}

	t.Run("by connection address", func(t *testing.T) {
		g := s.StartGateway(t, "AUTH_RATE_LIMIT=1", "AUTH_RATE_BURST=3")
		// Without TRUSTED_PROXY_HEADER a forwarded address changes nothing.
		exhaust(t, g, "127.0.0.1 with a spoofed X-Forwarded-For",
			[]string{"X-Forwarded-For", "192.0.2.1"}, []string{"X-Forwarded-For", "192.0.2.2"})
		// Authenticated routes are not auth calls.
		if r, _ := g.Call("GET", "/v1/auth/profile", nil, Bearer(a.Access)...); r.Status != http.StatusOK {
			t.Errorf("profile through the limited gateway: %d, want 200 (only register/login/refresh are limited)", r.Status)
		}
	})
	t.Run("by trusted forwarded address", func(t *testing.T) {
		g := s.StartGateway(t, "AUTH_RATE_LIMIT=1", "AUTH_RATE_BURST=3", "TRUSTED_PROXY_HEADER=X-Forwarded-For")
		// The right-most entry is the one the proxy saw; what the client
		// put in front of it does not matter.
		exhaust(t, g, "client 198.51.100.7 (the 4th call behind a forged left entry)",
			[]string{"X-Forwarded-For", "198.51.100.7"}, []string{"X-Forwarded-For", "203.0.113.9, 198.51.100.7"})
		r, err := g.Call("POST", "/v1/auth/login", map[string]any{"login": a.Username, "password": a.Password}, "X-Forwarded-For", "198.51.100.8")
		if err != nil || r.Status != http.StatusOK {
			t.Errorf("another forwarded client (198.51.100.8): status %d (%v), want 200: clients are limited separately; body %.200s",
				r.Status, err, r.Body)
		}
	})
}
