package requestid

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"":                            false,
		"a":                           true,
		"req-123_ABC.x:y/z":           true,
		"with space":                  true,
		strings.Repeat("x", MaxLen):   true,
		strings.Repeat("x", MaxLen+1): false,
		"tab\there":                   false,
		"new\nline":                   false,
		"del\x7f":                     false,
		"caf\u00e9":                   false,
	} {
		if got := Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestNewIsAUniqueUUIDv4(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := New()
		if !uuidV4.MatchString(id) {
			t.Fatalf("New() = %q, not a UUIDv4", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name, sent string
		keep       bool
	}{
		{"given", "client-id-1", true},
		{"absent", "", false},
		{"too long", strings.Repeat("a", MaxLen+1), false},
		{"not ASCII", "id-\u00e9", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var inCtx string
			h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inCtx = FromContext(r.Context())
				w.WriteHeader(http.StatusTeapot)
			}))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.sent != "" {
				r.Header.Set(Header, tc.sent)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			got := w.Header().Get(Header)
			if got != inCtx {
				t.Errorf("header %q != context %q", got, inCtx)
			}
			if tc.keep && got != tc.sent {
				t.Errorf("id = %q, want the request's %q", got, tc.sent)
			}
			if !tc.keep && !uuidV4.MatchString(got) {
				t.Errorf("id = %q, want a new UUID", got)
			}
		})
	}
}
