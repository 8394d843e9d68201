package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
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
	dir := t.TempDir()
	h, err := newServer(config{Origin: "http://localhost:3000", Verifier: "http://127.0.0.1:1", Data: dir, SDK: dir},
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
