package e2e

// Helpers of the robustness suite (robustness_*_test.go): more processes
// around a Stack (a second gateway with other settings, a restarted
// service), a PostgreSQL cluster of a test's own, and bounded parallel runs.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// robustClient is an HTTP client with a bound on every call and enough idle
// connections for the parallel tests.
var robustClient = &http.Client{
	Timeout: 20 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	},
}

// quickClient bounds each call at 5 s: for tests that must end soon even
// when a service wedges.
var quickClient = &http.Client{Timeout: 5 * time.Second, Transport: robustClient.Transport}

// Call is Stack.Try with robustClient and raw bodies allowed ([]byte).
func (s *Stack) Call(method, path string, body any, headers ...string) (Response, error) {
	return callURL(robustClient, s.BaseURL, method, path, body, headers...)
}

// Quick is Call bounded at 5 s.
func (s *Stack) Quick(method, path string, body any, headers ...string) (Response, error) {
	return callURL(quickClient, s.BaseURL, method, path, body, headers...)
}

func callURL(client *http.Client, base, method, path string, body any, headers ...string) (Response, error) {
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	case []byte:
		reader = strings.NewReader(string(b))
	default:
		encoded, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		reader = strings.NewReader(string(encoded))
	}
	req, err := http.NewRequest(method, base+path, reader)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	out := Response{Status: resp.StatusCode, Header: resp.Header}
	if out.Body, err = io.ReadAll(resp.Body); err != nil {
		return Response{}, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(out.Body) > 0 {
		json.Unmarshal(out.Body, &out.JSON)
	}
	return out, nil
}

// startRobustStack starts a stack of the test's own and stops it at the end.
func startRobustStack(t *testing.T, extraEnv map[string][]string) *Stack {
	t.Helper()
	s, err := StartStack(extraEnv)
	if err != nil {
		t.Fatalf("starting a stack of the test's own: %v", err)
	}
	t.Cleanup(func() { stopFast(s) })
	return s
}

// stopFast is Stack.Stop with 5 s in all for the processes to end after
// SIGTERM before they get SIGKILL: a wedged stack must not hold the suite.
func stopFast(s *Stack) {
	var wg sync.WaitGroup
	for _, cmd := range s.procs {
		if cmd.ProcessState != nil {
			continue
		}
		cmd.Process.Signal(syscall.SIGTERM)
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}()
	}
	wg.Wait()
	s.Stop()
}

// StartGateway starts one more gateway in front of s's services, with extra
// settings; it is stopped at the end of the test. Its Stack value has only
// BaseURL, AdminURL and the gateway process.
func (s *Stack) StartGateway(t *testing.T, extraEnv ...string) *Stack {
	t.Helper()
	addr, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	env := append(append([]string{}, s.env["gateway"]...), "GATEWAY_LISTEN="+addr)
	env = append(env, extraEnv...)
	g := &Stack{BaseURL: "http://" + addr, AdminURL: s.AdminURL, SigningKey: s.SigningKey,
		procs: map[string]*exec.Cmd{}, logs: map[string]*logBuffer{}}
	if err := g.start("gateway", s.binaries["gateway"], env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	if err := g.waitReady(30 * time.Second); err != nil {
		t.Fatalf("the extra gateway (%v) is not ready: %v", extraEnv, err)
	}
	return g
}

// Restart starts a process of the stack again (after it exited or was
// stopped) with the same settings, and waits until the stack is ready.
func (s *Stack) Restart(name string) error {
	if cmd := s.procs[name]; cmd != nil && cmd.ProcessState == nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
	if err := s.start(name, s.binaries[name], s.env[name]); err != nil {
		return err
	}
	return s.waitReady(30 * time.Second)
}

// Alive reports whether a process of the stack still runs (a zombie that we
// have not reaped yet counts as dead), and what ended it otherwise.
func (s *Stack) Alive(name string) (bool, string) {
	cmd := s.procs[name]
	if cmd == nil || cmd.Process == nil {
		return false, "never started"
	}
	if cmd.ProcessState != nil {
		return false, cmd.ProcessState.String()
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return false, "gone"
	}
	// pid (comm) STATE ...; comm may contain spaces, so split after ')'.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X") {
		cmd.Wait()
		return false, "exited: " + cmd.ProcessState.String()
	}
	return true, ""
}

// expectAllAlive fails the test for every process of the stack that died,
// with the end of its log.
func expectAllAlive(t *testing.T, s *Stack) {
	t.Helper()
	for _, name := range []string{"auth", "conversation", "message", "gateway"} {
		if alive, why := s.Alive(name); !alive {
			t.Errorf("chat-%s is no longer running (%s); the end of its log:\n%s", name, why, tail(s.Logs(name), 1500))
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// idleInTransaction lists the connections to the stack's database that sit
// idle inside a transaction (a transaction that did not end cleanly).
func idleInTransaction(s *Stack) (string, error) {
	return Psql(s.AdminURL, "SELECT coalesce(string_agg(usename || ' pid ' || pid || ' since ' || "+
		"(now() - state_change)::text || ': ' || left(query, 120), E'\\n'), '') FROM pg_stat_activity "+
		"WHERE datname = current_database() AND state IN ('idle in transaction', 'idle in transaction (aborted)')")
}

// expectNoIdleInTransaction polls briefly: a transaction may be between two
// statements at the moment of the query, but not for a second.
func expectNoIdleInTransaction(t *testing.T, s *Stack) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err := idleInTransaction(s)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v %s", err, out)
		}
		if out == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("connections left idle in a transaction for 3 s after the load ended:\n%s", out)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parallel runs fn(i) for i in [0, n) on at most width goroutines.
func parallel(n, width int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < width; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// failures collects what went wrong in goroutines, for one report.
type failures struct {
	mu   sync.Mutex
	list []string
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, fmt.Sprintf(format, args...))
}

// report fails the test with the first few failures and their count.
func (f *failures) report(t *testing.T, what string) {
	t.Helper()
	f.reportUpTo(t, what, 12)
}

func (f *failures) reportUpTo(t *testing.T, what string, limit int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) == 0 {
		return
	}
	shown := f.list
	if len(shown) > limit {
		shown = shown[:limit]
	}
	t.Errorf("%s: %d failures; the first:\n  %s", what, len(f.list), strings.Join(shown, "\n  "))
}

// envelopeProblem says what is wrong with an error answer: not a 4xx, or not
// the SPEC envelope {"error":{"code","message","details"?,"request_id"}}.
func envelopeProblem(r Response) string {
	if r.Status < 400 || r.Status >= 500 {
		return fmt.Sprintf("status %d, want a 4xx; body %.300s", r.Status, r.Body)
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil || body["error"] == nil {
		return fmt.Sprintf("status %d without the error envelope: %.300s", r.Status, r.Body)
	}
	e := body["error"]
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	rid, _ := e["request_id"].(string)
	if code == "" || msg == "" || rid == "" {
		return fmt.Sprintf("status %d envelope lacks code, message or request_id: %.300s", r.Status, r.Body)
	}
	for k := range e {
		if k != "code" && k != "message" && k != "details" && k != "request_id" {
			return fmt.Sprintf("status %d envelope has an unexpected member %q: %.300s", r.Status, k, r.Body)
		}
	}
	return ""
}

// ownPostgres starts a PostgreSQL cluster of the test's own with
// scripts/postgres.sh and returns its directory, port and superuser URL; it
// is stopped and removed at the end of the test.
func ownPostgres(t *testing.T) (dir, port, url string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "chat-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("../../scripts/postgres.sh")
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		port = addr[strings.LastIndexByte(addr, ':')+1:]
		out, err := exec.Command(script, "start", dir, port).Output()
		if err == nil {
			url = strings.TrimSpace(string(out))
			break
		}
		lastErr = err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			lastErr += ": " + string(ee.Stderr)
		}
	}
	if url == "" {
		os.RemoveAll(dir)
		t.Fatalf("starting a PostgreSQL of the test's own: %s", lastErr)
	}
	t.Cleanup(func() {
		exec.Command(script, "stop", dir).Run()
		os.RemoveAll(dir)
	})
	return dir, port, url
}

// pgCtl runs pg_ctl on a cluster of ownPostgres, as the user that owns it.
func pgCtl(dir string, args ...string) (string, error) {
	pgBin := os.Getenv("PG_BIN")
	if pgBin == "" {
		pgBin = "/usr/lib/postgresql/15/bin"
	}
	argv := append([]string{filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(dir, "pgdata")}, args...)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		user := os.Getenv("CHAT_PG_USER")
		if user == "" {
			user = "chatpg"
		}
		cmd = exec.Command("runuser", append([]string{"-u", user, "--"}, argv...)...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}
