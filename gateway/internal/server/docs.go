package server

import (
	"embed"
	"net/http"
	"strings"

	"github.com/swaggest/swgui/v5/static"
	"github.com/vearutop/statigz"
	"google.golang.org/grpc/codes"

	"github.com/chat-backend/gateway/internal/httperr"
	"github.com/chat-backend/gateway/internal/requestid"
)

// GET /docs: an interactive reference of /openapi.json (Swagger UI). The
// page and its starter script are ours (docs/); Swagger UI's files come
// from the Go module github.com/swaggest/swgui (pinned in go.mod), which
// embeds them, so the page needs no network beyond the gateway.

//go:embed docs/index.html docs/init.js
var docsFiles embed.FS

const docsAssetsPrefix = "/docs/assets/"

// docsRoutes are the paths of the docs page (all GET); gatewayRoutes
// lists them for the Allow header of a 405.
var docsRoutes = []string{"/docs", "/docs/init.js", docsAssetsPrefix + "{file}"}

// docsCSP lets the page load only the gateway's own files: Swagger UI's
// script and styles, our starter script, the document (fetched), and the
// data: images of Swagger UI's stylesheet. No inline script, no eval.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsHandlers maps each route of the docs page to its handler.
func (s *server) docsHandlers() map[string]http.HandlerFunc {
	page, _ := docsFiles.ReadFile("docs/index.html")
	script, _ := docsFiles.ReadFile("docs/init.js")
	assets := statigz.FileServer(static.FS)
	serve := func(contentType string, body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			docsHeaders(w)
			w.Header().Set("Content-Type", contentType)
			_, _ = w.Write(body)
		}
	}
	return map[string]http.HandlerFunc{
		"/docs":         serve("text/html; charset=utf-8", page),
		"/docs/init.js": serve("text/javascript; charset=utf-8", script),
		docsAssetsPrefix + "{file}": func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, docsAssetsPrefix)
			if !assets.Found(r2) {
				httperr.Write(w, httperr.New(http.StatusNotFound, codes.NotFound, "route not found",
					requestid.FromContext(r.Context())))
				return
			}
			docsHeaders(w)
			assets.ServeHTTP(w, r2)
		},
	}
}

func docsHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
