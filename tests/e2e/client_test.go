package e2e

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Response is an HTTP answer with its body decoded when it is JSON.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Do sends one request. body may be nil, a string (sent as is) or a value
// (sent as JSON).
func (s *Stack) Do(t *testing.T, method, path string, body any, headers ...string) Response {
	t.Helper()
	var reader io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		reader = strings.NewReader(b)
	case []byte:
		reader = bytes.NewReader(b)
	default:
		encoded, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		reader = bytes.NewReader(encoded)
	}
	req, err := http.NewRequest(method, s.BaseURL+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := Response{Status: resp.StatusCode, Header: resp.Header}
	if out.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && len(out.Body) > 0 {
		json.Unmarshal(out.Body, &out.JSON)
	}
	return out
}

// Bearer is the header pair for an access token.
func Bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// Get walks a decoded JSON value: Get(r.JSON, "user", "id").
func Get(v any, path ...string) any {
	for _, key := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[key]
	}
	return v
}

func Str(v any, path ...string) string {
	s, _ := Get(v, path...).(string)
	return s
}

// ExpectError checks the SPEC envelope, its HTTP status and code, and that
// the request id of the envelope is the response's X-Request-Id.
func ExpectError(t *testing.T, r Response, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if got := Str(r.JSON, "error", "code"); got != code {
		t.Fatalf("error code %q, want %q; body %s", got, code, r.Body)
	}
	if Str(r.JSON, "error", "message") == "" {
		t.Fatalf("error without message: %s", r.Body)
	}
	if id := Str(r.JSON, "error", "request_id"); id == "" || id != r.Header.Get("X-Request-Id") {
		t.Fatalf("request_id %q vs X-Request-Id %q", id, r.Header.Get("X-Request-Id"))
	}
}

// Violations lists the envelope's details as "field: description".
func Violations(r Response) []string {
	var out []string
	details, _ := Get(r.JSON, "error", "details").([]any)
	for _, d := range details {
		out = append(out, Str(d, "field")+": "+Str(d, "description"))
	}
	return out
}

// Account is a registered user of a test.
type Account struct {
	ID, Username, Email, Password string
	Access, Refresh               string
}

// NewAccount registers a user with a unique name.
func (s *Stack) NewAccount(t *testing.T) Account {
	t.Helper()
	suffix := make([]byte, 5)
	rand.Read(suffix)
	a := Account{Username: "u_" + hex.EncodeToString(suffix), Password: "Passw0rd!"}
	a.Email = a.Username + "@example.com"
	r := s.Do(t, "POST", "/v1/auth/register",
		map[string]string{"username": a.Username, "email": a.Email, "password": a.Password})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	a.ID = Str(r.JSON, "user", "id")
	a.Access = Str(r.JSON, "tokens", "access_token")
	a.Refresh = Str(r.JSON, "tokens", "refresh_token")
	return a
}

func b64(data []byte) string { return base64.RawURLEncoding.EncodeToString(data) }

// SignRS256 makes a JWT with the given header and claims, signed by key.
func SignRS256(t *testing.T, key *rsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// SignHS256 makes a JWT with an HMAC signature keyed by secret.
func SignHS256(header, claims map[string]any, secret []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}
