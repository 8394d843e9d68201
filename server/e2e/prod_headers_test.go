package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/passkey/passkeytest"
)

// Every answer that carries a secret, a code result or a token is no-store, never
// sniffed, sends no referrer, and is readable by exactly the app's origin: successes and
// refusals of every such endpoint.
func TestHeaders_EverySecretOrTokenAnswer_NoStoreNosniffNoReferrerExactOrigin(t *testing.T) {
	f := newAdminFixture(t)
	v := f.v
	type answer struct {
		name    string
		r       reply
		browser bool // carries CORS for the app's origin
	}
	var answers []answer
	add := func(name string, r reply, browser bool, wantStatus int) {
		t.Helper()
		if r.Status != wantStatus {
			t.Fatalf("%s: %d %s, want %d", name, r.Status, r.Raw, wantStatus)
		}
		answers = append(answers, answer{name, r, browser})
	}

	add("POST /v1/tickets", v.call("POST", "/v1/tickets", "Bearer "+v.APIKey, "", wire.TicketRequest{User: "hdr"}), false, 201)
	add("POST /v1/tickets refused", v.call("POST", "/v1/tickets", "Bearer nope", "", wire.TicketRequest{User: "hdr"}), false, 401)
	b := v.ticket("hdr")
	add("GET /v1/session", b.call("GET", "/v1/session", nil), true, 200)
	en := b.call("POST", "/v1/totp/enrollments", nil)
	add("POST /v1/totp/enrollments", en, true, 201)
	add("POST confirm wrong code", b.call("POST", "/v1/totp/enrollments/"+en.str("id")+"/confirm", wire.CodeRequest{Code: "000000"}), true, 401)
	conf := b.call("POST", "/v1/totp/enrollments/"+en.str("id")+"/confirm", wire.CodeRequest{Code: code(t, en.str("secret"), v.Clock.Now())})
	add("POST confirm", conf, true, 200)
	secret := en.str("secret")
	add("POST /v1/totp/verify wrong", b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: "000000"}), true, 401)
	c := code(t, secret, v.Clock.Now().Add(30*time.Second))
	add("POST /v1/totp/verify", b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: c}), true, 200)
	add("POST /v1/totp/verify replay", b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: c}), true, 409)
	add("POST /v1/recovery/verify wrong", b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: "aaaa-bbbb-cccc"}), true, 401)
	rc := conf.Body["recovery_codes"].([]any)[0].(string)
	add("POST /v1/recovery/verify", b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: rc}), true, 200)
	add("POST /v1/recovery/codes", b.call("POST", "/v1/recovery/codes", nil), true, 200)
	add("GET /v1/factors", b.call("GET", "/v1/factors", nil), true, 200)

	a := passkeytest.New(origin, "localhost")
	reg := b.call("POST", "/v1/webauthn/registrations", nil)
	add("POST /v1/webauthn/registrations", reg, true, 200)
	cred, err := a.Create(reg.Raw)
	if err != nil {
		t.Fatal(err)
	}
	add("POST /v1/webauthn/registrations/finish", b.call("POST", "/v1/webauthn/registrations/finish", cred), true, 201)
	login := b.call("POST", "/v1/webauthn/assertions", nil)
	add("POST /v1/webauthn/assertions", login, true, 200)
	assertion, err := a.Get(login.Raw)
	if err != nil {
		t.Fatal(err)
	}
	add("POST /v1/webauthn/assertions/finish", b.call("POST", "/v1/webauthn/assertions/finish", assertion), true, 200)
	add("POST /v1/webauthn/assertions/finish garbage", b.call("POST", "/v1/webauthn/assertions/finish", []byte(`{"id":"x"}`)), true, 401)
	add("ticket refused", v.call("GET", "/v1/session", "Ticket nope", origin, nil), true, 401)

	add("admin reset refused", f.reset("alice", "?app=shop", "Bearer "+f.opsKey, "not-a-token", map[string]string{"reason": "r"}), false, 403)
	add("admin reset", f.reset("alice", "?app=shop", "Bearer "+f.opsKey, f.root.Token, map[string]string{"reason": "lost phone"}), false, 200)
	add("GET /metrics", v.call("GET", "/metrics", "", "", nil), false, 200)

	for _, a := range answers {
		h := a.r.Header
		if got := h.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", a.name, got)
		}
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", a.name, got)
		}
		if got := h.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q", a.name, got)
		}
		acao := h.Values("Access-Control-Allow-Origin")
		switch {
		case a.browser && (len(acao) != 1 || acao[0] != origin):
			t.Errorf("%s: Access-Control-Allow-Origin %q, want exactly %q", a.name, acao, origin)
		case !a.browser && len(acao) != 0:
			t.Errorf("%s: Access-Control-Allow-Origin %q on a server-to-server answer", a.name, acao)
		}
		if a.browser && !strings.Contains(h.Get("Vary"), "Origin") {
			t.Errorf("%s: Vary %q lacks Origin", a.name, h.Get("Vary"))
		}
	}
}

// CORS answers only the origins an app lists: never a wildcard, never an echo of a
// stranger's origin, on preflights and real calls alike.
func TestHeaders_CORS_OnlyTheAppsOrigins(t *testing.T) {
	v := startVerifier(t)
	b := v.ticket("cors")
	preflight := func(from string) http.Header {
		req, _ := http.NewRequest("OPTIONS", v.URL+"/v1/totp/verify", nil)
		req.Header.Set("Origin", from)
		req.Header.Set("Access-Control-Request-Method", "POST")
		return do(t, req).Header
	}
	for _, tc := range []struct {
		name string
		h    http.Header
		want string
	}{
		{"preflight from the app's origin", preflight(origin), origin},
		{"preflight from a stranger", preflight("https://evil.example"), ""},
		{"preflight with null origin", preflight("null"), ""},
		{"call from a stranger", v.call("GET", "/v1/session", "Ticket "+b.ticket, "https://evil.example", nil).Header, ""},
		{"call from the app's origin", b.call("GET", "/v1/session", nil).Header, origin},
		{"public endpoint", v.call("GET", "/.well-known/jwks.json", "", "https://evil.example", nil).Header, ""},
	} {
		if got := tc.h.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", tc.name, got, tc.want)
		}
		if tc.h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: credentials allowed", tc.name)
		}
	}
}
