package e2e

// SPEC "Robustness" and "Health and operations": a database restart under
// load loses no acknowledged write and the services come back by
// themselves; SIGTERM finishes the calls under way; slow requests are cut
// off; each database role can do only what its service does.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRobustDatabaseRestartDuringParallelAppendsLosesNoAcknowledgedMessage(t *testing.T) {
	dir, port, pgURL := ownPostgres(t)
	s, err := StartStackOn(pgURL, nil)
	if err != nil {
		t.Fatalf("a stack on the test's own PostgreSQL: %v", err)
	}
	t.Cleanup(func() { stopFast(s) }) // before the cluster's own cleanup (LIFO)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "restart"), "id")

	var (
		mu        sync.Mutex
		acked     = map[string]string{} // content -> id
		statuses  = map[string]int{}
		stop      atomic.Bool
		restarted atomic.Int64 // unix nanos of the restart, 0 before
		firstOK   atomic.Int64 // unix nanos of the first 201 after the restart
		ackCount  atomic.Int64
		failCount atomic.Int64
	)
	const workers = 4
	var wg sync.WaitGroup
	hardStop := time.Now().Add(60 * time.Second)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000 && !stop.Load() && time.Now().Before(hardStop); i++ {
				content := fmt.Sprintf("w%d-%d", w, i)
				r, err := s.Call("POST", "/v1/conversations/"+conv+"/messages",
					map[string]any{"role": "user", "content": content}, Bearer(a.Access)...)
				mu.Lock()
				if err != nil {
					statuses["transport error"]++
				} else {
					statuses[fmt.Sprint(r.Status)]++
				}
				if err == nil && r.Status == http.StatusCreated {
					acked[content] = Str(r.JSON, "id")
					ackCount.Add(1)
					if at := restarted.Load(); at != 0 {
						firstOK.CompareAndSwap(0, time.Now().UnixNano())
					}
				}
				mu.Unlock()
				if err != nil || r.Status >= 500 {
					failCount.Add(1)
					time.Sleep(20 * time.Millisecond) // no busy loop against a down database
				}
			}
		}()
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) bool {
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Errorf("%s: not within %v", what, limit)
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
		return true
	}
	waitFor("20 appends before the crash", 20*time.Second, func() bool { return ackCount.Load() >= 20 })
	if out, err := pgCtl(dir, "stop", "-m", "immediate", "-w", "-t", "30"); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("pg_ctl stop -m immediate: %v %s", err, out)
	}
	down := ackCount.Load()
	// Appends meet the dead database before it comes back.
	failedBefore := failCount.Load()
	waitFor("appends to meet the stopped database", 10*time.Second, func() bool { return failCount.Load() >= failedBefore+8 })
	script, _ := filepath.Abs("../../scripts/postgres.sh")
	if out, err := runCommand(script, "start", dir, port); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("restarting PostgreSQL: %v %s", err, out)
	}
	restarted.Store(time.Now().UnixNano())
	recovered := waitFor("an append to succeed after PostgreSQL restarted", 10*time.Second, func() bool { return firstOK.Load() != 0 })
	if recovered {
		t.Logf("first append acknowledged %v after the restart", time.Duration(firstOK.Load()-restarted.Load()).Round(time.Millisecond))
		target := ackCount.Load() + 20
		waitFor("20 more appends after the recovery", 20*time.Second, func() bool { return ackCount.Load() >= target })
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("answers: %v (%d acknowledged before the crash)", statuses, down)
	expectAllAlive(t, s)

	listed := allMessages(t, s, a, conv, nil)
	seen := map[string]int{}
	byID := map[string]string{}
	for _, m := range listed {
		seen[Str(m, "content")]++
		byID[Str(m, "id")] = Str(m, "content")
	}
	mu.Lock()
	defer mu.Unlock()
	for content, id := range acked {
		if seen[content] != 1 {
			t.Errorf("acknowledged message %q (id %s) is listed %d times, want exactly once", content, id, seen[content])
		} else if byID[id] != content {
			t.Errorf("acknowledged message %q: its id %s lists content %q", content, id, byID[id])
		}
	}
	for content, n := range seen {
		if n > 1 {
			t.Errorf("message %q is stored %d times", content, n)
		}
	}
	if got := countOf(conversation(t, s, a, conv)["message_count"]); got != int64(len(listed)) {
		t.Errorf("message_count %d, but %d messages are listed", got, len(listed))
	}
	if n := sqlOne(t, s, "SELECT count(*) FROM messages WHERE conversation_id = '"+conv+"'"); n != fmt.Sprint(len(listed)) {
		t.Errorf("%s message rows in the database, %d listed", n, len(listed))
	}
	expectNoIdleInTransaction(t, s)
}

func runCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// sigtermLoad is the calls a service serves while it gets SIGTERM.
type sigtermCall struct {
	start, end time.Time
	status     int
	err        error // transport
	bad        string
	what       string
}

func TestRobustSigtermFinishesEveryCallStartedBeforeIt(t *testing.T) {
	s := startRobustStack(t, nil)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "sigterm"), "id")
	createMessage(t, s, a, conv, "user", "hello")
	// Slow calls, so that some are under way inside the service when the
	// signal arrives: pages of 4 MiB of messages, pages of 100 conversations
	// with full metadata (and logins, slow by design).
	bigConv := Str(createTitled(t, s, a, "big"), "id")
	big := strings.Repeat("😀", 100000)
	metadata := map[string]string{}
	for k := 0; k < 16; k++ {
		metadata[fmt.Sprintf("key%02d", k)] = strings.Repeat("v", 512)
	}
	var setup failures
	parallel(112, 4, func(i int) {
		var r Response
		var err error
		if i < 12 {
			r, err = s.Call("POST", "/v1/conversations/"+bigConv+"/messages", map[string]any{"role": "user", "content": big}, Bearer(a.Access)...)
		} else {
			r, err = s.Call("POST", "/v1/conversations", map[string]any{"title": strings.Repeat("t", 255), "metadata": metadata}, Bearer(a.Access)...)
		}
		if err != nil || r.Status != http.StatusCreated {
			setup.add("setup create %d: %d %v %.200s", i, r.Status, err, r.Body)
		}
	})
	setup.report(t, "setup")
	if t.Failed() {
		t.FailNow()
	}
	type load struct {
		what string
		want int
		do   func(n int) (Response, error)
	}
	loads := map[string][]load{
		"auth": {
			{"profile", 200, func(int) (Response, error) { return s.Call("GET", "/v1/auth/profile", nil, Bearer(a.Access)...) }},
			{"login", 200, func(int) (Response, error) {
				return s.Call("POST", "/v1/auth/login", map[string]any{"login": a.Username, "password": a.Password})
			}},
		},
		"conversation": {
			{"list conversations", 200, func(int) (Response, error) { return s.Call("GET", "/v1/conversations", nil, Bearer(a.Access)...) }},
			{"list 100 conversations", 200, func(int) (Response, error) {
				return s.Call("GET", "/v1/conversations?page_size=100", nil, Bearer(a.Access)...)
			}},
			{"create conversation", 201, func(n int) (Response, error) {
				return s.Call("POST", "/v1/conversations", map[string]any{"title": fmt.Sprint("t", n)}, Bearer(a.Access)...)
			}},
		},
		"message": {
			{"list messages", 200, func(int) (Response, error) {
				return s.Call("GET", "/v1/conversations/"+conv+"/messages?page_size=5&order=desc", nil, Bearer(a.Access)...)
			}},
			{"append message", 201, func(n int) (Response, error) {
				return s.Call("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"role": "user", "content": fmt.Sprint("m", n)}, Bearer(a.Access)...)
			}},
			{"list 4 MiB of messages", 200, func(int) (Response, error) {
				return s.Call("GET", "/v1/conversations/"+bigConv+"/messages?page_size=200", nil, Bearer(a.Access)...)
			}},
		},
		"gateway": {
			{"list conversations", 200, func(int) (Response, error) { return s.Call("GET", "/v1/conversations", nil, Bearer(a.Access)...) }},
			{"list messages", 200, func(int) (Response, error) {
				return s.Call("GET", "/v1/conversations/"+conv+"/messages?page_size=5", nil, Bearer(a.Access)...)
			}},
		},
	}
	for _, name := range []string{"auth", "conversation", "message", "gateway"} {
		t.Run(name, func(t *testing.T) {
			var (
				mu    sync.Mutex
				calls []sigtermCall
				stop  atomic.Bool
				count atomic.Int64
			)
			var wg sync.WaitGroup
			for w := 0; w < 6; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 2000 && !stop.Load(); i++ {
						l := loads[name][(w+i)%len(loads[name])]
						c := sigtermCall{start: time.Now(), what: l.what}
						r, err := l.do(int(count.Add(1)))
						c.end, c.status, c.err = time.Now(), r.Status, err
						if err == nil && r.Status != l.want {
							c.bad = fmt.Sprintf("status %d, want %d; body %.200s", r.Status, l.want, r.Body)
							if r.Status == 499 {
								c.bad += " (CANCELLED: a call that reached the process while it drained was dropped instead of served or refused with UNAVAILABLE)"
							}
						}
						mu.Lock()
						calls = append(calls, c)
						mu.Unlock()
						if err != nil || r.Status >= 500 {
							time.Sleep(20 * time.Millisecond) // no busy loop against a stopped process
						}
					}
				}()
			}
			deadline := time.Now().Add(20 * time.Second)
			for count.Load() < 30 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			sigAt := time.Now()
			if err := s.Signal(name, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- s.Wait(name) }()
			var exitErr error
			select {
			case exitErr = <-exited:
			case <-time.After(30 * time.Second):
				exitErr = fmt.Errorf("did not exit within 30 s of SIGTERM")
				s.procs[name].Process.Kill()
				<-exited
			}
			// Some load after the exit, for the "after" calls.
			for target, limit := count.Load()+12, time.Now().Add(5*time.Second); count.Load() < target && time.Now().Before(limit); {
				time.Sleep(10 * time.Millisecond)
			}
			stop.Store(true)
			wg.Wait()
			exitedAt := time.Now()
			var fails failures
			// A call sent in the last 50 ms before the signal may not have
			// reached the process yet: it counts as neither.
			const margin = 50 * time.Millisecond
			before, underWay, after := 0, 0, 0
			for _, c := range calls {
				refused := c.err != nil && strings.Contains(c.err.Error(), "connection refused")
				if c.start.Before(sigAt.Add(-margin)) {
					before++
					if c.end.After(sigAt) {
						underWay++
					}
					// A refused connection never reached the process: it
					// was closed before the call got there.
					if (c.err != nil && !refused) || c.bad != "" {
						fails.add("%s started %v before SIGTERM, ended %v after it: %v%s", c.what,
							sigAt.Sub(c.start).Round(time.Millisecond), c.end.Sub(sigAt).Round(time.Millisecond), c.err, c.bad)
					}
				} else {
					if c.start.After(sigAt) {
						after++
					}
					switch {
					case c.err != nil && name != "gateway":
						fails.add("%s sent %v after SIGTERM to chat-%s (negative: before): the gateway failed: %v", c.what, c.start.Sub(sigAt).Round(time.Millisecond), name, c.err)
					case c.err == nil && c.bad != "" && c.status != http.StatusServiceUnavailable:
						fails.add("%s sent %v after SIGTERM (negative: before): %s, want success or 503", c.what, c.start.Sub(sigAt).Round(time.Millisecond), c.bad)
					}
				}
			}
			t.Logf("%d calls started over 50 ms before SIGTERM (%d of them still under way at it), %d after it; exit %v; %v from signal to the end of the load",
				before, underWay, after, exitErr, exitedAt.Sub(sigAt).Round(time.Millisecond))
			fails.report(t, "calls around SIGTERM to chat-"+name+" (sent over 50 ms before it: must succeed; later: success or 503)")
			if exitErr != nil {
				t.Errorf("chat-%s after SIGTERM: %v; the end of its log:\n%s", name, exitErr, tail(s.Logs(name), 1500))
			}
			if err := s.Restart(name); err != nil {
				t.Fatalf("restarting chat-%s: %v", name, err)
			}
		})
	}
}

// slowRequest sends head, then trickles trickle one byte every 200 ms, and
// reports how the gateway ended the request: its status, or 0 when it closed
// the connection, and when.
func slowRequest(t *testing.T, addr, head, trickle string, limit time.Duration) (int, time.Duration) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 0; i < len(trickle); i++ {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{trickle[i]}); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(start.Add(limit))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return -1, time.Since(start)
		}
		return 0, time.Since(start) // closed or reset
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

func TestRobustSlowRequestsAreCutOffByReadTimeout(t *testing.T) {
	s := SharedStack(t)
	g := s.StartGateway(t, "READ_TIMEOUT=2s")
	addr := strings.TrimPrefix(g.BaseURL, "http://")
	body := `{"login":"nobody","password":"` + strings.Repeat("x", 100) + `"}`
	cases := map[string][2]string{
		"body trickled": {"POST /v1/auth/login HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)), body},
		"headers trickled": {"POST /v1/auth/login HTTP/1.1\r\nHost: " + addr + "\r\n", "X-Slow: " + strings.Repeat("s", 100) + "\r\n\r\n"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			// 2 s of READ_TIMEOUT and 4 s of slack; the trickle itself would
			// last over 20 s.
			status, took := slowRequest(t, addr, c[0], c[1], 12*time.Second)
			switch {
			case status == -1:
				t.Errorf("%s: no answer and no close after %v with READ_TIMEOUT=2s: the gateway still waits", name, took.Round(time.Millisecond))
			case took > 6*time.Second:
				t.Errorf("%s: cut off only after %v, want within 2 s + 4 s of slack", name, took.Round(time.Millisecond))
			case status != 0 && (status < 400 || status >= 500):
				t.Errorf("%s: answered %d after %v, want a 4xx (408) or a closed connection", name, status, took.Round(time.Millisecond))
			default:
				t.Logf("%s: status %d (0: closed) after %v", name, status, took.Round(time.Millisecond))
			}
		})
	}
	// The gateway still serves ordinary requests.
	if r, err := g.Call("GET", "/readyz", nil); err != nil || r.Status != http.StatusOK {
		t.Errorf("readyz of the READ_TIMEOUT=2s gateway: %d %v", r.Status, err)
	}
}

func TestRobustMessagePageIsCutAtFourMebibytesOfContent(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	conv := Str(createTitled(t, s, a, "big"), "id")
	big := strings.Repeat("😀", 100000) // 100,000 characters, 400,000 bytes
	const n = 200
	var fails failures
	start := time.Now()
	parallel(n, 4, func(i int) {
		r, err := s.Call("POST", "/v1/conversations/"+conv+"/messages", map[string]any{"role": "user", "content": big}, Bearer(a.Access)...)
		if err != nil || r.Status != http.StatusCreated {
			fails.add("create %d: %d %v %.200s", i, r.Status, err, r.Body)
		}
	})
	fails.report(t, "creating 200 messages of 100,000 four-byte characters")
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("200 big messages created in %v", time.Since(start).Round(time.Millisecond))
	seen := map[string]bool{}
	token := ""
	for page := 0; page < 100; page++ {
		path := "/v1/conversations/" + conv + "/messages?page_size=200"
		if token != "" {
			path += "&page_token=" + token
		}
		body := getOK(t, s, a, path)
		msgs := items(body, "messages")
		sum := 0
		for _, m := range msgs {
			content := Str(m, "content")
			sum += len(content)
			if content != big {
				t.Fatalf("page %d: message %s has %d bytes of content, want the 400,000 sent", page, Str(m, "id"), len(content))
			}
			if seen[Str(m, "id")] {
				t.Fatalf("page %d repeats message %s", page, Str(m, "id"))
			}
			seen[Str(m, "id")] = true
		}
		if sum > 4<<20 {
			t.Errorf("page %d holds %d messages with %d bytes of content, want at most 4 MiB (%d)", page, len(msgs), sum, 4<<20)
		}
		token = Str(body, "next_page_token")
		if page == 0 && token == "" {
			t.Fatalf("the first page of page_size=200 holds all %d messages (%d bytes of content) and no next_page_token", len(msgs), sum)
		}
		if len(msgs) == 0 && token != "" {
			t.Fatalf("page %d is empty but has a next_page_token", page)
		}
		if token == "" {
			break
		}
	}
	if len(seen) != n {
		t.Errorf("paging on listed %d distinct messages, want %d", len(seen), n)
	}
}

// insertNoUser needs the INSERT privilege on users and nothing else.
const insertNoUser = "INSERT INTO users (id) SELECT gen_random_uuid() WHERE false"

func TestRobustDatabaseRolesCanDoOnlyWhatTheirServiceDoes(t *testing.T) {
	s := SharedStack(t)
	as := func(role, sql string) (string, error) {
		u, err := withRole(s.AdminURL, role, rolePassword)
		if err != nil {
			t.Fatal(err)
		}
		return Psql(u, sql)
	}
	// Statements that touch no row: the privilege is checked all the same.
	allowed := []struct{ role, sql string }{
		{"chat_auth", insertNoUser},
		{"chat_message", "UPDATE conversations SET message_count = message_count, updated_at = updated_at, last_message_at = last_message_at WHERE false"},
	}
	for _, c := range allowed {
		if out, err := as(c.role, c.sql); err != nil {
			t.Fatalf("control: %s cannot run %q (%v: %s); the role connection itself is broken", c.role, c.sql, err, out)
		}
	}
	denied := []struct{ role, sql, what string }{
		{"chat_conversation", insertNoUser, "insert users"},
		{"chat_message", insertNoUser, "insert users"},
		{"chat_message", "UPDATE conversations SET title = title WHERE false", "update conversations.title"},
		{"chat_message", "UPDATE conversations SET metadata = metadata WHERE false", "update conversations.metadata"},
		{"chat_message", "UPDATE conversations SET archived = archived WHERE false", "update conversations.archived"},
		{"chat_message", "UPDATE conversations SET pinned = pinned WHERE false", "update conversations.pinned"},
		{"chat_message", "UPDATE conversations SET user_id = user_id WHERE false", "update conversations.user_id"},
		{"chat_message", "UPDATE conversations SET created_at = created_at WHERE false", "update conversations.created_at"},
	}
	for _, c := range denied {
		out, err := as(c.role, c.sql)
		if err == nil {
			t.Errorf("role %s can %s (%q succeeded); SPEC: no service but auth inserts users, and the message service updates only the columns it maintains (counts, positions, activity)",
				c.role, c.what, c.sql)
		} else if !strings.Contains(out, "permission denied") {
			t.Errorf("role %s, %q: failed with %q, want a permission denied", c.role, c.sql, out)
		}
	}
}
