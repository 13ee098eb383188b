// Package requestid gives every request an id (docs/api.md: "Every response
// carries X-Request-Id (taken from the request when given, else made); the
// same id is passed to the gRPC services as metadata").
package requestid

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
)

const (
	// Header is the HTTP header that carries the id both ways.
	Header = "X-Request-Id"
	// MetadataKey is the gRPC metadata key the services read.
	MetadataKey = "x-request-id"
	// MaxLen is the longest id taken from a request.
	MaxLen = 128
)

// Valid reports whether a client-sent id is usable: 1..MaxLen printable
// ASCII characters (0x20..0x7E), which is also what gRPC metadata allows.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7E {
			return false
		}
	}
	return true
}

// New returns a random (version 4) UUID in its canonical form.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the id that NewContext stored, or "".
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Middleware takes the request's X-Request-Id when Valid, else makes one,
// puts it on the response before anything else runs (so errors, 404s and
// health answers carry it too) and in the request's context.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(Header)
		if !Valid(id) {
			id = New()
		}
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}
