package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"
)

const (
	externalIssuer = "https://e2e-project.supabase.co/auth/v1"
	externalSecret = "e2e-external-jwt-secret-with-at-least-32-characters"
)

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func externalToken(sub, email, secret string) string {
	now := time.Now().Unix()
	return SignHS256(map[string]any{"alg": "HS256", "typ": "JWT"}, map[string]any{
		"iss": externalIssuer, "aud": "authenticated", "sub": sub, "email": email,
		"role": "authenticated", "iat": now, "exp": now + 3600}, []byte(secret))
}

func TestExternalIssuerTokensWorkAndCreateTheProfileOnFirstSight(t *testing.T) {
	s, _ := ChatStack(t)
	sub := newUUID()
	token := externalToken(sub, "supa-"+sub[:8]+"@example.com", externalSecret)

	r := s.Do(t, "POST", "/v1/conversations", map[string]any{"title": "from supabase"}, Bearer(token)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("create with an external token: %d %s", r.Status, r.Body)
	}
	id := Str(r.JSON, "id")
	r = s.Do(t, "POST", "/v1/conversations/"+id+"/messages",
		map[string]string{"role": "user", "content": "hello"}, Bearer(token)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("append with an external token: %d %s", r.Status, r.Body)
	}
	if out, _ := Psql(s.AdminURL, "SELECT email FROM users WHERE id = '"+sub+"'"); out != "supa-"+sub[:8]+"@example.com" {
		t.Errorf("profile row: %q", out)
	}
	// An email already taken here still gets the user in, with a placeholder.
	local := s.NewAccount(t)
	other := newUUID()
	r = s.Do(t, "GET", "/v1/conversations", nil, Bearer(externalToken(other, local.Email, externalSecret))...)
	if r.Status != http.StatusOK {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if out, _ := Psql(s.AdminURL, "SELECT count(*) FROM users WHERE id = '"+other+"'"); out != "1" {
		t.Errorf("no profile row for a user whose email is taken: %s", out)
	}
	// The external user sees only their own conversations.
	r = s.Do(t, "GET", "/v1/conversations", nil, Bearer(token)...)
	if list := Get(r.JSON, "conversations").([]any); len(list) != 1 {
		t.Errorf("list %s", r.Body)
	}
}

func TestExternalIssuerTokensAreVerified(t *testing.T) {
	s, _ := ChatStack(t)
	a := s.NewAccount(t)
	kid, _ := jwks(t, s)
	now := time.Now().Unix()
	cases := map[string]string{
		"wrong secret": externalToken(newUUID(), "", "not-the-secret-not-the-secret-not-the"),
		"not a uuid":   externalToken("user-42", "", externalSecret),
		// Our signing key under the external issuer's name: the external
		// issuer's algorithm is HS256, so RS256 is refused.
		"our key, their issuer": SignRS256(t, s.SigningKey, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid},
			map[string]any{"iss": externalIssuer, "aud": "authenticated", "sub": a.ID, "iat": now, "nbf": now, "exp": now + 600, "jti": "x"}),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			r := s.Do(t, "GET", "/v1/conversations", nil, Bearer(token)...)
			ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
		})
	}
	// The auth service accepts only its own tokens.
	r := s.Do(t, "GET", "/v1/auth/profile", nil, Bearer(externalToken(newUUID(), "", externalSecret))...)
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
}
