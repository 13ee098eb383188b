package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var rfc3339UTC = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

func TestRegisterAnswers201WithUserAndTokens(t *testing.T) {
	s := SharedStack(t)
	r := s.Do(t, "POST", "/v1/auth/register",
		map[string]string{"username": "Reg_User1", "email": "reg.user1@example.com", "password": "Passw0rd"})
	if r.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	user := Get(r.JSON, "user").(map[string]any)
	if Str(user, "username") != "Reg_User1" || Str(user, "email") != "reg.user1@example.com" {
		t.Errorf("user %v", user)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(Str(user, "id")) {
		t.Errorf("id %q is not a UUIDv7", Str(user, "id"))
	}
	for _, field := range []string{"created_at", "updated_at"} {
		if !rfc3339UTC.MatchString(Str(user, field)) {
			t.Errorf("%s %q is not RFC 3339 UTC", field, Str(user, field))
		}
	}
	for key := range user {
		if strings.Contains(key, "password") || strings.Contains(key, "hash") {
			t.Errorf("user exposes %q", key)
		}
	}
	if strings.Contains(string(r.Body), "argon2") {
		t.Errorf("body leaks a hash: %s", r.Body)
	}
	tokens := Get(r.JSON, "tokens")
	if Str(tokens, "token_type") != "Bearer" || Get(tokens, "expires_in") != "900" && Get(tokens, "expires_in") != float64(900) {
		t.Errorf("tokens %v", tokens)
	}
	if Str(tokens, "access_token") == "" || Str(tokens, "refresh_token") == "" {
		t.Errorf("tokens missing: %v", tokens)
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
}

func TestRegisterListsEveryViolationAndCreatesNothing(t *testing.T) {
	s := SharedStack(t)
	r := s.Do(t, "POST", "/v1/auth/register",
		map[string]string{"username": "x!", "email": "nope", "password": "short"})
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	got := Violations(r)
	want := []string{
		"username: must be 3 to 80 characters long",
		"username: may contain only letters, digits and underscores",
		"email: must be a valid email address",
		"password: must be 8 to 128 characters long",
		"password: must contain an upper-case letter",
		"password: must contain a digit",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations\n got %q\nwant %q", got, want)
	}
	// Missing fields are violations too.
	r = s.Do(t, "POST", "/v1/auth/register", map[string]string{})
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	if len(Violations(r)) < 3 {
		t.Errorf("violations %q", Violations(r))
	}
	// Nothing was created: the name is still free.
	r = s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": "nope", "password": "short"})
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
}

func TestTakenUsernameOrEmailIs409(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	r := s.Do(t, "POST", "/v1/auth/register", map[string]string{
		"username": strings.ToUpper(a.Username), "email": "fresh_" + a.Email, "password": "Passw0rd"})
	ExpectError(t, r, http.StatusConflict, "ALREADY_EXISTS")
	if !slices.Equal(Violations(r), []string{"username: is already taken"}) {
		t.Errorf("violations %q", Violations(r))
	}
	r = s.Do(t, "POST", "/v1/auth/register", map[string]string{
		"username": "fresh_" + a.Username, "email": strings.ToUpper(a.Email), "password": "Passw0rd"})
	ExpectError(t, r, http.StatusConflict, "ALREADY_EXISTS")
}

func TestMalformedBodiesAre400(t *testing.T) {
	s := SharedStack(t)
	for _, body := range []string{`{"username":`, `not json`, `[1,2]`, `{"username": 5}`} {
		r := s.Do(t, "POST", "/v1/auth/register", body)
		ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	}
	r := s.Do(t, "POST", "/v1/auth/login", `{"login":"a","password":"b","admin":true}`)
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
}

func TestLoginByUsernameOrEmail(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	for _, login := range []string{a.Username, strings.ToUpper(a.Email)} {
		r := s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": login, "password": a.Password})
		if r.Status != http.StatusOK || Str(r.JSON, "user", "id") != a.ID {
			t.Fatalf("login %q: %d %s", login, r.Status, r.Body)
		}
	}
	wrong := s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": "Wr0ngpass"})
	unknown := s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": "nobody_here", "password": "Wr0ngpass"})
	ExpectError(t, wrong, http.StatusUnauthorized, "UNAUTHENTICATED")
	ExpectError(t, unknown, http.StatusUnauthorized, "UNAUTHENTICATED")
	if Str(wrong.JSON, "error", "message") != Str(unknown.JSON, "error", "message") {
		t.Errorf("messages differ: %s vs %s", wrong.Body, unknown.Body)
	}
}

func TestFailedLoginThrottleAnswers429WithRetryAfter(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	for i := 0; i < 10; i++ {
		r := s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": "Wr0ngpass"})
		ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	}
	r := s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": a.Password})
	ExpectError(t, r, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED")
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || retry < 800 || retry > 900 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Another account is unaffected.
	b := s.NewAccount(t)
	r = s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": b.Username, "password": b.Password})
	if r.Status != http.StatusOK {
		t.Errorf("other account: %d", r.Status)
	}
}

func TestRefreshRotatesAndAConcurrentReplayIsServed(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	first := s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": a.Refresh})
	if first.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", first.Status, first.Body)
	}
	next := Str(first.JSON, "tokens", "refresh_token")
	if next == "" || next == a.Refresh || Str(first.JSON, "tokens", "access_token") == "" {
		t.Fatalf("tokens %s", first.Body)
	}
	// Two tabs: the retired token again, well inside the 10 s grace.
	replay := s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": a.Refresh})
	if replay.Status != http.StatusOK {
		t.Fatalf("replay within grace: %d %s", replay.Status, replay.Body)
	}
	// Nothing was revoked: both new tokens still work.
	for _, token := range []string{next, Str(replay.JSON, "tokens", "refresh_token")} {
		r := s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": token})
		if r.Status != http.StatusOK {
			t.Errorf("after replay: %d %s", r.Status, r.Body)
		}
	}
	// Simultaneous refreshes of one token both succeed.
	c := s.NewAccount(t)
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": c.Refresh}).Status
		}()
	}
	wg.Wait()
	for i, status := range statuses {
		if status != http.StatusOK {
			t.Errorf("concurrent refresh %d: %d", i, status)
		}
	}
}

func TestLogoutRevokesTheFamily(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	r := s.Do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": a.Refresh})
	if r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("logout: %d %q", r.Status, r.Body)
	}
	r = s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": a.Refresh})
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	r = s.Do(t, "POST", "/v1/auth/logout", map[string]string{"refresh_token": "not-a-real-token"})
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	r = s.Do(t, "POST", "/v1/auth/logout", map[string]string{})
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
}

func TestTokensAreNotInterchangeable(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	r := s.Do(t, "GET", "/v1/auth/profile", nil, Bearer(a.Refresh)...)
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	r = s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": a.Access})
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
}

func TestProfileRoundTrip(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	r := s.Do(t, "GET", "/v1/auth/profile", nil, Bearer(a.Access)...)
	if r.Status != http.StatusOK || Str(r.JSON, "user", "id") != a.ID {
		t.Fatalf("profile: %d %s", r.Status, r.Body)
	}
	// PATCH changes only what it names.
	r = s.Do(t, "PATCH", "/v1/auth/profile",
		map[string]string{"email": "new_" + a.Email, "current_password": a.Password}, Bearer(a.Access)...)
	if r.Status != http.StatusOK || Str(r.JSON, "user", "email") != "new_"+a.Email || Str(r.JSON, "user", "username") != a.Username {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	// PUT is the same partial update.
	r = s.Do(t, "PUT", "/v1/auth/profile",
		map[string]string{"username": a.Username + "_2", "current_password": a.Password}, Bearer(a.Access)...)
	if r.Status != http.StatusOK || Str(r.JSON, "user", "username") != a.Username+"_2" || Str(r.JSON, "user", "email") != "new_"+a.Email {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, "PATCH", "/v1/auth/profile",
		map[string]string{"username": "zz", "email": "bad", "new_password": "weak"}, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
	fields := map[string]bool{}
	for _, v := range Violations(r) {
		fields[strings.SplitN(v, ":", 2)[0]] = true
	}
	for _, f := range []string{"username", "email", "new_password", "current_password"} {
		if !fields[f] {
			t.Errorf("no violation for %s in %q", f, Violations(r))
		}
	}
	r = s.Do(t, "PATCH", "/v1/auth/profile",
		map[string]string{"username": "anything_else", "current_password": "Wr0ngpass"}, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusForbidden, "PERMISSION_DENIED")
	b := s.NewAccount(t)
	r = s.Do(t, "PATCH", "/v1/auth/profile",
		map[string]string{"username": b.Username, "current_password": a.Password}, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusConflict, "ALREADY_EXISTS")
}

func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	other := s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": a.Password})
	r := s.Do(t, "PATCH", "/v1/auth/profile",
		map[string]string{"new_password": "N3wPassword", "current_password": a.Password}, Bearer(a.Access)...)
	if r.Status != http.StatusOK {
		t.Fatalf("change: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": Str(other.JSON, "tokens", "refresh_token")})
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	r = s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": a.Refresh})
	if r.Status != http.StatusOK {
		t.Errorf("own session: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": "N3wPassword"})
	if r.Status != http.StatusOK {
		t.Errorf("new password: %d", r.Status)
	}
}

func TestDeleteAccountRemovesTheUser(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	r := s.Do(t, "DELETE", "/v1/auth/profile", map[string]string{"current_password": "Wr0ngpass"}, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusForbidden, "PERMISSION_DENIED")
	r = s.Do(t, "DELETE", "/v1/auth/profile", map[string]string{"current_password": a.Password}, Bearer(a.Access)...)
	if r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("delete: %d %q", r.Status, r.Body)
	}
	r = s.Do(t, "GET", "/v1/auth/profile", nil, Bearer(a.Access)...)
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	r = s.Do(t, "POST", "/v1/auth/login", map[string]string{"login": a.Username, "password": a.Password})
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	r = s.Do(t, "POST", "/v1/auth/refresh", map[string]string{"refresh_token": a.Refresh})
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
	if out, _ := Psql(s.AdminURL, "SELECT count(*) FROM users WHERE id = '"+a.ID+"'"); out != "0" {
		t.Errorf("user row left: %s", out)
	}
}

// jwks fetches the JWK Set and returns the first key's kid and public key.
func jwks(t *testing.T, s *Stack) (string, *rsa.PublicKey) {
	t.Helper()
	r := s.Do(t, "GET", "/v1/auth/jwks", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("jwks: %d %s", r.Status, r.Body)
	}
	keys, _ := Get(r.JSON, "keys").([]any)
	if len(keys) == 0 {
		t.Fatalf("no keys: %s", r.Body)
	}
	k := keys[0]
	if Str(k, "kty") != "RSA" || Str(k, "alg") != "RS256" || Str(k, "use") != "sig" || Str(k, "kid") == "" {
		t.Fatalf("key %v", k)
	}
	n, _ := base64.RawURLEncoding.DecodeString(Str(k, "n"))
	e, _ := base64.RawURLEncoding.DecodeString(Str(k, "e"))
	return Str(k, "kid"), &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

func TestJwksVerifiesIssuedAccessTokens(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	kid, key := jwks(t, s)
	if key.N.Cmp(s.SigningKey.N) != 0 {
		t.Fatal("JWKS does not publish the signing key")
	}
	parts := strings.Split(a.Access, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q", a.Access)
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	json.Unmarshal(header, &h)
	if h["alg"] != "RS256" || h["kid"] != kid || h["typ"] != "at+jwt" {
		t.Errorf("header %v", h)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)
	for _, c := range []string{"iss", "aud", "sub", "iat", "nbf", "exp", "jti"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("claim %s missing in %v", c, claims)
		}
	}
	if claims["sub"] != a.ID {
		t.Errorf("sub %v, want %s", claims["sub"], a.ID)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 900 {
		t.Errorf("lifetime %v", exp-iat)
	}
}

func TestForgedAndInvalidAccessTokensAre401(t *testing.T) {
	s := SharedStack(t)
	a := s.NewAccount(t)
	kid, _ := jwks(t, s)
	now := time.Now().Unix()
	claims := func(change map[string]any) map[string]any {
		c := map[string]any{"iss": "chat-backend", "aud": "chat-backend", "sub": a.ID,
			"iat": now, "nbf": now, "exp": now + 600, "jti": "e2e"}
		for k, v := range change {
			c[k] = v
		}
		return c
	}
	header := map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": kid}

	// Our own forger signs a valid token: the harness is sound.
	valid := SignRS256(t, s.SigningKey, header, claims(nil))
	if r := s.Do(t, "GET", "/v1/auth/profile", nil, Bearer(valid)...); r.Status != http.StatusOK {
		t.Fatalf("forged-but-valid token refused: %d %s", r.Status, r.Body)
	}

	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubDER, _ := x509.MarshalPKIXPublicKey(&s.SigningKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	tampered := []byte(valid)
	tampered[len(tampered)-5] ^= 1

	cases := map[string]string{
		"missing":        "",
		"garbage":        "not.a.jwt",
		"expired":        SignRS256(t, s.SigningKey, header, claims(map[string]any{"exp": now - 120, "iat": now - 1000, "nbf": now - 1000})),
		"not yet valid":  SignRS256(t, s.SigningKey, header, claims(map[string]any{"nbf": now + 600})),
		"wrong issuer":   SignRS256(t, s.SigningKey, header, claims(map[string]any{"iss": "evil"})),
		"wrong audience": SignRS256(t, s.SigningKey, header, claims(map[string]any{"aud": "other"})),
		"tampered":       string(tampered),
		"unknown kid":    SignRS256(t, otherKey, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "unknown"}, claims(nil)),
		"other key":      SignRS256(t, otherKey, header, claims(nil)),
		"alg none": b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+kid+`"}`)) + "." +
			b64(mustJSON(claims(nil))) + ".",
		"hs256 with the public key": SignHS256(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid},
			claims(nil), pubPEM),
		"wrong typ": SignRS256(t, s.SigningKey, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, claims(nil)),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			var headers []string
			if token != "" {
				headers = Bearer(token)
			}
			r := s.Do(t, "GET", "/v1/auth/profile", nil, headers...)
			ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
		})
	}
	r := s.Do(t, "GET", "/v1/auth/profile", nil, "Authorization", "Basic "+a.Access)
	ExpectError(t, r, http.StatusUnauthorized, "UNAUTHENTICATED")
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
