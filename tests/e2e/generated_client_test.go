package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGeneratedClient generates a Go client from the OpenAPI document that
// the gateway serves, with oapi-codegen (pinned by tests/apiclient), vets it
// and runs it against the stack: register, create a conversation, append a
// message, list the messages (SPEC "Shape": a client generated from the
// document works unchanged).
func TestGeneratedClient(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	dir := filepath.Join(root, "tests", "apiclient")
	s := SharedStack(t)
	// The document as the gateway serves it.
	r := s.Do(t, "GET", "/openapi.json", nil)
	if r.Status != 200 {
		t.Fatalf("GET /openapi.json: %d", r.Status)
	}
	doc := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(doc, r.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"tool", "oapi-codegen", "-generate", "types,client", "-package", "chat", "-o", "chat/chat.gen.go", doc},
		{"vet", "./..."},
		{"run", ".", s.BaseURL},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("go %s: %s", args[0], strings.TrimSpace(string(out)))
	}
}
