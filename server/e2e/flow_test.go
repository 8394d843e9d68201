package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// joseVerify checks an EdDSA token the way a Node backend would: npm's jose against the
// live JWKS.
func joseVerify(t *testing.T, v *verifier, audience, token string) map[string]any {
	t.Helper()
	return joseVerifyAlg(t, v, audience, token, "EdDSA")
}

func joseVerifyAlg(t *testing.T, v *verifier, audience, token, alg string) map[string]any {
	t.Helper()
	script, _ := filepath.Abs("../../sdk-js/test/verify-jwt.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "../node_modules/jose")); err != nil {
		t.Fatalf("npm's jose is not installed (run `make test`, which installs sdk-js/node_modules): %v", err)
	}
	out, err := exec.Command("node", script, v.URL+"/.well-known/jwks.json", v.URL, audience, token).CombinedOutput()
	if err != nil {
		t.Fatalf("jose refused the token: %v\n%s", err, out)
	}
	var res struct {
		Header  map[string]any `json:"header"`
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("jose output %q: %v", out, err)
	}
	if res.Header["kid"] == nil || res.Header["alg"] != alg {
		t.Errorf("header %v: want kid and alg %s", res.Header, alg)
	}
	return res.Payload
}

func TestFlow_TicketEnrollConfirmVerify_TokenValidatesWithJose(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("alice")
	if len(e.RecoveryCodes) != 10 {
		t.Fatalf("got %d recovery codes, want 10", len(e.RecoveryCodes))
	}
	if e.Token == "" {
		t.Fatal("confirm gave no token")
	}

	r := v.call("POST", "/v1/tickets", "Bearer "+v.APIKey, "", wire.TicketRequest{User: "alice", Nonce: "n-123"})
	b := browser{v: v, ticket: r.str("ticket"), origin: origin}
	s := b.call("GET", "/v1/session", nil)
	if s.Status != 200 || s.Body["elevated"] != false || s.str("user") != "alice" {
		t.Fatalf("session: %d %s", s.Status, s.Raw)
	}
	f := s.Body["factors"].(map[string]any)
	if f["totp"] != true || f["recovery_codes_remaining"] != float64(10) {
		t.Errorf("factors = %v", f)
	}
	if o := s.Body["origins"].([]any); len(o) != 1 || o[0] != origin {
		t.Errorf("origins = %v", o)
	}

	next := code(t, e.Secret, v.Clock.Now().Add(30*time.Second))
	ok := b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: next})
	if ok.Status != 200 || ok.str("token_type") != "Bearer" || ok.Body["expires_in"] != float64(300) {
		t.Fatalf("verify: %d %s", ok.Status, ok.Raw)
	}
	if cc := ok.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store on a token answer", cc)
	}
	if s := b.call("GET", "/v1/session", nil); s.Body["elevated"] != true {
		t.Errorf("ticket not elevated after a passed factor: %s", s.Raw)
	}

	claims := joseVerify(t, v, "shop", ok.str("token"))
	if claims["sub"] != "alice" || claims["aud"] != "shop" || claims["iss"] != v.URL || claims["nonce"] != "n-123" {
		t.Errorf("claims = %v", claims)
	}
	if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "otp" {
		t.Errorf("amr = %v, want [otp]", claims["amr"])
	}
	for _, k := range []string{"iat", "nbf", "exp", "jti", "auth_time"} {
		if claims[k] == nil {
			t.Errorf("claim %s missing", k)
		}
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 300 {
		t.Errorf("lifetime %v s, want 300", exp-iat)
	}
	joseVerify(t, v, "shop", e.Token)

	d := v.call("GET", "/.well-known/openid-configuration", "", "", nil)
	if d.str("issuer") != v.URL || d.str("jwks_uri") != v.URL+"/.well-known/jwks.json" || !slices.Contains(d.Body["id_token_signing_alg_values_supported"].([]any), any("EdDSA")) {
		t.Errorf("discovery: %s", d.Raw)
	}
}

func TestVerify_SameCodeConcurrently_ExactlyOneWins(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("bob")
	c := code(t, e.Secret, v.Clock.Now().Add(30*time.Second))
	const n = 50
	results := race(e.browser, n, "POST", "/v1/totp/verify", wire.CodeRequest{Code: c})
	wins := 0
	for _, r := range results {
		switch {
		case r.Status == 200:
			wins++
		case r.Status == 409 && r.errCode() == wire.CodeCodeAlreadyUsed:
		case r.Status == 429 && r.errCode() == wire.CodeRateLimited: // the attempt budget
		default:
			t.Errorf("unexpected answer %d %s", r.Status, r.Raw)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent submissions of one code succeeded, want exactly 1", wins, n)
	}
}

func TestConfirm_ConfirmingCodeCannotSignIn(t *testing.T) {
	v := startVerifier(t)
	b := v.ticket("carol")
	r := b.call("POST", "/v1/totp/enrollments", nil)
	c := code(t, r.str("secret"), v.Clock.Now())
	if cf := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: c}); cf.Status != 200 {
		t.Fatalf("confirm: %d %s", cf.Status, cf.Raw)
	}
	again := v.ticket("carol").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: c})
	if again.Status != 409 || again.errCode() != wire.CodeCodeAlreadyUsed {
		t.Fatalf("confirming code signed in: %d %s", again.Status, again.Raw)
	}
	if cf := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: c}); cf.Status != 404 {
		t.Fatalf("confirming twice: %d %s, want 404", cf.Status, cf.Raw)
	}
}

// Every refused call must change nothing: the valid code sent along stays usable.
func TestBrowserCalls_BadTicketsKeysAndOrigins_RefusedAndChangeNothing(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("dave")
	valid := wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}
	tampered := []byte(e.ticket)
	tampered[len(tampered)-3] ^= 1
	expired := v.ticket("dave")

	cases := []struct {
		name, auth, origin string
		status             int
		code               string
	}{
		{"no ticket", "", origin, 401, wire.CodeInvalidTicket},
		{"tampered ticket", "Ticket " + string(tampered), origin, 401, wire.CodeInvalidTicket},
		{"made-up ticket", "Ticket tkt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", origin, 401, wire.CodeInvalidTicket},
		{"api key instead of ticket", "Bearer " + v.APIKey, origin, 401, wire.CodeInvalidTicket},
		{"foreign origin", "Ticket " + e.ticket, "https://shop.example.evil", 403, wire.CodeOriginNotAllowed},
		{"look-alike origin", "Ticket " + e.ticket, "http://localhost:3001", 403, wire.CodeOriginNotAllowed},
		{"no origin", "Ticket " + e.ticket, "", 403, wire.CodeOriginNotAllowed},
		{"null origin", "Ticket " + e.ticket, "null", 403, wire.CodeOriginNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/totp/verify", "/v1/recovery/verify"} {
				body := valid
				if path == "/v1/recovery/verify" {
					body = wire.CodeRequest{Code: e.RecoveryCodes[0]}
				}
				r := v.call("POST", path, tc.auth, tc.origin, body)
				if r.Status != tc.status || r.errCode() != tc.code || r.str("message") == "" {
					t.Errorf("%s: got %d %s, want %d %s", path, r.Status, r.Raw, tc.status, tc.code)
				}
				if acao := r.Header.Get("Access-Control-Allow-Origin"); acao != "" && acao != origin {
					t.Errorf("%s: CORS answered %q", path, acao)
				}
			}
		})
	}

	t.Run("expired ticket", func(t *testing.T) {
		v.Clock.Advance(10*time.Minute + time.Second)
		defer v.Clock.Advance(-(10*time.Minute + time.Second))
		r := expired.call("GET", "/v1/session", nil)
		if r.Status != 401 || r.errCode() != wire.CodeInvalidTicket {
			t.Errorf("got %d %s", r.Status, r.Raw)
		}
	})
	t.Run("wrong api key", func(t *testing.T) {
		for _, key := range []string{"", "shop.wrong", v.APIKey + "x", "nosuchapp." + v.APIKey[5:]} {
			r := v.call("POST", "/v1/tickets", "Bearer "+key, "", wire.TicketRequest{User: "dave"})
			if r.Status != 401 || r.errCode() != wire.CodeInvalidAPIKey {
				t.Errorf("key %q: got %d %s", key, r.Status, r.Raw)
			}
		}
	})
	t.Run("cors preflight", func(t *testing.T) {
		r := v.call("OPTIONS", "/v1/totp/verify", "", origin, nil)
		if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("known origin: %d %v", r.Status, r.Header)
		}
		r = v.call("OPTIONS", "/v1/totp/verify", "", "https://evil.example", nil)
		if r.Status != 403 || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("foreign origin: %d %v", r.Status, r.Header)
		}
	})

	// Nothing above consumed anything.
	if r := e.call("POST", "/v1/totp/verify", valid); r.Status != 200 {
		t.Fatalf("valid code after refused calls: %d %s", r.Status, r.Raw)
	}
	if r := e.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status != 200 {
		t.Fatalf("recovery code after refused calls: %d %s", r.Status, r.Raw)
	}
}

func TestEnroll_UserWithFactor_NeedsStepUp(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("erin")
	b := v.ticket("erin")
	if r := b.call("POST", "/v1/totp/enrollments", nil); r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
		t.Fatalf("second enrollment without step-up: %d %s", r.Status, r.Raw)
	}
	if r := b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
	if r := b.call("POST", "/v1/totp/enrollments", map[string]string{"label": "new phone"}); r.Status != 201 {
		t.Fatalf("enrollment after step-up: %d %s", r.Status, r.Raw)
	}
}

func TestVerify_CodeFromPhoneWithWrongClock_SaysWhichWay(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("frank")
	for _, tc := range []struct {
		off          time.Duration
		clock, words string
	}{
		{3 * time.Minute, wire.ClockAhead, "180 seconds ahead of the real time"},
		{-3 * time.Minute, wire.ClockBehind, "180 seconds behind the real time"},
		{20 * time.Minute, "", "That code is not right"},
	} {
		r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(tc.off))})
		if r.Status != 401 || r.errCode() != wire.CodeInvalidCode || r.str("clock") != tc.clock || !strings.Contains(r.str("message"), tc.words) {
			t.Errorf("phone %v off: got %d %s, want invalid_code clock=%q saying %q", tc.off, r.Status, r.Raw, tc.clock, tc.words)
		}
	}
}

// A guesser whose wrong code happens to be the code of a step a few ahead learns from the
// ahead hint which step that is. When that step comes the code must not sign in, on any
// instance: otherwise each guess would test the window and the hint's ten steps ahead too.
func TestVerify_CodeRevealedByAheadHint_NeverSignsInAtItsStep(t *testing.T) {
	v := startVerifier(t)
	other := v.sibling()
	e := v.enroll("hank")
	const ahead = 4 * 30 * time.Second
	lucky := code(t, e.Secret, v.Clock.Now().Add(ahead))
	r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: lucky})
	if r.Status != 401 || r.str("clock") != wire.ClockAhead || !strings.Contains(r.str("message"), "120 seconds ahead") {
		t.Fatalf("code of 4 steps ahead: %d %s, want invalid_code clock=ahead", r.Status, r.Raw)
	}
	v.Clock.Advance(ahead)
	for _, at := range []*verifier{other, v} {
		b := at.ticket("hank")
		if r := b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: lucky}); r.Status != 409 || r.errCode() != wire.CodeCodeAlreadyUsed {
			t.Fatalf("the hinted code at its step: %d %s, want 409 code_already_used", r.Status, r.Raw)
		}
	}
	// The person's own next code still works.
	if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("next step's code: %d %s", r.Status, r.Raw)
	}
}

// A person whose phone runs two or three steps ahead is told so, sets the time right and
// signs in with the code their phone shows then. If they happen to type, at its step, the
// very code the hint was about, that one is refused once, and the next one works.
func TestVerify_PhoneAheadFixed_SignsInAfterHint(t *testing.T) {
	for _, steps := range []int{2, 3} {
		t.Run(strconv.Itoa(steps)+" steps", func(t *testing.T) {
			v := startVerifier(t)
			e := v.enroll("ivy")
			ahead := time.Duration(steps) * 30 * time.Second
			shown := code(t, e.Secret, v.Clock.Now().Add(ahead))
			r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: shown})
			want := strconv.Itoa(steps*30) + " seconds ahead"
			if r.Status != 401 || r.str("clock") != wire.ClockAhead || !strings.Contains(r.str("message"), want) || !strings.Contains(r.str("message"), "phone") {
				t.Fatalf("phone %d steps ahead: %d %s, want invalid_code clock=ahead saying %q", steps, r.Status, r.Raw, want)
			}
			v.Clock.Advance(30 * time.Second) // the time it takes to fix the clock
			if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now())}); r.Status != 200 {
				t.Fatalf("after fixing the clock: %d %s", r.Status, r.Raw)
			}
			v.Clock.Advance(ahead - 30*time.Second) // at the hinted step
			if r := v.ticket("ivy").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: shown}); r.Status != 409 {
				t.Fatalf("the hinted code at its step: %d %s, want 409", r.Status, r.Raw)
			}
			v.Clock.Advance(30 * time.Second)
			if r := v.ticket("ivy").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now())}); r.Status != 200 {
				t.Fatalf("the next step's code: %d %s", r.Status, r.Raw)
			}
		})
	}
}

func TestRecovery_CodeWorksOnce_FormattingForgiven(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("gina")
	rc := e.RecoveryCodes[3]
	typed := " " + rc[:4] + " " + rc[5:9] + rc[10:] + " " // spaces, a dash dropped
	b := v.ticket("gina")
	r := b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: typed})
	if r.Status != 200 {
		t.Fatalf("recovery: %d %s", r.Status, r.Raw)
	}
	claims := joseVerify(t, v, "shop", r.str("token"))
	if amr, _ := claims["amr"].([]any); len(amr) != 1 || amr[0] != "rec" {
		t.Errorf("amr = %v, want [rec]", claims["amr"])
	}
	if r := v.ticket("gina").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: rc}); r.Status != 401 || r.errCode() != wire.CodeInvalidCode {
		t.Fatalf("second use: %d %s", r.Status, r.Raw)
	}
	if s := b.call("GET", "/v1/session", nil); s.Body["factors"].(map[string]any)["recovery_codes_remaining"] != float64(9) {
		t.Errorf("remaining after one use: %s", s.Raw)
	}
}

func TestTokens_AppChoosesES256OrRS256_ValidatesWithJose(t *testing.T) {
	v := startVerifier(t)
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			app := strings.ToLower(alg) + "-app"
			v.APIKey = v.createApp(app, alg)
			e := v.enroll("lena")
			claims := joseVerifyAlg(t, v, app, e.Token, alg)
			if claims["aud"] != app {
				t.Errorf("aud = %v", claims["aud"])
			}
		})
	}
}

func TestProbes_HealthAndReadiness(t *testing.T) {
	v := startVerifier(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := v.call("GET", path, "", "", nil); r.Status != 200 {
			t.Errorf("%s: %d %s", path, r.Status, r.Raw)
		}
	}
	// A path names one route exactly: a proxy rule that keeps /metrics or /v1/admin from the
	// internet must not be stepped around by /METRICS or /metrics/.
	for _, path := range []string{"/v1/nothing-here", "/METRICS", "/metrics/", "/Healthz", "/healthz/", "/V1/admin/users/alice/reset"} {
		if r := v.call("GET", path, "", "", nil); r.Status != 404 || r.errCode() != wire.CodeNotFound {
			t.Errorf("%s: %d %s, want 404 not_found", path, r.Status, r.Raw)
		}
	}
}

// auditKinds lists the audit trail's records for user as "kind:detail".
func (v *verifier) auditKinds(user string) []string {
	v.t.Helper()
	env, err := serve.Open(context.Background(), v.cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	defer env.Close()
	var out []string
	err = env.Store.AuditRecords(context.Background(), store.AuditFilter{User: user}, func(r store.AuditRecord) error {
		out = append(out, r.Kind+":"+r.Detail)
		return nil
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return out
}

func TestOriginRefused_ForeignOriginAndSDKReports_Audited_ExpiredTicketReadable(t *testing.T) {
	v := startVerifier(t)
	b := v.ticket("zed")
	if r := v.call("GET", "/v1/session", "Ticket "+b.ticket, "https://shop.example.evil", nil); r.Status != 403 {
		t.Fatalf("foreign origin: %d %s", r.Status, r.Raw)
	}
	report := map[string]any{"page_origin": origin, "reason": "framed", "ancestors": []string{"https://evil.example"}}
	if r := b.call("POST", "/v1/origin-refusals", report); r.Status != 204 {
		t.Fatalf("report: %d %s", r.Status, r.Raw)
	}
	got := strings.Join(v.auditKinds("zed"), "\n")
	for _, want := range []string{`origin_refused:request from origin "https://shop.example.evil"`, `origin_refused:framed: page "` + origin + `" framed by "https://evil.example"`} {
		if !strings.Contains(got, want) {
			t.Errorf("audit trail lacks %q:\n%s", want, got)
		}
	}
	// An expired ticket's refusal is readable by the page, so the SDK can say so.
	v.Clock.Advance(11 * time.Minute)
	r := b.call("GET", "/v1/session", nil)
	if r.Status != 401 || r.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("expired ticket: %d ACAO=%q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
}

// Browser calls must come from a script's fetch: Fetch Metadata that says navigation, a
// form, an image or a no-cors request is refused even from the right origin.
func TestBrowserCalls_FetchMetadataOfNonScriptRequests_Refused(t *testing.T) {
	v := startVerifier(t)
	b := v.ticket("yann")
	for _, tc := range []struct {
		headers map[string]string
		status  int
	}{
		{map[string]string{"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Site": "cross-site"}, 200},
		{map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "cross-site"}, 403},
		{map[string]string{"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image", "Sec-Fetch-Site": "cross-site"}, 403},
		{map[string]string{"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Site": "none"}, 403},
	} {
		req, _ := http.NewRequest("GET", v.URL+"/v1/session", nil)
		req.Header.Set("Authorization", "Ticket "+b.ticket)
		req.Header.Set("Origin", origin)
		for k, val := range tc.headers {
			req.Header.Set(k, val)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%v: %d, want %d", tc.headers, res.StatusCode, tc.status)
		}
	}
}

// An app reads its users' security events for an account page: newest first, scoped to
// the app, no codes in them.
func TestUserEvents_NewestFirst_OnlyTheAppsOwn(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("ulla")
	c := code(t, e.Secret, v.Clock.Now().Add(30*time.Second))
	if r := v.ticket("ulla").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: c}); r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
	r := v.call("GET", "/v1/users/ulla/events?limit=2", "Bearer "+v.APIKey, "", nil)
	if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("events: %d %s", r.Status, r.Raw)
	}
	var list wire.EventList
	if err := json.Unmarshal(r.Raw, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Events) != 2 || list.Events[0].Kind != "verified" || list.Events[1].Kind != "factor_added" {
		t.Fatalf("events = %+v, want verified then factor_added", list.Events)
	}
	if strings.Contains(string(r.Raw), c) || strings.Contains(string(r.Raw), e.Secret) {
		t.Fatal("an event carries a code or a secret")
	}
	other := v.createApp("other", "EdDSA")
	if r := v.call("GET", "/v1/users/ulla/events", "Bearer "+other, "", nil); r.Status != 200 || strings.Contains(string(r.Raw), "verified") {
		t.Fatalf("another app sees ulla's events: %d %s", r.Status, r.Raw)
	}
	if r := v.call("GET", "/v1/users/ulla/events", "Ticket "+e.ticket, origin, nil); r.Status != 401 {
		t.Fatalf("a browser ticket reads events: %d %s", r.Status, r.Raw)
	}
}

// A user id in the path is URL-decoded, as the Go kit encodes it: /v1/users/a%20b is the
// user "a b", never another user who is literally called "a%20b".
func TestUserPaths_Encoded_NameTheDecodedUser(t *testing.T) {
	v := startVerifier(t)
	spaced := v.enroll("ul la")
	v.enroll("ul%20la")
	r := v.call("GET", "/v1/users/ul%20la/events?limit=1", "Bearer "+v.APIKey, "", nil)
	var list wire.EventList
	if err := json.Unmarshal(r.Raw, &list); r.Status != 200 || err != nil || len(list.Events) != 1 {
		t.Fatalf("events of %q: %d %s", "ul la", r.Status, r.Raw)
	}
	if ids := v.factors(spaced.browser); list.Events[0].Factor != ids[0] {
		t.Fatalf("events of %q name factor %s, want theirs %s", "ul la", list.Events[0].Factor, ids[0])
	}
}
