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

// TestOpenAPIFuzz runs schemathesis (pinned in tests/openapi/requirements.txt,
// installed by scripts/openapi-fuzz-venv.sh) against a stack of its own, over
// every operation of /openapi.json with every check, authenticated as a
// registered user. Any mismatch between the document and the answers, or
// any 5xx, fails the test with schemathesis's report.
//
// Bounded: OPENAPI_FUZZ_SECONDS (default 200) for the whole run, a few
// examples per operation. OPENAPI_FUZZ_SEED picks the seed (default fixed,
// so that a failure reproduces).
func TestOpenAPIFuzz(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	venv := exec.Command(filepath.Join(root, "scripts", "openapi-fuzz-venv.sh"))
	venv.Env = append(os.Environ(), "BUILD_DIR="+buildDir())
	venv.Stderr = os.Stderr
	out, err := venv.Output()
	if err != nil {
		t.Fatalf("installing schemathesis: %v", err)
	}
	st := strings.TrimSpace(string(out))

	s, err := StartStack(nil)
	if err != nil {
		t.Fatalf("starting the stack: %v", err)
	}
	defer s.Stop()
	a := s.NewAccount(t)

	seconds := envOr("OPENAPI_FUZZ_SECONDS", "200")
	budget, err := time.ParseDuration(seconds + "s")
	if err != nil {
		t.Fatalf("OPENAPI_FUZZ_SECONDS=%q: %v", seconds, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget+60*time.Second)
	defer cancel()
	reports := t.TempDir()
	cmd := exec.CommandContext(ctx, st,
		"--config-file", filepath.Join(root, "tests", "openapi", "schemathesis.toml"),
		"run", s.BaseURL+"/openapi.json",
		"--checks", "all",
		"--max-examples", envOr("OPENAPI_FUZZ_EXAMPLES", "10"),
		"--max-time", seconds,
		"--seed", envOr("OPENAPI_FUZZ_SEED", "13"),
		"--workers", "1",
		"--request-timeout", "10",
		"--header", "Authorization: Bearer "+a.Access,
		"--report-dir", reports,
		"--no-color",
	)
	cmd.Dir = reports
	// The hooks keep to values whose rules JSON Schema cannot state (page
	// tokens, configured models, metadata keys): tests/openapi.
	cmd.Env = append(os.Environ(), "SCHEMATHESIS_HOOKS=openapi_fuzz_hooks",
		"PYTHONPATH="+filepath.Join(root, "tests", "openapi"), "NO_COLOR=1")
	output, err := cmd.CombinedOutput()
	// The token is the test user's own, on a throw-away stack; the
	// report masks it anyway.
	if err != nil {
		// A service that crashed shows in its log's last lines.
		for _, name := range []string{"auth", "conversation", "message"} {
			t.Logf("the %s service's log ends:\n%s", name, lastLines(s.Logs(name), 15))
		}
		t.Fatalf("schemathesis found mismatches (%v):\n%s", err, output)
	}
	t.Logf("schemathesis:\n%s", lastLines(string(output), 25))
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
