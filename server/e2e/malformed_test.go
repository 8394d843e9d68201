package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Every endpoint, every kind of broken body: a 4xx JSON error with a message, never a 5xx,
// and afterwards the user's state is exactly what it was.
func TestMalformedBodies_EveryEndpoint_4xxJSONAndNothingChanges(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("wendy")
	enr := v.ticket("wendy") // a pending enrollment needs an elevated ticket
	if r := enr.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[9]}); r.Status != 200 {
		t.Fatalf("elevate: %d %s", r.Status, r.Raw)
	}
	pending := enr.call("POST", "/v1/totp/enrollments", nil).str("id")
	fid := v.factors(e.browser)[0]

	bodies := map[string][]byte{
		"bad json":      []byte(`{"code":`),
		"array":         []byte(`[1,2,3]`),
		"string":        []byte(`"123456"`),
		"wrong types":   []byte(`{"code":123456,"user":["x"],"label":{},"nonce":7,"replaces":false}`),
		"nulls":         []byte(`{"code":null,"user":null,"label":null}`),
		"null":          []byte(`null`),
		"nul bytes":     []byte("{\"code\":\"12\\u00003456\",\"user\":\"a\\u0000b\",\"label\":\"x\\u0000\"}"),
		"raw nul":       []byte("{\"code\":\"12\x003456\"}"),
		"huge strings":  []byte(`{"code":"` + strings.Repeat("9", 60000) + `","user":"` + strings.Repeat("u", 3000) + `"}`),
		"2 MiB":         bytes.Repeat([]byte("A"), 2<<20),
		"invalid utf-8": []byte("{\"code\":\"\xff\xfe\xfd\",\"user\":\"\xc3\x28\",\"label\":\"\xed\xa0\x80\"}"),
		"empty":         nil,
		"deep nesting":  []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)),
		"user ..":       []byte(`{"user":".."}`),
	}
	endpoints := []struct {
		method, path string
		app          bool // authenticated with the API key rather than a ticket
	}{
		{"POST", "/v1/tickets", true},
		{"GET", "/v1/session", false},
		{"POST", "/v1/totp/enrollments", false},
		{"POST", "/v1/totp/enrollments/" + pending + "/confirm", false},
		{"POST", "/v1/totp/verify", false},
		{"POST", "/v1/recovery/verify", false},
		{"POST", "/v1/recovery/codes", false},
		{"GET", "/v1/factors", false},
		{"DELETE", "/v1/factors/" + fid, false},
		{"POST", "/v1/webauthn/registrations", false},
		{"POST", "/v1/webauthn/registrations/finish", false},
		{"POST", "/v1/webauthn/assertions", false},
		{"POST", "/v1/webauthn/assertions/finish", false},
		{"POST", "/v1/origin-refusals", false},
		{"PUT", "/v1/users/wendy/policy", true},
		{"POST", "/v1/admin/users/wendy/reset", true},
	}
	before := snapshot(v, e)
	for _, ep := range endpoints {
		for name, body := range bodies {
			b := v.ticket("wendy") // not elevated: nothing here may pass
			auth := "Ticket " + b.ticket
			if ep.app {
				auth = "Bearer " + v.APIKey
			}
			r := v.call(ep.method, ep.path, auth, origin, body)
			if r.Status >= 500 {
				t.Errorf("%s %s with %s: %d %s", ep.method, ep.path, name, r.Status, r.Raw)
				continue
			}
			if r.Status >= 200 && r.Status < 300 {
				// Only reads, and creating a ticket or an enrollment from an empty or
				// tolerable body, may succeed; nothing that changes a factor.
				if ep.method == "GET" || (ep.path == "/v1/totp/enrollments" && name == "empty") ||
					(ep.path == "/v1/webauthn/assertions" && name == "empty") {
					continue
				}
				t.Errorf("%s %s with %s succeeded: %d %s", ep.method, ep.path, name, r.Status, r.Raw)
				continue
			}
			if r.errCode() == "" || r.str("message") == "" {
				t.Errorf("%s %s with %s: %d without a JSON error: %.200s", ep.method, ep.path, name, r.Status, r.Raw)
			}
		}
	}
	if after := snapshot(v, e); after != before {
		t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
	}
	// The user can still sign in with the next code.
	if r := v.ticket("wendy").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("sign-in after the malformed requests: %d %s", r.Status, r.Raw)
	}
}

// snapshot is what a user's second-factor state looks like from outside.
func snapshot(v *verifier, e enrolled) string {
	b := v.ticket("wendy")
	s := b.call("GET", "/v1/session", nil)
	f := b.call("GET", "/v1/factors", nil)
	return string(mustJSON(s.Body["factors"])) + " " + string(f.Raw)
}
