package e2e

// The stack under test: a fresh database on the throw-away PostgreSQL of
// TEST_DATABASE_URL, migrated by the real chat-migrate, the three real
// service binaries and the real gateway, all on loopback ports. Nothing of
// ours is mocked.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const rolePassword = "chat-e2e-role-password"

// Stack is one running copy of the whole product.
type Stack struct {
	BaseURL    string
	AdminURL   string // superuser URL of the stack's own database
	SigningKey *rsa.PrivateKey
	dir        string
	procs      map[string]*exec.Cmd
	logs       map[string]*logBuffer
	serverURL  string
	database   string
	addrs      map[string]string   // listen address per process name
	env        map[string][]string // environment per process name, for Restart
	binaries   map[string]string   // binary per process name, for Restart
}

var (
	stackOnce sync.Once
	shared    *Stack
	stackErr  error
)

// SharedStack starts the stack once per test binary; tests create their own
// users, so they do not see each other's data.
func SharedStack(t *testing.T) *Stack {
	t.Helper()
	stackOnce.Do(func() { shared, stackErr = StartStack(nil) })
	if stackErr != nil {
		t.Fatalf("starting the stack: %v", stackErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	if os.Getenv("TEST_DATABASE_URL") == "" {
		fmt.Println("e2e: TEST_DATABASE_URL is unset; run `make test`, which starts a throw-away PostgreSQL")
		os.Exit(1)
	}
	code := m.Run()
	for _, s := range []*Stack{shared, chatStack} {
		if s != nil {
			s.Stop()
		}
	}
	if chatProvider != nil {
		chatProvider.Close()
	}
	os.Exit(code)
}

func buildDir() string {
	if dir := os.Getenv("BUILD_DIR"); dir != "" {
		return dir
	}
	abs, _ := filepath.Abs("../../build")
	return abs
}

// migrationsDir is the checkout's deploy/migrations, or MIGRATIONS_DIR when
// the binaries of BUILD_DIR come from another checkout.
func migrationsDir() string {
	if dir := os.Getenv("MIGRATIONS_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "deploy", "migrations")
}

// freePort asks the kernel for a free loopback port.
func freePort() (string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return "", err
	}
	return ports[0], nil
}

// freePorts asks for n free loopback ports, all different: each is held
// until all are chosen. (Asked one after another, a port just given back
// can come again: the stack's gateway then spoke to another service on its
// message service's port, which had failed to bind.)
func freePorts(n int) ([]string, error) {
	ports := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().String())
	}
	return ports, nil
}

// withDatabase returns the URL with its database name replaced.
func withDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func withRole(raw, role, password string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	u.User = url.UserPassword(role, password)
	return u.String(), nil
}

// Psql runs one SQL command against the given URL.
func Psql(dbURL, sql string) (string, error) {
	out, err := exec.Command("psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
		"-d", dbURL, "-c", sql).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// StartStack starts everything; extraEnv adds variables per process name
// ("auth", "conversation", "message", "gateway").
//
// Every gateway starts with AUTH_RATE_LIMIT=0 (the per-client auth rate limit
// disabled) unless extraEnv["gateway"] says otherwise: the tests register
// many users from 127.0.0.1.
func StartStack(extraEnv map[string][]string) (*Stack, error) {
	return StartStackOn(os.Getenv("TEST_DATABASE_URL"), extraEnv)
}

// StartStackOn is StartStack against another PostgreSQL cluster, given by the
// superuser URL of its `postgres` database (a test that stops and restarts
// PostgreSQL runs a cluster of its own).
func StartStackOn(serverURL string, extraEnv map[string][]string) (*Stack, error) {
	s := &Stack{procs: map[string]*exec.Cmd{}, logs: map[string]*logBuffer{},
		serverURL: serverURL, env: map[string][]string{}, binaries: map[string]string{}}
	var err error
	if s.dir, err = os.MkdirTemp("", "chat-e2e-"); err != nil {
		return nil, err
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	s.database = "e2e_" + hex.EncodeToString(suffix)
	if out, err := Psql(s.serverURL, "CREATE DATABASE "+s.database); err != nil {
		return nil, fmt.Errorf("create database: %v: %s", err, out)
	}
	if s.AdminURL, err = withDatabase(s.serverURL, s.database); err != nil {
		return nil, err
	}
	migrate := exec.Command(filepath.Join(buildDir(), "deploy/migrate/chat-migrate"),
		"--migrations_dir", migrationsDir())
	migrate.Env = append(os.Environ(), "DATABASE_URL="+s.AdminURL,
		"CHAT_AUTH_DB_PASSWORD="+rolePassword,
		"CHAT_CONVERSATION_DB_PASSWORD="+rolePassword,
		"CHAT_MESSAGE_DB_PASSWORD="+rolePassword)
	if out, err := migrate.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chat-migrate: %v: %s", err, out)
	}

	if s.SigningKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(s.SigningKey)
	keyFile := filepath.Join(s.dir, "signing.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}

	names := []string{"auth", "conversation", "message", "gateway"}
	ports, err := freePorts(len(names))
	if err != nil {
		return nil, err
	}
	addrs := map[string]string{}
	for i, name := range names {
		addrs[name] = ports[i]
	}
	roleURL := func(role string) string {
		u, _ := withRole(s.AdminURL, role, rolePassword)
		return u
	}
	common := []string{"AUTH_ADDR=" + addrs["auth"]}
	services := []struct {
		name, binary string
		env          []string
	}{
		{"auth", "services/auth/chat-auth", []string{
			"GRPC_LISTEN=" + addrs["auth"], "DATABASE_URL=" + roleURL("chat_auth"),
			"AUTH_SIGNING_KEY_FILE=" + keyFile}},
		{"conversation", "services/conversation/chat-conversation", []string{
			"GRPC_LISTEN=" + addrs["conversation"], "DATABASE_URL=" + roleURL("chat_conversation")}},
		{"message", "services/message/chat-message", []string{
			"GRPC_LISTEN=" + addrs["message"], "DATABASE_URL=" + roleURL("chat_message")}},
		{"gateway", "bin/chat-gateway", []string{
			"GATEWAY_LISTEN=" + addrs["gateway"], "CONVERSATION_ADDR=" + addrs["conversation"],
			"MESSAGE_ADDR=" + addrs["message"],
			// Every test registers and logs in from 127.0.0.1: the per-client
			// limit has tests of its own.
			"AUTH_RATE_LIMIT=0"}},
	}
	s.addrs = addrs
	for _, svc := range services {
		env := append(append(append(os.Environ(), common...), svc.env...), extraEnv[svc.name]...)
		s.env[svc.name] = env
		s.binaries[svc.name] = filepath.Join(buildDir(), svc.binary)
		if err := s.start(svc.name, s.binaries[svc.name], env); err != nil {
			s.Stop()
			return nil, err
		}
	}
	s.BaseURL = "http://" + addrs["gateway"]
	if err := s.waitReady(60 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(name, binary string, env []string) error {
	cmd := exec.Command(binary)
	cmd.Env = env
	logs := &logBuffer{}
	cmd.Stdout = logs
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.procs[name] = cmd
	s.logs[name] = logs
	return nil
}

// waitReady polls /readyz until every upstream and the database answer.
func (s *Stack) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.BaseURL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		for name, cmd := range s.procs {
			if cmd.ProcessState != nil {
				return fmt.Errorf("%s exited: %s", name, s.logs[name].String())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var all strings.Builder
	for name, l := range s.logs {
		fmt.Fprintf(&all, "--- %s\n%s\n", name, l.String())
	}
	return fmt.Errorf("stack not ready after %v:\n%s", limit, all.String())
}

// Signal sends sig to one process of the stack.
func (s *Stack) Signal(name string, sig syscall.Signal) error {
	return s.procs[name].Process.Signal(sig)
}

// Wait waits for one process to exit and returns its exit error.
func (s *Stack) Wait(name string) error {
	return s.procs[name].Wait()
}

// Logs returns what a process printed so far.
func (s *Stack) Logs(name string) string { return s.logs[name].String() }

// Stop terminates every process (SIGTERM, then SIGKILL) and drops the database.
func (s *Stack) Stop() {
	for _, cmd := range s.procs {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, cmd := range s.procs {
		if cmd.ProcessState != nil {
			continue
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	if s.database != "" {
		Psql(s.serverURL, "DROP DATABASE IF EXISTS "+s.database+" WITH (FORCE)")
	}
	os.RemoveAll(s.dir)
}

// logBuffer keeps a process's output for failure messages.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Lines returns the output lines that contain substr.
func (l *logBuffer) Lines(substr string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			out = append(out, sc.Text())
		}
	}
	return out
}

var _ = context.Background
