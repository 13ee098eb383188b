package server

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/chat-backend/gateway"
)

// webTestHandler is webClient over a fake build, in front of an "API" that
// answers 404 with a marker, so a test sees which side answered.
func webTestHandler(t *testing.T, built bool) http.Handler {
	t.Helper()
	rt, err := newRouteTable(gateway.OpenAPI, map[string][]string{"/healthz": {"GET"}, "/metrics": {"GET"}})
	if err != nil {
		t.Fatal(err)
	}
	files := fstest.MapFS{
		"index.html":             {Data: []byte(`<!doctype html><div id="app"></div>`)},
		"favicon.svg":            {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		"assets/index-AbC123.js": {Data: []byte(`console.log(1)`)},
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("api"))
	})
	return (&server{routes: rt}).webClient(files, built, api)
}

func TestWebClientServesFilesWithCachingAndCSP(t *testing.T) {
	h := webTestHandler(t, true)
	for _, c := range []struct {
		path, cache, contentType, body string
	}{
		{"/", "no-cache", "text/html; charset=utf-8", `<div id="app">`},
		{"/index.html", "no-cache", "text/html; charset=utf-8", `<div id="app">`},
		{"/c/0190c2a4-0000-7000-8000-000000000000", "no-cache", "text/html; charset=utf-8", `<div id="app">`},
		{"/s/some-share-token", "no-cache", "text/html; charset=utf-8", `<div id="app">`},
		{"/assets/index-AbC123.js", "public, max-age=31536000, immutable", "text/javascript; charset=utf-8", "console.log"},
		{"/favicon.svg", "no-cache", "image/svg+xml", "<svg"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("GET %s: %d %q", c.path, rec.Code, rec.Body.String())
		}
		if got := rec.Header().Get("Cache-Control"); got != c.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", c.path, got, c.cache)
		}
		if got := rec.Header().Get("Content-Type"); got != c.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.contentType)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self';", "connect-src 'self';", "object-src 'none';", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", c.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q allows inline script or eval", c.path, csp)
		}
		if rec.Header().Get("Referrer-Policy") != "no-referrer" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", c.path, rec.Header())
		}
	}

	// HEAD answers the headers alone.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("HEAD /: %d, %d bytes, %v", rec.Code, rec.Body.Len(), rec.Header())
	}

	// index.html revalidates by ETag.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	etag := rec.Header().Get("ETag")
	req := httptest.NewRequest(http.MethodGet, "/c/x", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if etag == "" || rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match %q: %d", etag, rec.Code)
	}
}

func TestWebClientLeavesTheAPIAlone(t *testing.T) {
	h := webTestHandler(t, true)
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/v1/conversations"},
		{http.MethodGet, "/v1/no-such-route"},
		{http.MethodGet, "/v1"},
		{http.MethodGet, "/healthz"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/openapi.json"},
		{http.MethodPost, "/"},
		{http.MethodDelete, "/c/x"},
		{http.MethodGet, "/assets/missing-file.js"},
		{http.MethodGet, "/robots.txt"},
		{http.MethodGet, "/nope"},
		{http.MethodGet, "/healthz:x"},
		{http.MethodGet, "/c/x/y"},
		{http.MethodGet, "/c/"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Body.String() != "api" {
			t.Errorf("%s %s was answered by the web client: %d %q", c.method, c.path, rec.Code, rec.Body.String())
		}
	}
}

func TestWebClientNotBuiltIs503(t *testing.T) {
	h := webTestHandler(t, false)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/c/x", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("GET /c/x without a build: %d %v", rec.Code, rec.Header())
	}
}

// The gateway embeds either the build or the "not built" page, never
// nothing.
func TestWebClientEmbedsAnIndex(t *testing.T) {
	files, built := gateway.WebClient()
	page, err := fsReadIndex(files)
	if err != nil {
		t.Fatal(err)
	}
	if built != strings.Contains(page, `<div id="app">`) {
		t.Errorf("built=%v but index.html is %q", built, page)
	}
}

func fsReadIndex(files fs.FS) (string, error) {
	b, err := fs.ReadFile(files, "index.html")
	return string(b), err
}
