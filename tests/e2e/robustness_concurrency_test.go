package e2e

// SPEC "Robustness": any mix of successful and failing calls, at any
// parallelism, leaves every service serving, and no database connection is
// left inside a transaction.

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// mixUser is one user of the mix with the data its calls touch.
type mixUser struct {
	Account
	conv, patched, msg string // a conversation with messages, one to rename, a message of conv
	idemKey, idemBody  string // a key already used for a message create with idemBody
	idemID             string // the message that key created
}

// mixOp is one call of the mix and the statuses it may answer.
type mixOp struct {
	name string
	want []int
	do   func(s *Stack, u *mixUser, n int) (Response, error)
}

func setupMixUser(t *testing.T, s *Stack) *mixUser {
	t.Helper()
	u := &mixUser{Account: s.NewAccount(t)}
	u.conv = Str(createTitled(t, s, u.Account, "mix"), "id")
	u.patched = Str(createTitled(t, s, u.Account, "to rename"), "id")
	u.msg = Str(createMessage(t, s, u.Account, u.conv, "user", "first"), "id")
	createMessage(t, s, u.Account, u.conv, "assistant", "second")
	u.idemKey, u.idemBody = randomKey(), "idempotent body"
	r := s.Do(t, "POST", "/v1/conversations/"+u.conv+"/messages",
		map[string]any{"role": "user", "content": u.idemBody}, append(Bearer(u.Access), "Idempotency-Key", u.idemKey)...)
	mustStatus(t, r, http.StatusCreated, "create with an idempotency key")
	u.idemID = Str(r.JSON, "id")
	return u
}

func mixOps() []mixOp {
	auth := func(u *mixUser) []string { return Bearer(u.Access) }
	bad := []string{"Authorization", "Bearer not.a.token"}
	get := func(path func(u *mixUser) string) func(*Stack, *mixUser, int) (Response, error) {
		return func(s *Stack, u *mixUser, _ int) (Response, error) { return s.Quick("GET", path(u), nil, auth(u)...) }
	}
	return []mixOp{
		{"GET missing conversation", []int{404}, get(func(u *mixUser) string { return "/v1/conversations/" + randomUUIDv7() })},
		{"list conversations", []int{200}, get(func(u *mixUser) string { return "/v1/conversations?page_size=5" })},
		{"GET missing message", []int{404}, get(func(u *mixUser) string { return "/v1/conversations/" + u.conv + "/messages/" + randomUUIDv7() })},
		{"list messages", []int{200}, get(func(u *mixUser) string { return "/v1/conversations/" + u.conv + "/messages?page_size=5" })},
		{"list messages of a missing conversation", []int{404}, get(func(u *mixUser) string { return "/v1/conversations/" + randomUUIDv7() + "/messages" })},
		{"create conversation", []int{201}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/conversations", map[string]any{"title": fmt.Sprintf("mix %d", n)}, auth(u)...)
		}},
		{"GET message of a missing conversation", []int{404}, get(func(u *mixUser) string {
			return "/v1/conversations/" + randomUUIDv7() + "/messages/" + u.msg
		})},
		{"append message", []int{201}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/conversations/"+u.conv+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("m%d", n)}, auth(u)...)
		}},
		{"idempotency key reused with another body", []int{409}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/conversations/"+u.conv+"/messages", map[string]any{"role": "user", "content": fmt.Sprintf("other %d", n)},
				append(auth(u), "Idempotency-Key", u.idemKey)...)
		}},
		{"GET conversation", []int{200}, get(func(u *mixUser) string { return "/v1/conversations/" + u.conv })},
		{"idempotency key replayed", []int{201, 200}, func(s *Stack, u *mixUser, n int) (Response, error) {
			r, err := s.Quick("POST", "/v1/conversations/"+u.conv+"/messages", map[string]any{"role": "user", "content": u.idemBody},
				append(auth(u), "Idempotency-Key", u.idemKey)...)
			if err == nil && r.Status < 300 && Str(r.JSON, "id") != u.idemID {
				return r, fmt.Errorf("replay created message %s, not the first result %s", Str(r.JSON, "id"), u.idemID)
			}
			return r, err
		}},
		{"duplicate register", []int{409}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/auth/register", map[string]any{"username": u.Username,
				"email": fmt.Sprintf("dup%d_%s", n, u.Email), "password": "Passw0rd!"})
		}},
		{"GET missing conversation (again)", []int{404}, get(func(u *mixUser) string { return "/v1/conversations/" + randomUUIDv7() })},
		{"title too long", []int{400}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/conversations", map[string]any{"title": strings.Repeat("t", 300)}, auth(u)...)
		}},
		{"bad role", []int{400}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/conversations/"+u.conv+"/messages", map[string]any{"role": "robot", "content": "x"}, auth(u)...)
		}},
		{"list conversations, bad token", []int{401}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("GET", "/v1/conversations", nil, bad...)
		}},
		{"list messages, bad token", []int{401}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("GET", "/v1/conversations/"+u.conv+"/messages", nil, bad...)
		}},
		{"profile, bad token", []int{401}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("GET", "/v1/auth/profile", nil, bad...)
		}},
		{"rename conversation", []int{200}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("PATCH", "/v1/conversations/"+u.patched, map[string]any{"title": fmt.Sprintf("renamed %d", n)}, auth(u)...)
		}},
		{"rename missing conversation", []int{404}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("PATCH", "/v1/conversations/"+randomUUIDv7(), map[string]any{"title": "x"}, auth(u)...)
		}},
		{"delete missing conversation", []int{404}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("DELETE", "/v1/conversations/"+randomUUIDv7(), nil, auth(u)...)
		}},
		{"delete missing message", []int{404}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("DELETE", "/v1/conversations/"+u.conv+"/messages/"+randomUUIDv7(), nil, auth(u)...)
		}},
		{"profile", []int{200}, get(func(u *mixUser) string { return "/v1/auth/profile" })},
		{"edit message", []int{200}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("PATCH", "/v1/conversations/"+u.conv+"/messages/"+u.msg, map[string]any{"content": fmt.Sprintf("edit %d", n)}, auth(u)...)
		}},
		{"GET message", []int{200}, get(func(u *mixUser) string { return "/v1/conversations/" + u.conv + "/messages/" + u.msg })},
		{"edit missing message", []int{404}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("PATCH", "/v1/conversations/"+u.conv+"/messages/"+randomUUIDv7(), map[string]any{"content": "x"}, auth(u)...)
		}},
		{"append to missing conversation", []int{404}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/conversations/"+randomUUIDv7()+"/messages", map[string]any{"role": "user", "content": "x"}, auth(u)...)
		}},
		{"create then delete conversation", []int{204}, func(s *Stack, u *mixUser, n int) (Response, error) {
			r, err := s.Quick("POST", "/v1/conversations", map[string]any{"title": "short-lived"}, auth(u)...)
			if err != nil || r.Status != http.StatusCreated {
				return r, err
			}
			return s.Quick("DELETE", "/v1/conversations/"+Str(r.JSON, "id"), nil, auth(u)...)
		}},
		{"refresh with a garbage token", []int{401}, func(s *Stack, u *mixUser, n int) (Response, error) {
			return s.Quick("POST", "/v1/auth/refresh", map[string]any{"refresh_token": "garbage-refresh-token"})
		}},
		{"GET missing message (again)", []int{404}, get(func(u *mixUser) string { return "/v1/conversations/" + u.conv + "/messages/" + randomUUIDv7() })},
	}
}

// runMix runs width goroutines of rounds calls each, picking the users in
// turn; every answer must be one of its call's statuses.
func runMix(t *testing.T, s *Stack, users []*mixUser, width, rounds int, what string) {
	t.Helper()
	ops := mixOps()
	var fails failures
	var counter, skipped atomic.Int64
	deadline := time.Now().Add(15 * time.Second)
	start := time.Now()
	parallel(width, width, func(g int) {
		u := users[g%len(users)]
		for k := 0; k < rounds; k++ {
			if time.Now().After(deadline) {
				skipped.Add(int64(rounds - k))
				return
			}
			op := ops[(g+k*7)%len(ops)]
			n := int(counter.Add(1))
			r, err := op.do(s, u, n)
			if err != nil {
				fails.add("%s (worker %d, %.1fs in): %v", op.name, g, time.Since(start).Seconds(), err)
				continue
			}
			ok := false
			for _, w := range op.want {
				ok = ok || r.Status == w
			}
			if !ok {
				fails.add("%s (worker %d, %.1fs in): status %d, want %v; body %.200s", op.name, g, time.Since(start).Seconds(), r.Status, op.want, r.Body)
			}
		}
	})
	t.Logf("%s: %d calls in %v", what, counter.Load(), time.Since(start).Round(time.Millisecond))
	fails.report(t, what)
	if skipped.Load() > 0 {
		t.Errorf("%s: %d calls not made: the mix did not end within 15 s (a wedged service?)", what, skipped.Load())
	}
}

// expectServing checks that every service still answers every call type.
func expectServing(t *testing.T, s *Stack, u *mixUser) {
	t.Helper()
	expectAllAlive(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := s.Quick("GET", "/readyz", nil)
		if err == nil && r.Status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("/readyz after the mix: %d %v %.300s", r.Status, err, r.Body)
			expectNoIdleInTransaction(t, s)
			t.Errorf("the calls of each type were not tried: the stack is not ready")
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	type check struct {
		name, method, path string
		body               any
		want               int
	}
	checks := []check{
		{"login", "POST", "/v1/auth/login", map[string]any{"login": u.Username, "password": u.Password}, 200},
		{"profile", "GET", "/v1/auth/profile", nil, 200},
		{"list conversations", "GET", "/v1/conversations", nil, 200},
		{"create conversation", "POST", "/v1/conversations", map[string]any{"title": "after"}, 201},
		{"get conversation", "GET", "/v1/conversations/" + u.conv, nil, 200},
		{"rename conversation", "PATCH", "/v1/conversations/" + u.patched, map[string]any{"title": "after"}, 200},
		{"list messages", "GET", "/v1/conversations/" + u.conv + "/messages", nil, 200},
		{"append message", "POST", "/v1/conversations/" + u.conv + "/messages", map[string]any{"role": "user", "content": "after"}, 201},
		{"get message", "GET", "/v1/conversations/" + u.conv + "/messages/" + u.msg, nil, 200},
		{"missing conversation", "GET", "/v1/conversations/" + randomUUIDv7(), nil, 404},
		{"missing message", "GET", "/v1/conversations/" + u.conv + "/messages/" + randomUUIDv7(), nil, 404},
	}
	for _, c := range checks {
		r, err := s.Quick(c.method, c.path, c.body, Bearer(u.Access)...)
		if err != nil || r.Status != c.want {
			t.Errorf("after the mix, %s: status %d (%v), want %d; body %.300s", c.name, r.Status, err, c.want, r.Body)
		}
	}
	expectNoIdleInTransaction(t, s)
}

func TestRobustParallelMixOfGoodAndFailingCallsLeavesEveryServiceServing(t *testing.T) {
	s := startRobustStack(t, nil)
	users := make([]*mixUser, 4)
	for i := range users {
		users[i] = setupMixUser(t, s)
	}
	// Once a phase breaks the stack, the later ones could only time out.
	if !t.Run("one user, 64 parallel", func(t *testing.T) {
		runMix(t, s, users[:1], 64, 8, "64-way mix of one user")
		expectServing(t, s, users[0])
	}) {
		t.Fatal("later phases skipped: the stack is broken")
	}
	if !t.Run("four users, 64 parallel", func(t *testing.T) {
		runMix(t, s, users, 64, 8, "64-way mix of four users")
		for _, u := range users {
			expectServing(t, s, u)
		}
	}) {
		t.Fatal("later phases skipped: the stack is broken")
	}
	if !t.Run("missing ids and lists only, 64 parallel", func(t *testing.T) {
		// The mix that once crashed chat-message and wedged
		// chat-conversation within a second.
		var fails failures
		deadline := time.Now().Add(15 * time.Second)
		parallel(64, 64, func(g int) {
			u := users[g%len(users)]
			for k := 0; k < 10 && time.Now().Before(deadline); k++ {
				var path string
				want := http.StatusNotFound
				switch (g + k) % 4 {
				case 0:
					path = "/v1/conversations/" + randomUUIDv7()
				case 1:
					path = "/v1/conversations/" + u.conv + "/messages/" + randomUUIDv7()
				case 2:
					path, want = "/v1/conversations", http.StatusOK
				case 3:
					path, want = "/v1/conversations/"+u.conv+"/messages", http.StatusOK
				}
				r, err := s.Quick("GET", path, nil, Bearer(u.Access)...)
				if err != nil || r.Status != want {
					fails.add("GET %s: status %d (%v), want %d; body %.200s", path, r.Status, err, want, r.Body)
				}
			}
		})
		fails.report(t, "64 parallel GETs of missing ids mixed with lists")
		for _, u := range users {
			expectServing(t, s, u)
		}
	}) {
		t.FailNow()
	}
	// Counts stay exact whatever ran in parallel.
	for _, u := range users {
		listed := len(allMessages(t, s, u.Account, u.conv, nil))
		if got := countOf(conversation(t, s, u.Account, u.conv)["message_count"]); got != int64(listed) {
			t.Errorf("user %s: message_count %d, but %d messages listed", u.Username, got, listed)
		}
	}
}
