package gateway

import (
	"embed"
	"io/fs"
)

// webFiles holds the browser client: webdist/dist is what `npm run build`
// in ../web writes (gitignored, made by `make build` before the gateway's go
// build), webdist/missing the page served when the gateway was built
// without it. Embedding the folder rather than dist/ keeps the gateway
// buildable (and its tests runnable) on a machine without node.
//
//go:embed webdist
var webFiles embed.FS

// WebClient returns the built client's files (index.html at the root,
// hashed files under assets/) and true, or the "not built" page and false.
func WebClient() (fs.FS, bool) {
	if dist, err := fs.Sub(webFiles, "webdist/dist"); err == nil {
		if _, err := fs.Stat(dist, "index.html"); err == nil {
			return dist, true
		}
	}
	missing, _ := fs.Sub(webFiles, "webdist/missing")
	return missing, false
}
