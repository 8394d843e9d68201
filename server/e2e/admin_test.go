package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	kit "github.com/twofold-dev/twofold/server/client"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/passkey/passkeytest"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// env opens a second handle on the verifier's store, as the CLI would.
func (v *verifier) env() *serve.Env {
	v.t.Helper()
	env, err := serve.Open(context.Background(), v.cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	v.t.Cleanup(func() { env.Close() })
	return env
}

// as is the verifier seen through another app's key.
func (v *verifier) as(apiKey string) *verifier {
	w := *v
	w.APIKey = apiKey
	return &w
}

// hookReceiver is an app's webhook endpoint; it keeps the deliveries whose signature checks.
type hookReceiver struct {
	t      *testing.T
	secret string
	now    func() time.Time
	mu     sync.Mutex
	got    []kit.WebhookEvent
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, err := kit.WebhookReceiver{Secret: h.secret, Now: h.now}.Read(r)
	if err != nil {
		h.t.Errorf("webhook delivery refused: %v", err)
		w.WriteHeader(400)
		return
	}
	h.got = append(h.got, p)
}

func (h *hookReceiver) waitFor(kind string) kit.WebhookEvent {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		for _, p := range h.got {
			if p.Type == kind {
				h.mu.Unlock()
				return p
			}
		}
		h.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("no %s webhook within 15s", kind)
	return kit.WebhookEvent{}
}

// adminFixture: the shop app with alice enrolled and a webhook, and an admin app "ops"
// whose admin root has an authenticator and a fresh token.
type adminFixture struct {
	v      *verifier
	opsKey string
	root   enrolled
	alice  enrolled
	hook   *hookReceiver
}

func newAdminFixture(t *testing.T) *adminFixture { return newAdminFixtureWith(t, nil) }

// newAdminFixtureWith lets a test adjust the verifier's configuration first (its store).
func newAdminFixtureWith(t *testing.T, adjust func(*serve.Config)) *adminFixture {
	f := &adminFixture{v: startVerifierWith(t, adjust)}
	f.opsKey = f.v.createApp("ops", "EdDSA")
	env := f.v.env()
	if err := env.Store.SetAdminApp(t.Context(), "ops"); err != nil {
		t.Fatal(err)
	}
	f.hook = &hookReceiver{t: t, now: f.v.Clock.Now}
	srv := httptest.NewServer(f.hook)
	t.Cleanup(srv.Close)
	secret, err := audit.SetWebhook(t.Context(), env.Store, env.Ring, "shop", srv.URL+"/twofold", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.hook.secret = secret
	f.v.allowFirstFactor("ops", "root")
	f.root = f.v.as(f.opsKey).enroll("root")
	f.alice = f.v.enroll("alice")
	return f
}

// allowFirstFactor is the operator's leave, given on the host, for a user of an admin app to
// set up a first factor: `twofold users reset`.
func (v *verifier) allowFirstFactor(app, user string) {
	v.t.Helper()
	if err := v.env().MFA.ResetUser(v.t.Context(), app, user, "new admin", mfa.Operator("cli:test")); err != nil {
		v.t.Fatal(err)
	}
}

func (f *adminFixture) reset(user, query, auth, token string, body any) reply {
	f.v.t.Helper()
	req, _ := http.NewRequest("POST", f.v.URL+"/v1/admin/users/"+user+"/reset"+query, strings.NewReader(string(mustJSON(body))))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if token != "" {
		req.Header.Set("Twofold-Admin-Token", token)
	}
	res, err := client.Do(req)
	if err != nil {
		f.v.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := reply{Status: res.StatusCode, Header: res.Header, Raw: raw}
	json.Unmarshal(raw, &r.Body)
	return r
}

// adminToken signs root in to the admin app again, a step later: a fresh second factor
// and a token no admin action has used.
func (f *adminFixture) adminToken() string {
	f.v.t.Helper()
	f.v.Clock.Advance(30 * time.Second)
	r := f.v.as(f.opsKey).ticket("root").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(f.v.t, f.root.Secret, f.v.Clock.Now())})
	if r.Status != 200 {
		f.v.t.Fatalf("admin sign-in: %d %s", r.Status, r.Raw)
	}
	return r.str("token")
}

func (f *adminFixture) aliceHasTOTP() bool {
	f.v.t.Helper()
	s := f.v.ticket("alice").call("GET", "/v1/session", nil)
	factors, _ := s.Body["factors"].(map[string]any)
	has, _ := factors["totp"].(bool)
	return has
}

func TestAdminReset_WithoutBothAdminKeyAndFreshSecondFactor_Refused(t *testing.T) {
	f := newAdminFixture(t)
	// A token root earned with a recovery code: not proof of holding a factor.
	rec := f.v.as(f.opsKey).ticket("root").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: f.root.RecoveryCodes[0]})
	if rec.Status != 200 {
		t.Fatalf("recovery sign-in: %d %s", rec.Status, rec.Raw)
	}
	good := map[string]string{"reason": "lost phone", "app": "shop"}
	for _, tc := range []struct {
		name, auth, token string
		status            int
		code              string
	}{
		{"no authorization", "", f.root.Token, 401, wire.CodeInvalidAPIKey},
		{"ticket instead of key", "Ticket " + f.alice.ticket, f.root.Token, 401, wire.CodeInvalidAPIKey},
		{"unknown key", "Bearer ops.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", f.root.Token, 401, wire.CodeInvalidAPIKey},
		{"non-admin app's key", "Bearer " + f.v.APIKey, f.alice.Token, 401, wire.CodeInvalidAPIKey},
		{"no admin token", "Bearer " + f.opsKey, "", 403, wire.CodeStepUpRequired},
		{"garbage token", "Bearer " + f.opsKey, "not.a.jwt", 403, wire.CodeStepUpRequired},
		{"another app's token", "Bearer " + f.opsKey, f.alice.Token, 403, wire.CodeStepUpRequired},
		{"recovery-code token", "Bearer " + f.opsKey, rec.str("token"), 403, wire.CodeStepUpRequired},
		{"tampered token", "Bearer " + f.opsKey, f.root.Token[:len(f.root.Token)-4] + "AAAA", 403, wire.CodeStepUpRequired},
	} {
		r := f.reset("alice", "", tc.auth, tc.token, good)
		if r.Status != tc.status || r.errCode() != tc.code || r.str("message") == "" {
			t.Errorf("%s: %d %s, want %d %s with a message", tc.name, r.Status, r.Raw, tc.status, tc.code)
		}
	}
	if !f.aliceHasTOTP() {
		t.Fatal("a refused reset removed alice's authenticator")
	}
	// Stale: root's sign-in is over 5 minutes old.
	f.v.Clock.Advance(5*time.Minute + 30*time.Second)
	if r := f.reset("alice", "", "Bearer "+f.opsKey, f.root.Token, good); r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
		t.Errorf("stale token: %d %s, want 403 step_up_required", r.Status, r.Raw)
	}
	if !f.aliceHasTOTP() {
		t.Fatal("a refused reset removed alice's authenticator")
	}
}

func TestAdminReset_BadRequests_RefusedWithoutChange(t *testing.T) {
	f := newAdminFixture(t)
	auth := "Bearer " + f.opsKey
	for _, tc := range []struct {
		name, user, query string
		body              any
		status            int
		code              string
	}{
		{"no reason", "alice", "?app=shop", map[string]string{}, 400, wire.CodeInvalidRequest},
		{"no app", "alice", "", map[string]string{"reason": "x"}, 400, wire.CodeInvalidRequest},
		{"apps differ", "alice", "?app=ops", map[string]string{"reason": "x", "app": "shop"}, 400, wire.CodeInvalidRequest},
		{"unknown app", "alice", "?app=nope", map[string]string{"reason": "x"}, 404, wire.CodeNotFound},
		{"reason not a string", "alice", "?app=shop", map[string]any{"reason": 7}, 400, wire.CodeInvalidRequest},
		{"control character in user", "al%00ice", "?app=shop", map[string]string{"reason": "x"}, 400, wire.CodeInvalidRequest},
	} {
		r := f.reset(tc.user, tc.query, auth, f.root.Token, tc.body)
		if r.Status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Raw, tc.status, tc.code)
		}
	}
	if !f.aliceHasTOTP() {
		t.Fatal("a refused reset removed alice's authenticator")
	}
	// None of them spent the admin's sign-in, the unknown app's neither.
	if r := f.reset("alice", "?app=shop", auth, f.root.Token, map[string]string{"reason": "x"}); r.Status != 200 {
		t.Fatalf("the admin's token after refused requests: %d %s, want 200", r.Status, r.Raw)
	}
}

func TestAdminReset_GoodCall_FactorsGoneLimitsLiftedAuditedAndWebhookSigned(t *testing.T) {
	f := newAdminFixture(t)
	// Alice's phone is gone and someone has been guessing: she is in back-off.
	for i := range 6 {
		f.alice.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: wrongCode(t, f.alice.Secret, f.v.Clock.Now().Add(time.Duration(i)*time.Hour))})
	}
	if r := f.alice.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: "000000"}); r.errCode() != wire.CodeRateLimited {
		t.Fatalf("setup: alice is not rate limited: %d %s", r.Status, r.Raw)
	}

	r := f.reset("alice", "?app=shop", "Bearer "+f.opsKey, f.root.Token, map[string]string{"reason": "lost phone, ticket #4711"})
	if r.Status != 200 || r.Body["reset"] != true {
		t.Fatalf("reset: %d %s", r.Status, r.Raw)
	}
	if f.aliceHasTOTP() {
		t.Error("alice still has an authenticator after the reset")
	}
	s := f.v.ticket("alice").call("GET", "/v1/session", nil)
	if n := s.Body["factors"].(map[string]any)["recovery_codes_remaining"]; n != float64(0) {
		t.Errorf("alice has %v recovery codes after the reset", n)
	}
	if rc := f.v.ticket("alice").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: f.alice.RecoveryCodes[0]}); rc.Status == 200 {
		t.Error("an old recovery code still signs in after the reset")
	}
	// She enrolls again without step-up, and the back-off is gone with the old factor.
	again := f.v.enroll("alice")
	if v := again.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, again.Secret, f.v.Clock.Now().Add(30*time.Second))}); v.Status != 200 {
		t.Errorf("verify after reset and re-enrollment: %d %s", v.Status, v.Raw)
	}

	p := f.hook.waitFor("admin_reset")
	if p.AppID != "shop" || p.User != "alice" || !strings.Contains(p.Detail, "ops/root") || !strings.Contains(p.Detail, "ticket #4711") {
		t.Errorf("webhook payload %+v: want shop/alice, the actor and the reason", p)
	}

	// The trail has the reset, and nothing secret anywhere in it.
	var entries []string
	found := false
	if err := f.v.env().Store.AuditRecords(t.Context(), store.AuditFilter{}, func(r store.AuditRecord) error {
		b, _ := json.Marshal(audit.EntryOf(r))
		entries = append(entries, string(b))
		found = found || (r.Kind == "admin_reset" && r.User == "alice" && strings.Contains(r.Detail, "ops/root"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("no admin_reset record for alice by ops/root in:\n%s", strings.Join(entries, "\n"))
	}
	all := strings.Join(entries, "\n")
	secrets := []string{f.alice.Secret, again.Secret, f.root.Secret, f.opsKey, f.v.APIKey, f.hook.secret, f.alice.ticket, f.root.Token}
	secrets = append(secrets, f.alice.RecoveryCodes...)
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("the audit trail contains a secret, code, key or token (%d chars)", len(s))
		}
	}
}

// A reset commits with its admin_reset record and the spending of the admin's sign-in, or
// not at all: with the trail refusing records it answers 500, the user keeps every factor
// and code, and the admin's token stays unused; once the trail works, the same reset with
// the same token goes through. Before, the token was claimed ahead of the reset's
// transaction, so a reset that failed had used up the admin's sign-in.
func TestAdminReset_AuditRecordRefused_NothingRemovedTokenKept(t *testing.T) {
	for _, be := range trailRefusers {
		t.Run(be.name, func(t *testing.T) {
			f := newAdminFixtureWith(t, be.on(t))
			db, done := f.v.sqlHandle()
			defer done()
			state := func() string {
				return rowsOf(t, db, `SELECT id, confirmed FROM totp_credentials WHERE user_id = 'alice' ORDER BY id`) +
					rowsOf(t, db, `SELECT hash, used_at FROM recovery_codes WHERE user_id = 'alice' ORDER BY hash`) +
					rowsOf(t, db, `SELECT key, until FROM used_once ORDER BY key`) +
					rowsOf(t, db, `SELECT (SELECT COUNT(*) FROM audit_log), (SELECT COUNT(*) FROM audit_queue)`)
			}
			// Taken while the trail works: a sign-in is audited too.
			token := f.adminToken()
			reset := func() reply {
				return f.reset("alice", "?app=shop", "Bearer "+f.opsKey, token, map[string]string{"reason": "lost phone, ticket #7"})
			}
			underRefusal(t, db, be, state, []func() reply{reset, reset}, func() {
				if r := reset(); r.Status != 200 {
					t.Fatalf("the same reset with the same token once the trail works: %d %s, want 200", r.Status, r.Raw)
				}
			})
			if f.aliceHasTOTP() {
				t.Error("alice still has an authenticator after the reset")
			}
			if r := reset(); r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
				t.Errorf("the token after the reset it served: %d %s, want 403 step_up_required", r.Status, r.Raw)
			}
		})
	}
}

// One sign-in, one reset, also when its token arrives many times at once (copied from a
// log or a proxy, and raced against the admin's own request): on each store exactly one
// request resets its user, the others are refused as a reused sign-in, their users keep
// their factors, and the trail has one admin_reset.
func TestAdminReset_SameTokenConcurrently_ExactlyOneResets(t *testing.T) {
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			f := newAdminFixtureWith(t, sc.on(t))
			users := []string{"alice"}
			for i := range 7 {
				u := fmt.Sprint("user", i)
				f.v.enroll(u)
				users = append(users, u)
			}
			token := f.adminToken()
			replies := make([]reply, len(users))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, u := range users {
				wg.Go(func() {
					<-start
					replies[i] = f.reset(u, "?app=shop", "Bearer "+f.opsKey, token, map[string]string{"reason": "race"})
				})
			}
			close(start)
			wg.Wait()
			var reset []string
			for i, r := range replies {
				switch {
				case r.Status == 200:
					reset = append(reset, users[i])
				case r.Status != 403 || r.errCode() != wire.CodeStepUpRequired:
					t.Errorf("reset of %s: %d %s, want 200 or 403 step_up_required", users[i], r.Status, r.Raw)
				}
			}
			if len(reset) != 1 {
				t.Fatalf("%d resets went through with one token (%v), want exactly 1", len(reset), reset)
			}
			for _, u := range users {
				s := f.v.ticket(u).call("GET", "/v1/session", nil)
				has, _ := s.Body["factors"].(map[string]any)["totp"].(bool)
				if has == (u == reset[0]) {
					t.Errorf("%s has an authenticator: %v; only %s was reset", u, has, reset[0])
				}
			}
			n := 0
			if err := f.v.env().Store.AuditRecords(t.Context(), store.AuditFilter{AppID: "shop"}, func(r store.AuditRecord) error {
				if r.Kind == "admin_reset" {
					n++
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("%d admin_reset records, want 1", n)
			}
			// Each replay of the spent sign-in is on the trail under the admin.
			refused := 0
			if err := f.v.env().Store.AuditRecords(t.Context(), store.AuditFilter{AppID: "ops", User: "root"}, func(r store.AuditRecord) error {
				if r.Kind == "admin_refused" && strings.Contains(r.Detail, "already used") {
					refused++
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if refused != len(users)-1 {
				t.Errorf("%d admin_refused records of root, want %d", refused, len(users)-1)
			}
		})
	}
}

// The admin API acts on the users of ordinary apps only. A support account whose password
// and second factor were stolen must not reset another admin's factors, and then enroll
// its own authenticator there: the users of admin apps are the operator's to reset, on
// the verifier's host. The refusal says so, changes nothing and spends no sign-in;
// `twofold users reset` still resets an admin.
func TestAdminReset_UserOfAnAdminApp_RefusedOverHTTP_OperatorResetsOnHost(t *testing.T) {
	f := newAdminFixture(t)
	consoleKey := f.v.createApp("console", "EdDSA")
	if err := f.v.env().Store.SetAdminApp(t.Context(), "console"); err != nil {
		t.Fatal(err)
	}
	console := f.v.as(consoleKey)
	f.v.allowFirstFactor("console", "eve")
	console.enroll("eve")
	f.v.allowFirstFactor("ops", "sam")
	f.v.as(f.opsKey).enroll("sam")
	token := f.adminToken()
	db, done := f.v.sqlHandle()
	defer done()
	state := func() string {
		return rowsOf(t, db, `SELECT id, user_id FROM totp_credentials ORDER BY id`) +
			rowsOf(t, db, `SELECT user_id, COUNT(*) FROM recovery_codes WHERE used_at IS NULL GROUP BY user_id ORDER BY user_id`) +
			rowsOf(t, db, `SELECT key, until FROM used_once ORDER BY key`)
	}
	before := state()
	for _, tc := range []struct{ name, app, user string }{
		{"an admin of another admin app", "console", "eve"},
		{"another admin of the same admin app", "ops", "sam"},
		{"the admin itself", "ops", "root"},
	} {
		r := f.reset(tc.user, "?app="+tc.app, "Bearer "+f.opsKey, token, map[string]string{"reason": "lost phone"})
		if r.Status != 403 || r.errCode() != wire.CodeOperatorRequired || !strings.Contains(r.str("message"), "twofold users reset") {
			t.Errorf("%s: %d %s, want 403 %s naming `twofold users reset`", tc.name, r.Status, r.Raw, wire.CodeOperatorRequired)
		}
	}
	if after := state(); after != before {
		t.Errorf("refused resets changed the store:\nbefore %s\nafter  %s", before, after)
	}
	// Each refusal is on the trail under the admin who tried, for the console's owner.
	var refused []string
	for _, k := range f.v.auditKinds("root") {
		if strings.HasPrefix(k, "admin_refused:") {
			refused = append(refused, k[:strings.Index(k, " refused")])
		}
	}
	if want := []string{"admin_refused:reset of console/eve", "admin_refused:reset of ops/sam", "admin_refused:reset of ops/root"}; !slices.Equal(refused, want) {
		t.Errorf("admin_refused records of root: %q, want %q", refused, want)
	}
	// The refusals spent no sign-in: the same token resets a user of an ordinary app.
	if r := f.reset("alice", "?app=shop", "Bearer "+f.opsKey, token, map[string]string{"reason": "lost phone"}); r.Status != 200 {
		t.Fatalf("the admin's token after the refusals: %d %s, want 200", r.Status, r.Raw)
	}
	runCLI(t, "users", "reset", "--data", f.v.Data, "--app", "console", "--user", "eve", "--reason", "lost phone, ticket #9")
	s := console.ticket("eve").call("GET", "/v1/session", nil)
	if has, _ := s.Body["factors"].(map[string]any)["totp"].(bool); has || s.Status != 200 {
		t.Errorf("after `twofold users reset` on the host, eve's session: %d %s, want no authenticator", s.Status, s.Raw)
	}
}

// A support reset lifts the lock on a passkey too: a person whose passkey logins someone
// else's failures locked registers a passkey again after the reset and signs in with it.
func TestAdminReset_LockedPasskey_NewPasskeySignsIn(t *testing.T) {
	f := newAdminFixture(t)
	v := f.v
	b, _ := v.elevated("bo")
	key := passkeytest.New(origin, "localhost")
	v.registerPasskey(b, key)
	v.lockPasskey("bo", key)
	if r := f.reset("bo", "?app=shop", "Bearer "+f.opsKey, f.adminToken(), map[string]string{"reason": "locked out, ticket #5"}); r.Status != 200 {
		t.Fatalf("reset: %d %s", r.Status, r.Raw)
	}
	again := v.enroll("bo") // its confirmation elevates the ticket
	key = passkeytest.New(origin, "localhost")
	v.registerPasskey(again.browser, key)
	lb := v.ticket("bo")
	if r := lb.call("POST", "/v1/webauthn/assertions/finish", v.assertion(lb, key)); r.Status != 200 {
		t.Fatalf("the new passkey after the reset: %d %s, want 200", r.Status, r.Raw)
	}
}

func TestMetrics_CountsEventsAndRequests_InTextFormat(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("mia")
	e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: wrongCode(t, e.Secret, v.Clock.Now())})
	r := v.call("GET", "/metrics", "", "", nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	body := string(r.Raw)
	for _, want := range []string{
		`twofold_events_total{kind="factor_added",outcome="ok"} 1`,
		`twofold_events_total{kind="failed",outcome="refused"} 1`,
		`twofold_http_requests_total{route="/v1/totp/verify",status="401"} 1`,
		`twofold_http_requests_total{route="/v1/tickets",status="201"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

// The CLI end to end: an admin app, a webhook, a support reset, the trail printed and
// verified, and tampering by raw SQL on the SQLite file named by `audit verify`.
func TestCLI_AuditTrail_PrintsFiltersAndVerifies_TamperingNamed(t *testing.T) {
	data := t.TempDir()
	var app wire.AppCreated
	json.Unmarshal(runCLI(t, "apps", "create", "--data", data, "--id", "shop", "--origin", origin), &app)
	runCLI(t, "apps", "create", "--data", data, "--id", "ops", "--origin", origin, "--admin")
	var hook map[string]string
	if err := json.Unmarshal(runCLI(t, "apps", "webhook", "--data", data, "--id", "shop", "--url", "https://shop.example/hooks"), &hook); err != nil || !strings.HasPrefix(hook["secret"], "whsec_") {
		t.Fatalf("apps webhook: %v %v", hook, err)
	}
	p := startProcess(t, data)
	v := &verifier{t: t, URL: p.URL, Data: data, APIKey: app.APIKey, Clock: &clock{}}
	v.enroll("alice")
	v.enroll("bob")
	runCLI(t, "users", "reset", "--data", data, "--app", "shop", "--user", "alice", "--reason", "lost phone")

	lines := func(args ...string) []audit.Entry {
		var out []audit.Entry
		for _, l := range strings.Split(strings.TrimSpace(string(runCLI(t, append([]string{"audit", "--data", data}, args...)...))), "\n") {
			if l == "" {
				continue
			}
			var e audit.Entry
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("audit line %q: %v", l, err)
			}
			out = append(out, e)
		}
		return out
	}
	all := lines()
	if len(all) < 5 {
		t.Fatalf("%d audit records, want enrollments of two users and a reset", len(all))
	}
	for _, e := range lines("--user", "alice") {
		if e.User != "alice" {
			t.Errorf("--user alice printed %+v", e)
		}
	}
	if last := lines("--user", "alice", "--app", "shop"); last[len(last)-1].Kind != "admin_reset" {
		t.Errorf("alice's last event is %+v, want admin_reset", last[len(last)-1])
	}
	if n := len(lines("--since", "1h")); n != len(all) {
		t.Errorf("--since 1h printed %d of %d", n, len(all))
	}
	if n := len(lines("--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))); n != 0 {
		t.Errorf("--since in an hour printed %d", n)
	}
	var ok audit.Report
	if err := json.Unmarshal(runCLI(t, "audit", "verify", "--data", data), &ok); err != nil || !ok.OK || ok.Records != int64(len(all)) {
		t.Fatalf("audit verify on an untouched trail: %+v %v", ok, err)
	}
	p.cmd.Process.Kill()
	<-p.done
	p.done <- nil

	for _, tc := range []struct {
		name   string
		tamper []string
		id     int64
	}{
		{"edited", []string{`UPDATE audit_log SET user_id = 'mallory' WHERE id = 3`}, 3},
		{"deleted", []string{`DELETE FROM audit_log WHERE id = 3`}, 3},
		{"reordered", []string{`UPDATE audit_log SET id = -3 WHERE id = 3`, `UPDATE audit_log SET id = 3 WHERE id = 4`, `UPDATE audit_log SET id = 4 WHERE id = -3`}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyData(t, data, dir)
			st, err := sqlite.Open(t.Context(), filepath.Join(dir, "twofold.db"))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range tc.tamper {
				if _, err := st.SQL().ExecContext(t.Context(), q); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			out, err := exec.Command(binary, "audit", "verify", "--data", dir).Output()
			if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 1 {
				t.Fatalf("audit verify after tampering: %v, want exit 1", err)
			}
			var rep audit.Report
			if err := json.Unmarshal(out, &rep); err != nil || rep.OK || rep.Broken == nil || rep.Broken.ID != tc.id || rep.Broken.Reason == "" {
				t.Fatalf("audit verify printed %s, want the break at record %d with a reason", out, tc.id)
			}
		})
	}
}

// copyData copies the SQLite database with its WAL, and the master key.
func copyData(t *testing.T, from, to string) {
	t.Helper()
	for _, name := range []string{"twofold.db", "twofold.db-wal", "master.key"} {
		b, err := readFileIfExists(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			if err := writeFile(filepath.Join(to, name), b); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCLI_AuditSinceMalformed_Exit2(t *testing.T) {
	cmd := exec.Command(binary, "audit", "--data", t.TempDir(), "--since", "yesterday")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--since") {
		t.Fatalf("audit --since yesterday: %v %q, want exit 2 naming --since", err, out)
	}
}

func readFileIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return b, err
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

// One admin action per sign-in: the token of a reset cannot reset anyone else.
func TestAdminReset_SameAdminTokenTwice_SecondRefused(t *testing.T) {
	f := newAdminFixture(t)
	auth := "Bearer " + f.opsKey
	body := map[string]string{"reason": "lost phone"}
	if r := f.reset("alice", "?app=shop", auth, f.root.Token, body); r.Status != 200 {
		t.Fatalf("first reset: %d %s", r.Status, r.Raw)
	}
	f.v.enroll("bob")
	if r := f.reset("bob", "?app=shop", auth, f.root.Token, body); r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
		t.Fatalf("the same admin token again: %d %s", r.Status, r.Raw)
	}
}

// An admin app created for some apps (`apps create --admin --admin-of`) resets their users
// only: a reset elsewhere is refused, changes nothing, spends no sign-in and is recorded.
func TestAdminReset_ScopedAdminApp_ResetsOnlyTheAppsItWasCreatedFor(t *testing.T) {
	f := newAdminFixture(t)
	blog := f.v.as(f.v.createApp("blog", "EdDSA"))
	blog.enroll("bea")
	var help wire.AppCreated
	if err := json.Unmarshal(runCLI(t, "apps", "create", "--data", f.v.Data, "--id", "help", "--origin", origin, "--admin", "--admin-of", "blog"), &help); err != nil {
		t.Fatal(err)
	}
	f.v.allowFirstFactor("help", "hana")
	hana := f.v.as(help.APIKey).enroll("hana") // her confirmation's token: a fresh second factor
	r := f.reset("alice", "?app=shop", "Bearer "+help.APIKey, hana.Token, map[string]string{"reason": "lost phone"})
	if r.Status != 403 || r.errCode() != wire.CodeOperatorRequired {
		t.Fatalf("a reset outside the admin app's apps: %d %s, want 403 %s", r.Status, r.Raw, wire.CodeOperatorRequired)
	}
	if !f.aliceHasTOTP() {
		t.Fatal("the refused reset removed alice's authenticator")
	}
	var refused []string
	for _, k := range f.v.auditKinds("hana") {
		if strings.HasPrefix(k, "admin_refused:") {
			refused = append(refused, k)
		}
	}
	if len(refused) != 1 || !strings.Contains(refused[0], "reset of shop/alice refused") {
		t.Errorf("hana's admin_refused records: %q", refused)
	}
	if r := f.reset("bea", "?app=blog", "Bearer "+help.APIKey, hana.Token, map[string]string{"reason": "lost phone"}); r.Status != 200 {
		t.Fatalf("a reset in the admin app's own app, with the same sign-in: %d %s", r.Status, r.Raw)
	}
	// Unscoped, ops still resets anywhere.
	if r := f.reset("alice", "?app=shop", "Bearer "+f.opsKey, f.adminToken(), map[string]string{"reason": "lost phone"}); r.Status != 200 {
		t.Fatalf("the unscoped admin app: %d %s", r.Status, r.Raw)
	}
}

// `users reset` clears the user's attempt budgets where it keeps them. Run without the
// serving verifiers' Redis (or with another prefix), it would clear the store's and say
// done while the user stayed locked out: it refuses, saying what to pass, and resets
// nothing. With the verifiers' --redis and --redis-prefix it resets.
func TestCLI_UsersReset_BudgetsElsewhereThanTheVerifiers_Refused(t *testing.T) {
	redisURL, prefix := pgtest.RedisAddr(t)
	v := startVerifierWith(t, func(c *serve.Config) { c.Redis, c.RedisPrefix = redisURL, prefix })
	e := v.enroll("rita")
	reset := func(extra ...string) (string, int) {
		cmd := exec.Command(binary, append([]string{"users", "reset", "--data", v.Data, "--app", "shop", "--user", "rita", "--reason", "lost phone"}, extra...)...)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	for _, extra := range [][]string{nil, {"--redis", redisURL, "--redis-prefix", prefix + "other:"}} {
		if out, code := reset(extra...); code != 2 || !strings.Contains(out, "--redis-prefix") || !strings.Contains(out, prefix) {
			t.Fatalf("users reset %v: exit %d, %s; want exit 2 naming the verifiers' Redis prefix", extra, code, out)
		}
	}
	if r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("rita after the refused resets: %d %s, want her authenticator still hers", r.Status, r.Raw)
	}
	if out, code := reset("--redis", redisURL, "--redis-prefix", prefix); code != 0 {
		t.Fatalf("users reset with the verifiers' Redis: exit %d, %s", code, out)
	}
	s := v.ticket("rita").call("GET", "/v1/session", nil)
	if f, _ := s.Body["factors"].(map[string]any); s.Status != 200 || f["totp"] != false {
		t.Fatalf("rita's session after the reset: %d %s, want no authenticator", s.Status, s.Raw)
	}
}

// The admin API needs an admin app's key *and* an admin's own fresh second factor. Whoever
// holds the key alone must not get the second half by naming a user of the admin app who
// has no factor yet and enrolling an authenticator of their own there: an admin's first
// factor is set up only after the operator allowed it on the verifier's host.
func TestAdminReset_AdminKeyAlone_NewAdminEnrollsOwnFactor_Refused(t *testing.T) {
	f := newAdminFixture(t)
	mallory := f.v.as(f.opsKey).ticket("mallory")
	start := mallory.call("POST", "/v1/totp/enrollments", nil)
	if start.Status != 403 || start.errCode() != wire.CodeOperatorRequired || !strings.Contains(start.str("message"), "twofold users reset") {
		t.Errorf("first enrollment of a new admin on the key alone: %d %s %q, want 403 %s naming `twofold users reset`", start.Status, start.errCode(), start.str("message"), wire.CodeOperatorRequired)
	}
	if start.Status == 201 {
		c := mallory.call("POST", "/v1/totp/enrollments/"+start.str("id")+"/confirm", wire.CodeRequest{Code: code(t, start.str("secret"), f.v.Clock.Now())})
		if c.Status == 200 {
			r := f.reset("alice", "?app=shop", "Bearer "+f.opsKey, c.str("token"), map[string]string{"reason": "lost phone"})
			t.Errorf("the token of an admin the key holder made up: reset %d %s", r.Status, r.Raw)
		}
	}
	if !f.aliceHasTOTP() {
		t.Fatal("alice's authenticator was reset on the admin app's key alone")
	}
	// Once the operator allowed it on the host, the new admin sets up a first factor, and
	// only that one: the allowance is spent.
	runCLI(t, "users", "reset", "--data", f.v.Data, "--app", "ops", "--user", "mallory", "--reason", "new support engineer")
	f.v.as(f.opsKey).enroll("mallory")
	r := f.v.as(f.opsKey).ticket("mallory").call("POST", "/v1/totp/enrollments", nil)
	if r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
		t.Errorf("a second enrollment on a fresh ticket: %d %s, want 403 step_up_required", r.Status, r.Raw)
	}
}

// An admin whose password and phone may be in the wrong hands is reset with --no-enroll:
// whoever holds them (and the admin app's key) cannot set up a first factor, not even in
// the hour a reset just before had given; a reset without it lets the real admin back in.
func TestAdminReset_NoEnroll_EndsTheLeaveToSetUpAFirstFactor(t *testing.T) {
	f := newAdminFixture(t)
	reset := func(extra ...string) {
		runCLI(t, append([]string{"users", "reset", "--data", f.v.Data, "--app", "ops", "--user", "oscar", "--reason", "phone stolen"}, extra...)...)
	}
	reset()              // the leave an earlier reset gave, still within its hour
	reset("--no-enroll") // then the phone turns out stolen with the password
	r := f.v.as(f.opsKey).ticket("oscar").call("POST", "/v1/totp/enrollments", nil)
	if r.Status != 403 || r.errCode() != wire.CodeOperatorRequired {
		t.Fatalf("enrollment after a --no-enroll reset: %d %s, want 403 %s", r.Status, r.Raw, wire.CodeOperatorRequired)
	}
	reset()
	f.v.as(f.opsKey).enroll("oscar")

	// On an ordinary app, whose users enroll with a ticket, it would withhold nothing: refused.
	cmd := exec.Command(binary, "users", "reset", "--data", f.v.Data, "--app", "shop", "--user", "alice", "--reason", "phone stolen", "--no-enroll")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "admin apps") || !f.aliceHasTOTP() {
		t.Errorf("--no-enroll on an ordinary app: %v %s (alice still has her authenticator: %v), want exit 2 and nothing reset", err, out, f.aliceHasTOTP())
	}
}

// An admin app made for some apps learns nothing of the others: a reset in an app that
// exists outside its scope and one in an app that does not exist are refused alike.
func TestAdminReset_ScopedAdminApp_OtherAppsExistenceNotTold(t *testing.T) {
	f := newAdminFixture(t)
	f.v.createApp("blog", "EdDSA")
	var help wire.AppCreated
	if err := json.Unmarshal(runCLI(t, "apps", "create", "--data", f.v.Data, "--id", "help", "--origin", origin, "--admin", "--admin-of", "blog"), &help); err != nil {
		t.Fatal(err)
	}
	f.v.allowFirstFactor("help", "hana")
	hana := f.v.as(help.APIKey).enroll("hana")
	answer := func(app string) string {
		r := f.reset("alice", "?app="+app, "Bearer "+help.APIKey, hana.Token, map[string]string{"reason": "lost phone"})
		return fmt.Sprintf("%d %s %s", r.Status, r.errCode(), strings.ReplaceAll(r.str("message"), app, "APP"))
	}
	if exists, missing := answer("shop"), answer("shap"); exists != missing || !strings.HasPrefix(exists, "403 operator_required") {
		t.Errorf("outside its scope, an app that exists: %s; one that does not: %s; want both the same 403 operator_required", exists, missing)
	}
	if !f.aliceHasTOTP() {
		t.Fatal("a refused reset removed alice's authenticator")
	}
}
