package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// clientRoute matches the paths the client routes itself besides /.
var clientRoute = regexp.MustCompile(`^/(c|s)/[^/]+$`)

// WebClientCSP is the Content-Security-Policy of every file of the browser
// client: scripts and styles only from the gateway's own files (no inline
// script, no eval), requests only to the gateway, images only from it or
// data: URLs (an image in a reply never calls a third party), no plugins,
// no framing, no <base>.
const WebClientCSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// webClient serves the browser client (docs/web-client.md) from files, in
// front of next (the API). API routes keep their precedence: a GET or HEAD
// reaches the client only when its path is outside /v1/ and matches no route
// of the route table (which holds /healthz, /readyz, /metrics,
// /openapi.json). Then:
//
//	a file of the build       that file; under assets/ (content-hashed
//	                          names) cached for a year as immutable,
//	                          anything else revalidated (no-cache)
//	/, /c/<id>, /s/<token>    index.html (no-cache): the client's own
//	                          routes (web/src/router.ts)
//	anything else             next, so the API's 404 envelope
//
// built is false when files is the "not built" page: it answers 503.
func (s *server) webClient(files fs.FS, built bool, next http.Handler) http.Handler {
	index, _ := fs.ReadFile(files, "index.html")
	sum := sha256.Sum256(index)
	indexETag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) ||
			p == "/v1" || strings.HasPrefix(p, "/v1/") || len(s.routes.allowed(p)) > 0 {
			next.ServeHTTP(w, r)
			return
		}
		name := strings.TrimPrefix(path.Clean(p), "/")
		if name != "" && name != "index.html" {
			if data, err := fs.ReadFile(files, name); err == nil {
				cache := "no-cache"
				if strings.HasPrefix(name, "assets/") {
					cache = "public, max-age=31536000, immutable"
				}
				stateFrom(r.Context()).route = "web-client"
				serveWebFile(w, r, name, data, cache, "")
				return
			}
			if !clientRoute.MatchString(p) {
				next.ServeHTTP(w, r)
				return
			}
		}
		stateFrom(r.Context()).route = "web-client"
		if !built {
			setWebHeaders(w.Header(), "no-store")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			if r.Method == http.MethodGet {
				_, _ = w.Write(index)
			}
			return
		}
		serveWebFile(w, r, "index.html", index, "no-cache", indexETag)
	})
}

func serveWebFile(w http.ResponseWriter, r *http.Request, name string, data []byte, cache, etag string) {
	h := w.Header()
	setWebHeaders(h, cache)
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		h.Set("Content-Type", ct)
	}
	if etag != "" {
		h.Set("ETag", etag)
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}

// setWebHeaders are the headers of every answer of the client. The
// referrer is never sent: the public share view's URL holds its token.
func setWebHeaders(h http.Header, cache string) {
	h.Set("Cache-Control", cache)
	h.Set("Content-Security-Policy", WebClientCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}
