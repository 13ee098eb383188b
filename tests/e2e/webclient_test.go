package e2e

// The browser client (web/) in Debian's headless Chromium, driven by
// Playwright (web/tests/*.spec.ts), against a stack of the real binaries
// whose provider is the fake one: its "drip" replies are slow enough to
// reload or stop in the middle. On failure Playwright leaves a screenshot
// of each failing test's page in web/test-results/ (WEB_TEST_OUTPUT).
// WEB_TEST_ARGS passes more arguments to `playwright test` ("-g stop").

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWebClientInChromium(t *testing.T) {
	chromium := os.Getenv("CHROMIUM_PATH")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("no Chromium at %s (Debian package chromium; scripts/install-deps.sh installs it): %v", chromium, err)
	}
	web, _ := filepath.Abs(filepath.Join("..", "..", "web"))
	cli := filepath.Join(web, "node_modules", "@playwright", "test", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("web/node_modules is not installed (make build runs npm ci): %v", err)
	}

	provider := NewFakeProvider()
	defer provider.Close()
	// Access tokens of 20 s: the client's refresh before expiry happens
	// within a test.
	s, err := StartStack(map[string][]string{"auth": {"ACCESS_TOKEN_TTL=20s"}, "message": {
		"PROVIDER=openai", "PROVIDER_BASE_URL=" + provider.URL + "/v1",
		"PROVIDER_API_KEY=" + providerKey, "PROVIDER_MODEL=fake-model-1",
		"PROVIDER_IDLE_TIMEOUT=10s",
	}})
	if err != nil {
		t.Fatalf("starting the stack: %v", err)
	}
	defer s.Stop()

	// The gateway under test must embed the built client, not the
	// "not built" page.
	resp, err := http.Get(s.BaseURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `<div id="app">`) {
		t.Fatalf("GET / answered %d without the client: was the gateway built after the web build (make build)?\n%s",
			resp.StatusCode, page)
	}

	output := os.Getenv("WEB_TEST_OUTPUT")
	if output == "" {
		output = filepath.Join(web, "test-results")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// WEB_TEST_ARGS: more arguments for `playwright test`, e.g. "-g stop".
	cmd := exec.CommandContext(ctx, "node", append([]string{cli, "test"}, strings.Fields(os.Getenv("WEB_TEST_ARGS"))...)...)
	cmd.Dir = web
	cmd.Env = append(os.Environ(), "BASE_URL="+s.BaseURL, "CHROMIUM_PATH="+chromium,
		"WEB_TEST_OUTPUT="+output, "CI=true")
	out, err := cmd.CombinedOutput()
	t.Logf("playwright:\n%s", out)
	if err != nil {
		t.Fatalf("browser tests failed (%v); screenshots of the failing pages are in %s", err, output)
	}
}
