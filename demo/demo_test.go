package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The demo's own first factor and its page safety; the whole journey with the verifier
// and Chromium is server/e2e/demo_journey_test.go.

func TestPassword_Argon2idPHC_ChecksOnlyTheRightPassword(t *testing.T) {
	h, err := hashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if !checkPassword(h, "correct horse") || checkPassword(h, "correct horsf") || checkPassword(h, "") {
		t.Fatal("the check does not tell the right password from wrong ones")
	}
	if h2, _ := hashPassword("correct horse"); h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if checkPassword("$argon2i$v=19$m=19456,t=2,p=1$AAAA$AAAA", "x") || checkPassword("garbage", "x") {
		t.Fatal("a malformed hash passed")
	}
}

type demoFixture struct {
	t      *testing.T
	h      http.Handler
	cookie *http.Cookie
	csrf   string
}

func newFixture(t *testing.T) *demoFixture {
	t.Helper()
	return newFixtureWith(t, "http://127.0.0.1:1")
}

// newFixtureWith is a demo whose verifier is at verifier.
func newFixtureWith(t *testing.T, verifier string) *demoFixture {
	t.Helper()
	dir := t.TempDir()
	h, err := newServer(config{Origin: "http://localhost:3000", Verifier: verifier, Data: dir, SDK: dir},
		"demo", "demo.key", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f := &demoFixture{t: t, h: h}
	res := f.do(httptest.NewRequest("GET", "http://localhost:3000/signin", nil))
	if res.Code != 200 {
		t.Fatalf("GET /signin: %d", res.Code)
	}
	f.csrf = regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(res.Body.String())[1]
	f.cookie = res.Result().Cookies()[0]
	return f
}

func (f *demoFixture) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func (f *demoFixture) signIn(user, password, csrf, origin string) *httptest.ResponseRecorder {
	form := url.Values{"username": {user}, "password": {password}, "csrf": {csrf}}
	r := httptest.NewRequest("POST", "http://localhost:3000/signin", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	r.AddCookie(f.cookie)
	return f.do(r)
}

func TestPages_StrictCSPAndNoFraming(t *testing.T) {
	f := newFixture(t)
	res := f.do(httptest.NewRequest("GET", "http://localhost:3000/signin", nil))
	csp := res.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self' 'wasm-unsafe-eval';", "frame-ancestors 'none'", "connect-src 'self' http://127.0.0.1:1", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(res.Body.String(), "<script>") || regexp.MustCompile(`\son[a-z]+=`).MatchString(res.Body.String()) {
		t.Error("the page has inline script")
	}
	if c := f.cookie; !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie %+v", c)
	}
}

func TestSignIn_CSRFAndOriginChecked(t *testing.T) {
	f := newFixture(t)
	if res := f.signIn("alice", seedPassword, "", "http://localhost:3000"); res.Code != 403 {
		t.Errorf("without the CSRF token: %d", res.Code)
	}
	if res := f.signIn("alice", seedPassword, f.csrf+"x", "http://localhost:3000"); res.Code != 403 {
		t.Errorf("with a wrong CSRF token: %d", res.Code)
	}
	if res := f.signIn("alice", seedPassword, f.csrf, "http://evil.localhost:3000"); res.Code != 403 {
		t.Errorf("from another origin: %d", res.Code)
	}
	if res := f.signIn("alice", "wrong", f.csrf, "http://localhost:3000"); res.Code != 401 || !strings.Contains(res.Body.String(), "do not match") {
		t.Errorf("a wrong password: %d", res.Code)
	}
	if res := f.signIn("nobody", seedPassword, f.csrf, "http://localhost:3000"); res.Code != 401 {
		t.Errorf("an unknown user: %d", res.Code)
	}
	res := f.signIn("alice", seedPassword, f.csrf, "http://localhost:3000")
	if res.Code != 303 || res.Header().Get("Location") != "/2fa" {
		t.Fatalf("the right password: %d %s", res.Code, res.Header().Get("Location"))
	}
	// The signed-in-with-password session is a new one, with a new CSRF token.
	var next *http.Cookie
	for _, c := range res.Result().Cookies() {
		next = c
	}
	if next == nil || next.Value == f.cookie.Value {
		t.Fatal("no new session after the password")
	}
}

func TestSession_TamperedCookie_Anonymous(t *testing.T) {
	f := newFixture(t)
	res := f.signIn("alice", seedPassword, f.csrf, "")
	sess := res.Result().Cookies()[0]
	b := []byte(sess.Value)
	b[len(b)/2] ^= 1
	r := httptest.NewRequest("GET", "http://localhost:3000/", nil)
	r.AddCookie(&http.Cookie{Name: cookieName, Value: string(b)})
	if got := f.do(r).Header().Get("Location"); got != "/signin" {
		t.Fatalf("a tampered session went to %s", got)
	}
	r = httptest.NewRequest("GET", "http://localhost:3000/", nil)
	r.AddCookie(sess)
	if got := f.do(r).Header().Get("Location"); got != "/2fa" {
		t.Fatalf("the real session went to %s", got)
	}
}

func TestToken_NeedsASessionAndCSRF(t *testing.T) {
	f := newFixture(t)
	r := httptest.NewRequest("POST", "http://localhost:3000/2fa/token", strings.NewReader(`{"token":"x"}`))
	r.Header.Set("X-CSRF-Token", f.csrf)
	r.AddCookie(f.cookie)
	if res := f.do(r); res.Code != 403 {
		t.Fatalf("a token posted before the password: %d", res.Code)
	}
}

func TestOtherHostName_SentToTheOrigin(t *testing.T) {
	f := newFixture(t)
	res := f.do(httptest.NewRequest("GET", "http://127.0.0.1:3000/signin?x=1", nil))
	if res.Code != 307 || res.Header().Get("Location") != "http://localhost:3000/signin?x=1" {
		t.Fatalf("%d %s", res.Code, res.Header().Get("Location"))
	}
}

func TestSignIn_TenWrongPasswords_ThenRefusedEvenTheRightOne(t *testing.T) {
	f := newFixture(t)
	for i := range 10 {
		if res := f.signIn("bob", "wrong", f.csrf, ""); res.Code != 401 {
			t.Fatalf("wrong password %d: %d", i, res.Code)
		}
	}
	if res := f.signIn("bob", seedPassword, f.csrf, ""); res.Code != 429 || !strings.Contains(res.Body.String(), "Too many") {
		t.Fatalf("the right password after 10 wrong ones: %d", res.Code)
	}
}

// fakeVerifier answers the calls the demo's backend makes (tickets, the JWKS, events) and
// signs the token a person would get for their last ticket's nonce: enough to bring a
// session to signed in without a browser.
type fakeVerifier struct {
	*httptest.Server
	key ed25519.PrivateKey

	mu     sync.Mutex
	nonces map[string]string // user → nonce of their last ticket
}

func newFakeVerifier(t *testing.T) *fakeVerifier {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	v := &fakeVerifier{key: key, nonces: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tickets", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ User, Nonce string }
		json.NewDecoder(r.Body).Decode(&body)
		v.mu.Lock()
		v.nonces[body.User] = body.Nonce
		v.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"ticket": randomString(32), "expires_at": time.Now().Add(10 * time.Minute)})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		x := base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "k1", "x": x}}})
	})
	mux.HandleFunc("GET /v1/users/{user}/events", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"events":[]}`)
	})
	v.Server = httptest.NewServer(mux)
	t.Cleanup(v.Close)
	return v
}

// token is what the SDK would hand the page after user passed a code.
func (v *fakeVerifier) token(user string) string {
	v.mu.Lock()
	nonce := v.nonces[user]
	v.mu.Unlock()
	now := time.Now().Unix()
	enc := func(x any) string { b, _ := json.Marshal(x); return base64.RawURLEncoding.EncodeToString(b) }
	msg := enc(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": "k1"}) + "." + enc(map[string]any{
		"iss": v.URL, "sub": user, "aud": "demo", "iat": now, "nbf": now, "exp": now + 300,
		"jti": randomString(16), "auth_time": now, "amr": []string{"otp"}, "acr": "mfa", "nonce": nonce})
	return msg + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(v.key, []byte(msg)))
}

// sessionCookie is the session cookie res set.
func sessionCookie(t *testing.T, res *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range res.Result().Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	t.Fatalf("no session cookie in the answer %d", res.Code)
	return nil
}

var pageCSRF = regexp.MustCompile(`data-csrf="([^"]+)"`)

// Signing out ends the session on the server: the cookie from before, copied out of the
// browser (another machine, a stolen backup), no longer opens it, at any stage it was
// copied, though it would still open and has hours left.
func TestSignOut_CopiedCookieReplayed_SignedOut(t *testing.T) {
	fv := newFakeVerifier(t)
	f := newFixtureWith(t, fv.URL)
	get := func(path string, c *http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://localhost:3000"+path, nil)
		r.AddCookie(c)
		return f.do(r)
	}
	post := func(path string, c *http.Cookie, csrf, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "http://localhost:3000"+path, strings.NewReader(body))
		r.Header.Set("Origin", "http://localhost:3000")
		r.Header.Set("X-CSRF-Token", csrf)
		r.AddCookie(c)
		return f.do(r)
	}

	res := f.signIn("alice", seedPassword, f.csrf, "http://localhost:3000")
	if res.Code != 303 {
		t.Fatalf("password: %d", res.Code)
	}
	afterPassword := sessionCookie(t, res)
	res = get("/2fa", afterPassword)
	if res.Code != 200 {
		t.Fatalf("GET /2fa: %d %s", res.Code, res.Body)
	}
	csrfPassword := pageCSRF.FindStringSubmatch(res.Body.String())[1]
	res = post("/2fa/token", sessionCookie(t, res), csrfPassword, `{"token":"`+fv.token("alice")+`"}`)
	if res.Code != 200 || !strings.Contains(res.Body.String(), "/account") {
		t.Fatalf("the token: %d %s", res.Code, res.Body)
	}
	res = get("/account", sessionCookie(t, res))
	if res.Code != 200 || !strings.Contains(res.Body.String(), "Signed in as") {
		t.Fatalf("GET /account signed in: %d %s", res.Code, res.Body)
	}
	signedIn := sessionCookie(t, res) // what a thief copies
	// Passing the second factor is a change of privilege: the session from before it ends.
	if res := get("/", afterPassword); res.Header().Get("Location") != "/signin" {
		t.Errorf("the cookie copied after the password went to %s once the second factor passed, not /signin", res.Header().Get("Location"))
	}
	csrf := pageCSRF.FindStringSubmatch(res.Body.String())[1]
	if res := get("/account", signedIn); res.Code != 200 {
		t.Fatalf("the copy before sign-out: %d", res.Code)
	}

	res = post("/signout", signedIn, csrf, "")
	if res.Code != 303 || res.Header().Get("Location") != "/signin?notice=signed-out" {
		t.Fatalf("sign out: %d %s", res.Code, res.Header().Get("Location"))
	}
	for _, tc := range []struct {
		name   string
		cookie *http.Cookie
		csrf   string
	}{{"SignedIn", signedIn, csrf}, {"AfterThePasswordOnly", afterPassword, csrfPassword}} {
		if res := get("/account", tc.cookie); res.Code == 200 {
			t.Errorf("%s: the cookie copied before sign-out opened /account after it", tc.name)
		}
		if res := get("/", tc.cookie); res.Header().Get("Location") != "/signin" {
			t.Errorf("%s: the cookie copied before sign-out went to %s, not /signin", tc.name, res.Header().Get("Location"))
		}
		if res := post("/2fa/token", tc.cookie, tc.csrf, `{"token":"`+fv.token("alice")+`"}`); res.Code != 403 {
			t.Errorf("%s: a token posted with the cookie copied before sign-out: %d", tc.name, res.Code)
		}
	}
	// Signing in again starts a new session that works.
	res = f.signIn("alice", seedPassword, f.csrf, "http://localhost:3000")
	if res := get("/", sessionCookie(t, res)); res.Header().Get("Location") != "/2fa" {
		t.Errorf("a new sign-in after sign-out went to %s", res.Header().Get("Location"))
	}
}
