package e2e

import (
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestRequestIdIsEchoedAndReachesTheServiceLogs(t *testing.T) {
	s := SharedStack(t)
	r := s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": "no_such_user", "password": "x"},
		"X-Request-Id", "e2e-request-42")
	if r.Header.Get("X-Request-Id") != "e2e-request-42" {
		t.Fatalf("X-Request-Id %q", r.Header.Get("X-Request-Id"))
	}
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	if Str(r.JSON, "error", "request_id") != "e2e-request-42" {
		t.Errorf("envelope request_id %q", Str(r.JSON, "error", "request_id"))
	}
	// The service writes its log line as it answers; the pipe to us may
	// deliver it a moment after the answer.
	deadline := time.Now().Add(10 * time.Second)
	for len(s.logs["auth"].Lines("e2e-request-42")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("request id not in the auth service's log:\n%s", s.Logs("auth"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := s.Do(t, "GET", "/healthz", nil)
	b := s.Do(t, "GET", "/healthz", nil)
	if a.Header.Get("X-Request-Id") == "" || a.Header.Get("X-Request-Id") == b.Header.Get("X-Request-Id") {
		t.Errorf("made ids %q %q", a.Header.Get("X-Request-Id"), b.Header.Get("X-Request-Id"))
	}
}

func TestUnknownRoutesWrongMethodsAndHugeBodiesGetTheEnvelope(t *testing.T) {
	s := SharedStack(t)
	ExpectError(t, s.Do(t, "GET", "/v1/nothing/here", nil), http.StatusNotFound, "NOT_FOUND")
	r := s.Do(t, "DELETE", "/v1/auth/login", nil)
	if r.Status != http.StatusMethodNotAllowed || Str(r.JSON, "error", "code") == "" {
		t.Errorf("wrong method: %d %s", r.Status, r.Body)
	}
	huge := `{"username":"` + strings.Repeat("a", 1<<20) + `"}`
	r = s.Do(t, "POST", "/v1/auth/register", huge)
	if r.Status < 400 || r.Status >= 500 || Str(r.JSON, "error", "code") == "" {
		t.Errorf("huge body: %d %.200s", r.Status, r.Body)
	}
}

func TestHealthReadinessMetricsAndOpenAPI(t *testing.T) {
	s := SharedStack(t)
	if r := s.Do(t, "GET", "/healthz", nil); r.Status != http.StatusOK {
		t.Errorf("healthz %d", r.Status)
	}
	if r := s.Do(t, "GET", "/readyz", nil); r.Status != http.StatusOK {
		t.Errorf("readyz %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "GET", "/metrics", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "# HELP") {
		t.Errorf("metrics %d", r.Status)
	}
	r := s.Do(t, "GET", "/openapi.json", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("openapi %d", r.Status)
	}
	paths, _ := Get(r.JSON, "paths").(map[string]any)
	// Every route of docs/api.md, with its methods.
	want := map[string][]string{
		"/v1/auth/register":                                       {"post"},
		"/v1/auth/login":                                          {"post"},
		"/v1/auth/refresh":                                        {"post"},
		"/v1/auth/logout":                                         {"post"},
		"/v1/auth/profile":                                        {"get", "patch", "put", "delete"},
		"/v1/auth/jwks":                                           {"get"},
		"/v1/conversations":                                       {"get", "post", "delete"},
		"/v1/conversations/{id}":                                  {"get", "patch", "put", "delete"},
		"/v1/conversations/{conversationId}/messages":             {"get", "post", "delete"},
		"/v1/conversations/{conversationId}/messages/{id}":        {"get", "patch", "put", "delete"},
		"/v1/conversations/{conversationId}/chat":                 {"post"},
		"/v1/conversations/{conversationId}/messages/{id}/stream": {"get"},
		"/v1/conversations/{conversationId}/messages/{id}:cancel": {"post"},
	}
	for path, methods := range want {
		entry, ok := paths[path].(map[string]any)
		if !ok {
			// protoc-gen-openapiv2 may keep the proto field name.
			entry, ok = paths[strings.ReplaceAll(path, "conversationId", "conversation_id")].(map[string]any)
		}
		if !ok {
			t.Errorf("OpenAPI lacks %s (has %d paths)", path, len(paths))
			continue
		}
		for _, m := range methods {
			if _, ok := entry[m]; !ok {
				t.Errorf("OpenAPI lacks %s %s", m, path)
			}
		}
	}
}

func TestServicesReconnectAfterTheDatabaseDropsEveryConnection(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	// What a database restart does to the services: every connection dies.
	out, err := Psql(s.AdminURL, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "+
		"WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil || out == "0" {
		t.Fatalf("terminate: %v %s", err, out)
	}
	r := s.Do(t, "GET", "/v1/auth/profile", nil, Bearer(a.Access)...)
	if r.Status != http.StatusOK {
		t.Fatalf("profile after the connections died: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": a.Password})
	if r.Status != http.StatusOK {
		t.Fatalf("login after the connections died: %d %s", r.Status, r.Body)
	}
}

func TestSigtermFinishesCallsUnderWayThenExits(t *testing.T) {
	s, err := StartStack(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	a := s.NewAccount(t)
	// Logins are slow on purpose (argon2id), so a batch is still being
	// served when the signal arrives.
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	firstDone := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = s.Do(t, "POST", "/v1/auth/login",
				map[string]string{"login": a.Username, "password": a.Password}).Status
			firstDone <- struct{}{}
		}()
	}
	<-firstDone
	if err := s.Signal("auth", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, status := range statuses {
		if status != http.StatusOK {
			t.Errorf("call %d under way at SIGTERM answered %d", i, status)
		}
	}
	exited := make(chan error, 1)
	go func() { exited <- s.Wait("auth") }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("auth exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("auth did not exit after SIGTERM")
	}
	if !strings.Contains(s.Logs("auth"), `"msg":"draining"`) {
		t.Errorf("no drain in the log:\n%s", s.Logs("auth"))
	}
	// The gateway now reports the stack as not ready.
	if r := s.Do(t, "GET", "/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("readyz after auth stopped: %d", r.Status)
	}
}
