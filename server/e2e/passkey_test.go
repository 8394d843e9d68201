package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/passkey/passkeytest"
	"github.com/twofold-dev/twofold/server/internal/serve"
)

// elevated is a signed-in browser of a user with TOTP, past its second factor.
func (v *verifier) elevated(user string) (browser, enrolled) {
	v.t.Helper()
	e := v.enroll(user)
	b := v.ticket(user)
	if r := b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(v.t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		v.t.Fatalf("step-up: %d %s", r.Status, r.Raw)
	}
	return b, e
}

// registerPasskey runs a whole registration with a software authenticator.
func (v *verifier) registerPasskey(b browser, a *passkeytest.Authenticator) string {
	v.t.Helper()
	opts := b.call("POST", "/v1/webauthn/registrations", nil)
	if opts.Status != 200 {
		v.t.Fatalf("begin registration: %d %s", opts.Status, opts.Raw)
	}
	cred, err := a.Create(opts.Raw)
	if err != nil {
		v.t.Fatal(err)
	}
	r := b.call("POST", "/v1/webauthn/registrations/finish?label=Key", cred)
	if r.Status != 201 || r.str("id") == "" {
		v.t.Fatalf("finish registration: %d %s", r.Status, r.Raw)
	}
	return r.str("id")
}

// assertion begins a login and lets the authenticator answer it.
func (v *verifier) assertion(b browser, a *passkeytest.Authenticator) []byte {
	v.t.Helper()
	opts := b.call("POST", "/v1/webauthn/assertions", nil)
	if opts.Status != 200 {
		v.t.Fatalf("begin login: %d %s", opts.Status, opts.Raw)
	}
	body, err := a.Get(opts.Raw)
	if err != nil {
		v.t.Fatal(err)
	}
	return body
}

func TestPasskey_RegisterThenLogin_TokenSaysHardwareKeyAndUserVerified(t *testing.T) {
	v := startVerifier(t)
	b, _ := v.elevated("ada")
	a := passkeytest.New(origin, "localhost")
	id := v.registerPasskey(b, a)

	lb := v.ticket("ada")
	if s := lb.call("GET", "/v1/session", nil); s.Body["factors"].(map[string]any)["passkeys"] != float64(1) {
		t.Errorf("session: %s", s.Raw)
	}
	r := lb.call("POST", "/v1/webauthn/assertions/finish", v.assertion(lb, a))
	if r.Status != 200 {
		t.Fatalf("login: %d %s", r.Status, r.Raw)
	}
	claims := joseVerify(t, v, "shop", r.str("token"))
	if amr, _ := json.Marshal(claims["amr"]); string(amr) != `["hwk","user"]` || claims["acr"] != "phr" {
		t.Errorf("amr %s acr %v, want [hwk user] and phr", amr, claims["acr"])
	}
	// A passkey is a complete second factor: the ticket is elevated, no TOTP prompt follows.
	if s := lb.call("GET", "/v1/session", nil); s.Body["elevated"] != true {
		t.Errorf("not elevated after a passkey: %s", s.Raw)
	}
	found := false
	for _, f := range v.factors(lb) {
		found = found || f == id
	}
	if !found {
		t.Errorf("passkey %s not among the factors", id)
	}

	// A synced (backup-eligible) passkey is a software key.
	a2 := passkeytest.New(origin, "localhost")
	a2.BE, a2.BS = true, true
	v.registerPasskey(lb, a2)
	r = v.ticket("ada").call("POST", "/v1/webauthn/assertions/finish", v.assertion(v.ticket("ada"), a2))
	if r.Status != 400 || r.errCode() != wire.CodeChallengeExpired {
		t.Fatalf("an answer to another ticket's challenge: %d %s", r.Status, r.Raw)
	}
	b2 := v.ticket("ada")
	r = b2.call("POST", "/v1/webauthn/assertions/finish", v.assertion(b2, a2))
	if r.Status != 200 {
		t.Fatalf("synced passkey login: %d %s", r.Status, r.Raw)
	}
	if amr, _ := json.Marshal(joseVerify(t, v, "shop", r.str("token"))["amr"]); string(amr) != `["swk","user"]` {
		t.Errorf("synced passkey amr %s, want [swk user]", amr)
	}
}

func TestPasskey_RegistrationWithoutElevatedTicket_Refused(t *testing.T) {
	v := startVerifier(t)
	v.enroll("bea")
	b := v.ticket("bea")
	for _, path := range []string{"/v1/webauthn/registrations", "/v1/webauthn/registrations/finish"} {
		if r := b.call("POST", path, map[string]any{}); r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
			t.Errorf("%s: %d %s", path, r.Status, r.Raw)
		}
	}
}

func TestPasskey_BadAssertions_Refused(t *testing.T) {
	v := startVerifier(t)
	b, _ := v.elevated("cleo")
	a := passkeytest.New(origin, "localhost")
	v.registerPasskey(b, a)

	cases := []struct {
		name   string
		answer func(b browser) []byte
		status int
		code   string
	}{
		{"ReplayedAssertion", func(b browser) []byte {
			body := v.assertion(b, a)
			if r := b.call("POST", "/v1/webauthn/assertions/finish", body); r.Status != 200 {
				t.Fatalf("first use: %d %s", r.Status, r.Raw)
			}
			return body
		}, 400, wire.CodeChallengeExpired},
		{"ChallengeReusedWithAFreshSignature", func(b browser) []byte {
			opts := b.call("POST", "/v1/webauthn/assertions", nil)
			first, _ := a.Get(opts.Raw)
			if r := b.call("POST", "/v1/webauthn/assertions/finish", first); r.Status != 200 {
				t.Fatalf("first use: %d %s", r.Status, r.Raw)
			}
			again, _ := a.Get(opts.Raw)
			return again
		}, 400, wire.CodeChallengeExpired},
		{"WrongOrigin", func(b browser) []byte {
			a.Origin = "http://evil.localhost:3000"
			defer func() { a.Origin = origin }()
			return v.assertion(b, a)
		}, 401, wire.CodeInvalidPasskey},
		{"WrongRPID", func(b browser) []byte {
			a.RPID = "evil.example"
			defer func() { a.RPID = "localhost" }()
			return v.assertion(b, a)
		}, 401, wire.CodeInvalidPasskey},
		{"ExpiredChallenge", func(b browser) []byte {
			body := v.assertion(b, a)
			v.Clock.Advance(5*time.Minute + time.Second)
			return body
		}, 400, wire.CodeChallengeExpired},
		{"NoUserVerificationWhereRequired", func(b browser) []byte {
			a.UV = false // a stolen security key touched, its PIN not known
			defer func() { a.UV = true }()
			return v.assertion(b, a)
		}, 401, wire.CodeInvalidPasskey},
		{"CounterRegression", func(b browser) []byte {
			a.Count = 0 // a clone that does not know how often the original signed
			return v.assertion(b, a)
		}, 401, wire.CodeInvalidPasskey},
		{"NotACredential", func(b browser) []byte { return []byte(`{"id":"x"}`) }, 401, wire.CodeInvalidPasskey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v.Clock.Advance(16 * time.Minute) // past the back-off earlier refusals earned
			b := v.ticket("cleo")
			r := b.call("POST", "/v1/webauthn/assertions/finish", tc.answer(b))
			if r.Status != tc.status || r.errCode() != tc.code {
				t.Errorf("got %d %s, want %d %s", r.Status, r.Raw, tc.status, tc.code)
			}
			if s := b.call("GET", "/v1/session", nil); s.Body["elevated"] == true && tc.name != "ReplayedAssertion" && tc.name != "ChallengeReusedWithAFreshSignature" {
				t.Errorf("a refused answer elevated the ticket")
			}
		})
	}
}

// One assertion sent ten times at once (a double click, or a relay racing the browser):
// the ceremony is taken once, so exactly one signs in; the others are told the request
// was already used, or, each having counted as a failed attempt, to wait.
func TestPasskey_SameAssertionTenTimesAtOnce_OneSignsIn(t *testing.T) {
	v := startVerifier(t)
	b, _ := v.elevated("dina")
	a := passkeytest.New(origin, "localhost")
	v.registerPasskey(b, a)
	lb := v.ticket("dina")
	body := v.assertion(lb, a)
	status := make([]int, 10)
	var wg sync.WaitGroup
	for i := range status {
		wg.Go(func() {
			r := lb.call("POST", "/v1/webauthn/assertions/finish", body)
			status[i] = r.Status
			if code := r.errCode(); r.Status != 200 && code != wire.CodeChallengeExpired && code != wire.CodeRateLimited {
				t.Errorf("answer %d: %d %s", i, r.Status, r.Raw)
			}
		})
	}
	wg.Wait()
	slices.Sort(status)
	if status[0] != 200 || status[1] == 200 {
		t.Fatalf("answers %v, want exactly one 200", status)
	}
}

func TestPasskey_PasskeyOnlyPolicy_TOTPRefusedAndDestroyed(t *testing.T) {
	v := startVerifier(t)
	b, e := v.elevated("dora")
	a := passkeytest.New(origin, "localhost")
	v.registerPasskey(b, a)
	if r := v.call("PUT", "/v1/users/dora/policy", "Bearer "+v.APIKey, "", wire.PolicyRequest{Policy: "passkey_only"}); r.Status != 204 {
		t.Fatalf("set policy: %d %s", r.Status, r.Raw)
	}
	r := v.ticket("dora").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(60*time.Second))})
	if r.Status != 403 || r.errCode() != wire.CodePasskeyRequired {
		t.Fatalf("a valid TOTP code under passkey_only: %d %s, want 403 passkey_required", r.Status, r.Raw)
	}
	if ids := v.factors(b); len(ids) != 1 {
		t.Fatalf("factors under passkey_only: %v; the TOTP secret should be gone", ids)
	}
	// Destroying the secrets changed the user's factors: b passes a second factor again.
	if r := b.call("DELETE", "/v1/factors/"+v.factors(b)[0], nil); r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
		t.Fatalf("a ticket elevated before passkey_only deletes a factor: %d %s", r.Status, r.Raw)
	}
	b2 := v.ticket("dora")
	if r := b2.call("POST", "/v1/webauthn/assertions/finish", v.assertion(b2, a)); r.Status != 200 {
		t.Fatalf("passkey login: %d %s", r.Status, r.Raw)
	}
	if r := b2.call("DELETE", "/v1/factors/"+v.factors(b2)[0], nil); r.Status != 409 || r.errCode() != wire.CodeLastFactor {
		t.Fatalf("deleting the last factor (a passkey): %d %s", r.Status, r.Raw)
	}
}

// Ceremony state lives in the store: a registration begun on one verifier instance
// finishes on another sharing the database.
func TestPasskey_RegistrationBegunOnOneInstance_FinishesOnAnother(t *testing.T) {
	v := startVerifier(t)
	b, _ := v.elevated("ella")
	other := v.sibling()
	opts := b.call("POST", "/v1/webauthn/registrations", nil)
	cred, err := passkeytest.New(origin, "localhost").Create(opts.Raw)
	if err != nil {
		t.Fatal(err)
	}
	ob := browser{v: other, ticket: b.ticket, origin: origin}
	if r := ob.call("POST", "/v1/webauthn/registrations/finish", cred); r.Status != 201 {
		t.Fatalf("finish on the other instance: %d %s", r.Status, r.Raw)
	}
	if r := b.call("POST", "/v1/webauthn/registrations/finish", cred); r.Status != 400 {
		t.Fatalf("the same answer again on the first instance: %d %s", r.Status, r.Raw)
	}
}

// With direct attestation, an app takes only the authenticator models on its allow-list.
func TestPasskey_DirectAttestation_OnlyAllowedModelsRegister(t *testing.T) {
	v := startVerifier(t)
	allowed := [16]byte{0xee, 0x88, 0x28, 0x79}
	env, err := serve.Open(context.Background(), v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.APIKey, err = env.MFA.CreateApp(context.Background(), mfa.NewApp{
		ID: "bank", Origins: []string{origin}, Attestation: "direct", AAGUIDs: []string{hex.EncodeToString(allowed[:])},
	})
	env.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := v.elevated("finn")
	for _, tc := range []struct {
		name   string
		attest bool
		aaguid [16]byte
		status int
	}{
		{"NoAttestation", false, allowed, 401},
		{"ModelNotOnTheList", true, [16]byte{1}, 401},
		{"AllowedModel", true, allowed, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := passkeytest.New(origin, "localhost")
			a.SelfAttest, a.AAGUID = tc.attest, tc.aaguid
			opts := b.call("POST", "/v1/webauthn/registrations", nil)
			cred, err := a.Create(opts.Raw)
			if err != nil {
				t.Fatal(err)
			}
			if r := b.call("POST", "/v1/webauthn/registrations/finish", cred); r.Status != tc.status {
				t.Fatalf("got %d %s, want %d", r.Status, r.Raw, tc.status)
			}
		})
	}
}

// An app whose first origin is an IP address takes its RP ID from the next origin with a
// host name; one with none is told why passkeys are unavailable, not a 500.
func TestPasskey_IPOrigins_RPIDFromAHostNameOrAClearRefusal(t *testing.T) {
	v := startVerifier(t)
	env, err := serve.Open(context.Background(), v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	mixed, err := env.MFA.CreateApp(context.Background(), mfa.NewApp{ID: "mixed", Origins: []string{"http://127.0.0.1:3000", origin}})
	if err != nil {
		t.Fatal(err)
	}
	ipOnly, err := env.MFA.CreateApp(context.Background(), mfa.NewApp{ID: "iponly", Origins: []string{"http://127.0.0.1:3000"}})
	env.Close()
	if err != nil {
		t.Fatal(err)
	}
	v.APIKey = mixed
	b, _ := v.elevated("hal")
	v.registerPasskey(b, passkeytest.New(origin, "localhost"))

	v.APIKey = ipOnly
	ib := v.ticket("ivo")
	ib.origin = "http://127.0.0.1:3000"
	en := ib.call("POST", "/v1/totp/enrollments", nil)
	if r := ib.call("POST", "/v1/totp/enrollments/"+en.str("id")+"/confirm", wire.CodeRequest{Code: code(t, en.str("secret"), v.Clock.Now())}); r.Status != 200 {
		t.Fatalf("enroll and step up: %d %s", r.Status, r.Raw)
	}
	if r := ib.call("POST", "/v1/webauthn/registrations", nil); r.Status != 409 || r.errCode() != wire.CodeConflict {
		t.Fatalf("passkeys for an IP-only app: %d %s", r.Status, r.Raw)
	}
}

// A user whose only factor is a passkey (they removed their authenticator app) is not a
// user without a second factor: someone holding only their password, and so a fresh
// ticket, must not enroll an authenticator of their own and sign in with it.
func TestPasskey_OnlyFactor_EnrollingAnAppNeedsStepUp(t *testing.T) {
	v := startVerifier(t)
	b, _ := v.elevated("ivy")
	key := passkeytest.New(origin, "localhost")
	v.registerPasskey(b, key)
	app := v.factors(b)[0]
	if r := b.call("DELETE", "/v1/factors/"+app, nil); r.Status != 204 {
		t.Fatalf("removing the app: %d %s", r.Status, r.Raw)
	}
	stranger := v.ticket("ivy") // the first factor passed, not the second
	if r := stranger.call("POST", "/v1/totp/enrollments", nil); r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
		t.Fatalf("enrolling an app without the passkey: %d %s, want 403 step_up_required", r.Status, r.Raw)
	}
	// With the passkey first, the same ticket may.
	if r := stranger.call("POST", "/v1/webauthn/assertions/finish", v.assertion(stranger, key)); r.Status != 200 {
		t.Fatalf("passkey: %d %s", r.Status, r.Raw)
	}
	if r := stranger.call("POST", "/v1/totp/enrollments", nil); r.Status != 201 {
		t.Fatalf("enrolling an app after the passkey: %d %s, want 201", r.Status, r.Raw)
	}
}

// A registration's challenge is answered once, even by a refused answer: a credential
// created for another origin is refused, and a good one for the same challenge after it
// is told to start again.
func TestPasskey_RegistrationChallenge_RefusedAnswerUsesItUp(t *testing.T) {
	v := startVerifier(t)
	b, _ := v.elevated("ria")
	opts := b.call("POST", "/v1/webauthn/registrations", nil)
	if opts.Status != 200 {
		t.Fatalf("begin: %d %s", opts.Status, opts.Raw)
	}
	a := passkeytest.New("http://phish.example", "localhost")
	phished, err := a.Create(opts.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.call("POST", "/v1/webauthn/registrations/finish", phished); r.Status != 401 || r.errCode() != wire.CodeInvalidPasskey {
		t.Fatalf("a credential made for another origin: %d %s, want 401 invalid_passkey", r.Status, r.Raw)
	}
	a.Origin = origin
	good, err := a.Create(opts.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.call("POST", "/v1/webauthn/registrations/finish", good); r.Status != 400 || r.errCode() != wire.CodeChallengeExpired {
		t.Fatalf("a second answer to the same challenge: %d %s, want 400 challenge_expired", r.Status, r.Raw)
	}
	if ids := v.factors(b); len(ids) != 1 {
		t.Fatalf("factors = %v, want the app only", ids)
	}
}

// The relying party ID defaults to the first origin given, as `apps create --help` says;
// the store keeps origins as a set, so it is chosen when the app is created.
func TestCreateApp_DefaultRPID_IsTheFirstOriginGiven(t *testing.T) {
	v := startVerifier(t)
	env := v.env()
	if _, err := env.MFA.CreateApp(t.Context(), mfa.NewApp{ID: "zz", Origins: []string{"https://zeta.example.com", "https://alpha.example.com"}}); err != nil {
		t.Fatal(err)
	}
	app, err := env.Store.App(t.Context(), "zz")
	if err != nil {
		t.Fatal(err)
	}
	if app.RPID != "zeta.example.com" {
		t.Fatalf("RP ID %q, want the first origin's host zeta.example.com", app.RPID)
	}
}

// Under --user-verification preferred a login may come without user verification (a
// security key touched, its PIN not asked). Its token must not claim what did not happen:
// amr names "user" only when this assertion's UV flag is set, not because the passkey
// verified its user once at registration.
func TestPasskey_UVPreferred_LoginWithoutUV_TokenDoesNotSayUser(t *testing.T) {
	v := startVerifier(t)
	env := v.env()
	key, err := env.MFA.CreateApp(t.Context(), mfa.NewApp{ID: "lax", Origins: []string{origin}, UserVerification: "preferred"})
	if err != nil {
		t.Fatal(err)
	}
	v.APIKey = key
	b, _ := v.elevated("uma")
	a := passkeytest.New(origin, "localhost") // registers with UV
	v.registerPasskey(b, a)

	for _, tc := range []struct {
		uv   bool
		want string
	}{{false, `["hwk"]`}, {true, `["hwk","user"]`}} {
		a.UV = tc.uv
		lb := v.ticket("uma")
		r := lb.call("POST", "/v1/webauthn/assertions/finish", v.assertion(lb, a))
		if r.Status != 200 {
			t.Fatalf("login with UV %v: %d %s", tc.uv, r.Status, r.Raw)
		}
		if amr, _ := json.Marshal(joseVerify(t, v, "lax", r.str("token"))["amr"]); string(amr) != tc.want {
			t.Errorf("login with UV %v: amr %s, want %s", tc.uv, amr, tc.want)
		}
	}
}
