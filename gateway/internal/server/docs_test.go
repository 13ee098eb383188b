package server_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chat-backend/gateway/internal/server"
)

// The docs page loads only the gateway's own files, under a strict CSP.
func TestDocsPage(t *testing.T) {
	g, _ := newGateway(t, server.Options{})
	r := g.do("GET", "/docs", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs = %d %q", r.status, r.header.Get("Content-Type"))
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("CSP %q allows unsafe sources", csp)
	}
	page := string(r.body)
	if strings.Contains(page, "<script>") || strings.Contains(page, "<style") || strings.Contains(page, " style=") {
		t.Error("the page has inline script or style, which its CSP forbids")
	}

	// Every script and stylesheet the page names is same-origin and served.
	page = regexp.MustCompile(`<!--[\s\S]*?-->`).ReplaceAllString(page, "")
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("the page names %d files, want Swagger UI's script and styles and ours", len(refs))
	}
	base, _ := url.Parse("http://gateway.invalid/docs")
	wantTypes := map[string]string{".js": "javascript", ".css": "text/css", ".png": "image/png"}
	for _, ref := range refs {
		u, err := url.Parse(ref[1])
		if err != nil || u.IsAbs() || u.Host != "" {
			t.Errorf("the page names %q, not a same-origin path", ref[1])
			continue
		}
		path := base.ResolveReference(u).Path
		a := g.do("GET", path, "")
		ext := path[strings.LastIndexByte(path, '.'):]
		if a.status != 200 || len(a.body) == 0 || !strings.Contains(a.header.Get("Content-Type"), wantTypes[ext]) {
			t.Errorf("GET %s = %d %q (%d bytes)", path, a.status, a.header.Get("Content-Type"), len(a.body))
		}
	}
	if js := g.do("GET", "/docs/init.js", ""); !strings.Contains(string(js.body), `"openapi.json"`) ||
		!strings.Contains(string(js.body), "validatorUrl: null") {
		t.Errorf("init.js does not load the gateway's document offline: %s", js.body)
	}

	// Served uncompressed to a client that does not accept gzip, and an
	// unknown asset is an ordinary 404 in the envelope.
	if a := g.do("GET", "/docs/assets/swagger-ui-bundle.js", "", "Accept-Encoding", "identity"); a.status != 200 ||
		a.header.Get("Content-Encoding") != "" || !strings.Contains(string(a.body[:200]), "SwaggerUIBundle") &&
		!strings.Contains(string(a.body[:4000]), "SwaggerUIBundle") {
		t.Errorf("bundle without gzip = %d %q", a.status, a.header.Get("Content-Encoding"))
	}
	if a := g.do("GET", "/docs/assets/nope.js", ""); a.status != 404 || !strings.Contains(string(a.body), `"NOT_FOUND"`) {
		t.Errorf("unknown asset = %d %s", a.status, a.body)
	}
	if a := g.do("POST", "/docs", ""); a.status != 405 || a.header.Get("Allow") != "GET" {
		t.Errorf("POST /docs = %d Allow %q", a.status, a.header.Get("Allow"))
	}
}
