package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/passkey/passkeytest"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// wrongCode is a code that is not the current one (nor near it) for secret.
func wrongCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	near := map[string]bool{}
	for i := -10; i <= 10; i++ {
		near[code(t, secret, at.Add(time.Duration(i)*30*time.Second))] = true
	}
	for n := 0; ; n++ {
		c := fmt.Sprintf("%06d", (n*7919)%1000000)
		if !near[c] {
			return c
		}
	}
}

func TestBruteForce_100ParallelWrongGuesses_AtMost5Weighed(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("mallory-target")
	wrong := wrongCode(t, e.Secret, v.Clock.Now())
	const n = 100
	results := race(e.browser, n, "POST", "/v1/totp/verify", wire.CodeRequest{Code: wrong})
	weighed := 0
	for _, r := range results {
		switch {
		case r.Status == 401 && r.errCode() == wire.CodeInvalidCode:
			weighed++
		case r.Status == 429 && r.errCode() == wire.CodeRateLimited:
			ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			// 30 s from the fifth reservation, which may have come a moment after this
			// request read the clock.
			if r.Body["retry_after"] == nil || ra < 1 || ra > 31 {
				t.Errorf("429 without a sound retry_after/Retry-After: %v %s", r.Header.Get("Retry-After"), r.Raw)
			}
		default:
			t.Errorf("unexpected answer %d %s", r.Status, r.Raw)
		}
	}
	if weighed > 5 || weighed == 0 {
		t.Fatalf("%d of %d parallel wrong guesses were weighed, want 1..5", weighed, n)
	}

	// A correct code during the back-off is refused too, and changes nothing.
	good := wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}
	if r := e.call("POST", "/v1/totp/verify", good); r.Status != 429 {
		t.Fatalf("correct code during back-off: %d %s", r.Status, r.Raw)
	}
	// The back-off (30 s after the fifth failure) expires on the verifier's clock.
	v.Clock.Advance(31 * time.Second)
	good = wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now())}
	if r := e.call("POST", "/v1/totp/verify", good); r.Status != 200 {
		t.Fatalf("correct code after the back-off: %d %s", r.Status, r.Raw)
	}
}

func TestBruteForce_BackoffDoublesToCap_SuccessResets(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("oscar")
	guess := func() reply {
		return v.ticket("oscar").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: wrongCode(t, e.Secret, v.Clock.Now())})
	}
	for i := range 5 {
		if r := guess(); r.Status != 401 {
			t.Fatalf("guess %d: %d %s", i+1, r.Status, r.Raw)
		}
	}
	for _, want := range []int{30, 60, 120, 240, 480, 900, 900} {
		r := guess()
		if r.Status != 429 || r.Body["retry_after"] != float64(want) {
			t.Fatalf("want a %d s back-off, got %d %s", want, r.Status, r.Raw)
		}
		v.Clock.Advance(time.Duration(want) * time.Second)
		if r := guess(); r.Status != 401 {
			t.Fatalf("after waiting %d s: %d %s", want, r.Status, r.Raw)
		}
	}
	// A success resets the count: five free tries again.
	v.Clock.Advance(15 * time.Minute)
	if r := v.ticket("oscar").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now())}); r.Status != 200 {
		t.Fatalf("success: %d %s", r.Status, r.Raw)
	}
	for i := range 5 {
		if r := guess(); r.Status != 401 {
			t.Fatalf("guess %d after a success: %d %s", i+1, r.Status, r.Raw)
		}
	}
}

func TestBruteForce_100Failures_LockUntilRecoveryCode(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("pat")
	for i := 1; i <= 100; i++ {
		r := v.ticket("pat").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: wrongCode(t, e.Secret, v.Clock.Now())})
		if r.Status != 401 {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Raw)
		}
		v.Clock.Advance(15 * time.Minute) // past any back-off
	}
	good := wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now())}
	r := v.ticket("pat").call("POST", "/v1/totp/verify", good)
	if r.Status != 423 || r.errCode() != wire.CodeFactorLocked {
		t.Fatalf("correct code on a locked factor: %d %s", r.Status, r.Raw)
	}
	v.Clock.Advance(24 * time.Hour)
	if r := v.ticket("pat").call("POST", "/v1/totp/verify", good); r.Status != 423 {
		t.Fatalf("the lock must not expire by itself: %d %s", r.Status, r.Raw)
	}
	if r := v.ticket("pat").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status != 200 {
		t.Fatalf("recovery code: %d %s", r.Status, r.Raw)
	}
	good = wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now())}
	if r := v.ticket("pat").call("POST", "/v1/totp/verify", good); r.Status != 200 {
		t.Fatalf("code after the recovery lifted the lock: %d %s", r.Status, r.Raw)
	}
}

func TestBruteForce_PerAddressBudget_StopsSprayingManyAccounts(t *testing.T) {
	v := startVerifierWith(t, func(c *serve.Config) { c.IPBudget = 8 })
	var users []enrolled
	for i := range 10 {
		users = append(users, v.enroll(fmt.Sprintf("spray-%d", i)))
	}
	refused := 0
	for i, e := range users { // one guess per account: no account's own budget is touched
		r := e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: wrongCode(t, e.Secret, v.Clock.Now())})
		switch {
		case i < 8 && r.Status == 401:
		case i >= 8 && r.Status == 429 && r.errCode() == wire.CodeRateLimited:
			refused++
		default:
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if refused != 2 {
		t.Fatalf("%d sprayed guesses refused, want 2", refused)
	}
	// A correct code from the exhausted address is refused too: it is not weighed.
	if r := v.ticket("spray-9").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, users[9].Secret, v.Clock.Now())}); r.Status != 429 || r.errCode() != wire.CodeRateLimited {
		t.Fatalf("a correct code from the exhausted address: %d %s", r.Status, r.Raw)
	}
	// Successes are given back to the address's budget: a real user behind it still gets in
	// once the window has room.
	v.Clock.Advance(10 * time.Minute)
	if r := v.ticket("spray-9").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, users[9].Secret, v.Clock.Now())}); r.Status != 200 {
		t.Fatalf("after the window: %d %s", r.Status, r.Raw)
	}
}

func TestRecovery_SameCode20Parallel_ExactlyOneWins(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("quinn")
	var wg sync.WaitGroup
	results := make([]reply, 20)
	start := make(chan struct{})
	for i := range results {
		b := v.ticket("quinn")
		wg.Go(func() {
			<-start
			results[i] = b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[5]})
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, r := range results {
		switch {
		case r.Status == 200:
			wins++
		case r.Status == 401 && r.errCode() == wire.CodeInvalidCode, r.Status == 429:
		default:
			t.Errorf("unexpected %d %s", r.Status, r.Raw)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of 20 parallel uses of one recovery code succeeded, want 1", wins)
	}
}

func TestStepUp_EnforcedOnEveryEndpointThatNeedsIt(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("rosa")
	fid := v.factors(e.browser)[0]
	b := v.ticket("rosa") // not elevated
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/totp/enrollments"},
		{"POST", "/v1/recovery/codes"},
		{"DELETE", "/v1/factors/" + fid},
	} {
		r := b.call(tc.method, tc.path, nil)
		if r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
			t.Errorf("%s %s without step-up: %d %s", tc.method, tc.path, r.Status, r.Raw)
		}
	}
	if n := len(v.factors(b)); n != 1 {
		t.Fatalf("refused calls changed the factors: %d", n)
	}
}

func (v *verifier) factors(b browser) []string {
	v.t.Helper()
	r := b.call("GET", "/v1/factors", nil)
	if r.Status != 200 {
		v.t.Fatalf("factors: %d %s", r.Status, r.Raw)
	}
	var ids []string
	for _, f := range r.Body["factors"].([]any) {
		ids = append(ids, f.(map[string]any)["id"].(string))
	}
	return ids
}

func TestFactors_ReplacePhoneInOneStep_OldRemovedOnlyOnConfirm(t *testing.T) {
	v := startVerifier(t)
	old := v.enroll("sam")
	oldID := v.factors(old.browser)[0]
	b := v.ticket("sam")
	if r := b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, old.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("step-up: %d %s", r.Status, r.Raw)
	}
	r := b.call("POST", "/v1/totp/enrollments", wire.EnrollmentRequest{Label: "new phone", Replaces: oldID})
	if r.Status != 201 {
		t.Fatalf("enroll: %d %s", r.Status, r.Raw)
	}
	if ids := v.factors(b); len(ids) != 1 || ids[0] != oldID {
		t.Fatalf("the old phone went before the new one was confirmed: %v", ids)
	}
	if c := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: code(t, r.str("secret"), v.Clock.Now())}); c.Status != 200 || len(c.Body["recovery_codes"].([]any)) != 0 {
		t.Fatalf("confirm: %d %s", c.Status, c.Raw)
	}
	if ids := v.factors(b); len(ids) != 1 || ids[0] != r.str("id") {
		t.Fatalf("after confirming, factors = %v; want only the new one", ids)
	}
	if r := v.ticket("sam").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, old.Secret, v.Clock.Now().Add(60*time.Second))}); r.Status != 401 {
		t.Fatalf("the old phone still signs in: %d %s", r.Status, r.Raw)
	}
}

// Two new phones each meant to replace the old one (two tabs): the first confirmed
// removes it, and the trail says so once; the second confirmation adds its phone and
// records no removal it did not make.
func TestFactors_TwoReplacementsOfOnePhone_RemovalRecordedOnce(t *testing.T) {
	v := startVerifier(t)
	b, _ := v.elevated("sal")
	oldID := v.factors(b)[0]
	var news []reply
	for _, label := range []string{"new phone", "other new phone"} {
		r := b.call("POST", "/v1/totp/enrollments", wire.EnrollmentRequest{Label: label, Replaces: oldID})
		if r.Status != 201 {
			t.Fatalf("enroll: %d %s", r.Status, r.Raw)
		}
		news = append(news, r)
	}
	for _, r := range news {
		if c := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: code(t, r.str("secret"), v.Clock.Now())}); c.Status != 200 {
			t.Fatalf("confirm: %d %s", c.Status, c.Raw)
		}
	}
	if ids := v.factors(b); len(ids) != 2 || slices.Contains(ids, oldID) {
		t.Fatalf("factors = %v, want the two new phones", ids)
	}
	removals := 0
	err := v.env().Store.AuditRecords(t.Context(), store.AuditFilter{}, func(r store.AuditRecord) error {
		if r.Kind == string(audit.FactorRemoved) && r.Factor == oldID {
			removals++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if removals != 1 {
		t.Fatalf("the old phone's removal is recorded %d times, want once", removals)
	}
}

func TestFactors_TwoAuthenticators_EitherWorks_LastCannotBeDeleted(t *testing.T) {
	v := startVerifier(t)
	first := v.enroll("tess")
	b := v.ticket("tess")
	if r := b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, first.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("step-up: %d %s", r.Status, r.Raw)
	}
	r := b.call("POST", "/v1/totp/enrollments", wire.EnrollmentRequest{Label: "tablet"})
	second := r.str("secret")
	if c := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: code(t, second, v.Clock.Now())}); c.Status != 200 {
		t.Fatalf("confirm second: %d %s", c.Status, c.Raw)
	}
	// Replay state is per credential: each authenticator's next code works.
	v.Clock.Advance(30 * time.Second)
	for _, s := range []string{first.Secret, second} {
		if r := v.ticket("tess").call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, s, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
			t.Fatalf("verify: %d %s", r.Status, r.Raw)
		}
	}
	ids := v.factors(b)
	if len(ids) != 2 {
		t.Fatalf("factors = %v", ids)
	}
	if r := b.call("DELETE", "/v1/factors/"+ids[0], nil); r.Status != 204 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if r := b.call("DELETE", "/v1/factors/"+ids[1], nil); r.Status != 409 || r.errCode() != wire.CodeLastFactor {
		t.Fatalf("deleting the last factor: %d %s", r.Status, r.Raw)
	}
	if r := b.call("DELETE", "/v1/factors/"+ids[0], nil); r.Status != 404 {
		t.Fatalf("deleting twice: %d %s", r.Status, r.Raw)
	}
}

// A phone whose clock runs one step ahead: after two codes agree on it, the window follows
// the phone, so a code two steps ahead (outside the plain ±1 window) is accepted.
func TestDrift_PhoneOneStepAhead_WindowFollowsWithoutWidening(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("uma")
	ahead := func(steps int) wire.CodeRequest {
		return wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(time.Duration(steps)*30*time.Second))}
	}
	if r := e.call("POST", "/v1/totp/verify", ahead(2)); r.Status != 401 {
		t.Fatalf("two steps ahead before any drift is known: %d %s", r.Status, r.Raw)
	}
	v.Clock.Advance(31 * time.Second) // back-off free: one failure only
	for range 2 {
		v.Clock.Advance(30 * time.Second)
		if r := e.call("POST", "/v1/totp/verify", ahead(1)); r.Status != 200 {
			t.Fatalf("one step ahead: %d %s", r.Status, r.Raw)
		}
	}
	v.Clock.Advance(30 * time.Second)
	if r := e.call("POST", "/v1/totp/verify", ahead(2)); r.Status != 200 {
		t.Fatalf("two steps ahead once drift is known: %d %s", r.Status, r.Raw)
	}
	v.Clock.Advance(3 * 30 * time.Second)
	if r := e.call("POST", "/v1/totp/verify", ahead(-1)); r.Status != 401 {
		t.Fatalf("the window widened: a code one step behind still works: %d %s", r.Status, r.Raw)
	}
}

func TestRecovery_Regenerate_OldSetDies_SessionMarksRecovery(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("vic")
	b := v.ticket("vic")
	if r := b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status != 200 {
		t.Fatalf("recovery: %d %s", r.Status, r.Raw)
	}
	if s := b.call("GET", "/v1/session", nil); s.Body["recovery_used"] != true {
		t.Errorf("session after a recovery login: %s", s.Raw)
	}
	r := b.call("POST", "/v1/recovery/codes", nil)
	if r.Status != 200 || len(r.Body["recovery_codes"].([]any)) != 10 {
		t.Fatalf("regenerate: %d %s", r.Status, r.Raw)
	}
	fresh := r.Body["recovery_codes"].([]any)[0].(string)
	if r := v.ticket("vic").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[1]}); r.Status != 401 {
		t.Fatalf("an old code after regeneration: %d %s", r.Status, r.Raw)
	}
	if r := v.ticket("vic").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: fresh}); r.Status != 200 {
		t.Fatalf("a new code: %d %s", r.Status, r.Raw)
	}
}

// A replayed code is refused and counts against the factor's budget like a wrong one, so
// resubmitting a code seen over someone's shoulder buys no free guesses.
func TestBruteForce_ReplaysCount_LikeWrongCodes(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("rita")
	used := wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}
	if r := e.call("POST", "/v1/totp/verify", used); r.Status != 200 {
		t.Fatalf("first use: %d %s", r.Status, r.Raw)
	}
	for i := range 5 {
		if r := e.call("POST", "/v1/totp/verify", used); r.Status != 409 || r.errCode() != wire.CodeCodeAlreadyUsed {
			t.Fatalf("replay %d: %d %s", i+1, r.Status, r.Raw)
		}
	}
	if r := e.call("POST", "/v1/totp/verify", used); r.Status != 429 || r.errCode() != wire.CodeRateLimited {
		t.Fatalf("sixth replay, past the five free attempts: %d %s", r.Status, r.Raw)
	}
}

// Two removals at once, of each of a user's two factors (an authenticator app and a
// passkey), cannot both pass the check that another factor is left: one is removed, the
// other answers 409 last_factor, and the user keeps a second factor.
func TestDeleteFactor_BothFactorsAtOnce_OneStays(t *testing.T) {
	onEachStore(t, func(t *testing.T, v *verifier) {
		for i := range 8 {
			b, _ := v.elevated(fmt.Sprintf("racer%d", i))
			v.registerPasskey(b, passkeytest.New(origin, "localhost"))
			ids := v.factors(b)
			if len(ids) != 2 {
				t.Fatalf("factors = %v, want an app and a passkey", ids)
			}
			status := make([]int, len(ids))
			var wg sync.WaitGroup
			for j, id := range ids {
				wg.Go(func() { status[j] = b.call("DELETE", "/v1/factors/"+id, nil).Status })
			}
			wg.Wait()
			slices.Sort(status)
			if left := v.factors(b); len(left) != 1 || status[0] != 204 || status[1] != 409 {
				t.Fatalf("round %d: removals answered %v and left %v, want 204 and 409 and one factor", i, status, left)
			}
		}
	})
}

// passkey_only set while the user removes their passkey: the policy must not end the
// user's TOTP secrets for a passkey that is going, nor may the removal take the passkey
// the policy counted on. Whatever the order, the user keeps a second factor.
func TestPasskeyOnly_WhileThePasskeyIsRemoved_OneFactorStays(t *testing.T) {
	onEachStore(t, func(t *testing.T, v *verifier) {
		for i := range 8 {
			user := fmt.Sprintf("racer%d", i)
			b, _ := v.elevated(user)
			key := v.registerPasskey(b, passkeytest.New(origin, "localhost"))
			var wg sync.WaitGroup
			wg.Go(func() { b.call("DELETE", "/v1/factors/"+key, nil) })
			wg.Go(func() {
				v.call("PUT", "/v1/users/"+user+"/policy", "Bearer "+v.APIKey, "", wire.PolicyRequest{Policy: "passkey_only"})
			})
			wg.Wait()
			if left := v.factors(b); len(left) != 1 {
				t.Fatalf("round %d: the user is left with factors %v, want one", i, left)
			}
		}
	})
}

// lockPasskey makes 100 failed passkey logins for user with key, as someone holding the
// user's tickets could, and checks that the passkey factor is then locked.
func (v *verifier) lockPasskey(user string, key *passkeytest.Authenticator) {
	v.t.Helper()
	key.Origin = "http://phish.example"
	for i := 1; i <= 100; i++ {
		b := v.ticket(user)
		if r := b.call("POST", "/v1/webauthn/assertions/finish", v.assertion(b, key)); r.Status != 401 {
			v.t.Fatalf("failed login %d: %d %s", i, r.Status, r.Raw)
		}
		v.Clock.Advance(15 * time.Minute) // past any back-off
	}
	key.Origin = origin
	b := v.ticket(user)
	if r := b.call("POST", "/v1/webauthn/assertions/finish", v.assertion(b, key)); r.Status != 423 || r.errCode() != wire.CodeFactorLocked {
		v.t.Fatalf("a good passkey on a locked factor: %d %s, want 423 factor_locked", r.Status, r.Raw)
	}
}

// A recovery code lifts a passkey's lock too, as it lifts an authenticator app's.
func TestBruteForce_100FailedPasskeyLogins_LockUntilRecoveryCode(t *testing.T) {
	v := startVerifier(t)
	b, e := v.elevated("pia")
	key := passkeytest.New(origin, "localhost")
	v.registerPasskey(b, key)
	v.lockPasskey("pia", key)
	if r := v.ticket("pia").call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status != 200 {
		t.Fatalf("recovery code: %d %s", r.Status, r.Raw)
	}
	lb := v.ticket("pia")
	if r := lb.call("POST", "/v1/webauthn/assertions/finish", v.assertion(lb, key)); r.Status != 200 {
		t.Fatalf("passkey after the recovery code: %d %s, want 200", r.Status, r.Raw)
	}
}

// Two first authenticators confirmed at once (two tabs, one ticket): one goes through, the
// other is asked to step up, and a confirmation that shows recovery codes shows codes that
// work, since the person saves the ones they see.
func TestConfirmEnrollment_TwoFirstAuthenticatorsAtOnce_ShownCodesWork(t *testing.T) {
	onEachStore(t, func(t *testing.T, v *verifier) {
		for i := range 6 {
			user := fmt.Sprintf("tabs%d", i)
			b := v.ticket(user)
			var confirms []func() reply
			for range 2 {
				e := b.call("POST", "/v1/totp/enrollments", nil)
				if e.Status != 201 {
					t.Fatalf("enroll: %d %s", e.Status, e.Raw)
				}
				confirms = append(confirms, func() reply {
					return b.call("POST", "/v1/totp/enrollments/"+e.str("id")+"/confirm", wire.CodeRequest{Code: code(t, e.str("secret"), v.Clock.Now())})
				})
			}
			answers := make([]reply, len(confirms))
			var wg sync.WaitGroup
			for j, confirm := range confirms {
				wg.Go(func() { answers[j] = confirm() })
			}
			wg.Wait()
			signedIn := 0
			for j, r := range answers {
				if r.Status == 403 && r.errCode() == wire.CodeStepUpRequired {
					continue // the other tab: the user has a factor now, which this ticket has not passed
				}
				if r.Status != 200 {
					t.Fatalf("round %d, confirmation %d: %d %s", i, j, r.Status, r.Raw)
				}
				signedIn++
				shown, _ := r.Body["recovery_codes"].([]any)
				if len(shown) == 0 {
					continue
				}
				if rv := v.ticket(user).call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: shown[0].(string)}); rv.Status != 200 {
					t.Fatalf("round %d: a recovery code confirmation %d showed does not sign in: %d %s", i, j, rv.Status, rv.Raw)
				}
			}
			if signedIn == 0 {
				t.Fatalf("round %d: no confirmation went through: %d, %d", i, answers[0].Status, answers[1].Status)
			}
		}
	})
}

// onEachStore runs f against a fresh verifier on each store.
func onEachStore(t *testing.T, f func(t *testing.T, v *verifier)) {
	for _, be := range stores {
		t.Run(be.name, func(t *testing.T) {
			f(t, startVerifierWith(t, be.on(t)))
		})
	}
}

// An enrollment started while the user had no second factor must not be confirmable
// without step-up once they have one: whoever held the password and started it first
// would otherwise add an authenticator of their own to the account, and sign in with it,
// minutes after the user set up theirs.
func TestConfirmEnrollment_StartedBeforeTheUsersFirstFactor_NeedsStepUpAfterIt(t *testing.T) {
	v := startVerifier(t)
	attacker := v.ticket("una")
	e := attacker.call("POST", "/v1/totp/enrollments", nil)
	if e.Status != 201 {
		t.Fatalf("enroll: %d %s", e.Status, e.Raw)
	}
	v.enroll("una") // the user sets up their own authenticator
	r := attacker.call("POST", "/v1/totp/enrollments/"+e.str("id")+"/confirm", wire.CodeRequest{Code: code(t, e.str("secret"), v.Clock.Now())})
	if r.Status != 403 || r.errCode() != wire.CodeStepUpRequired {
		t.Fatalf("confirming it after the user's own: %d %s, want 403 step_up_required", r.Status, r.Raw)
	}
	if n := len(v.factors(v.ticket("una"))); n != 1 {
		t.Fatalf("the user has %d factors, want their own only", n)
	}
}

// Whoever stole the phone keeps a ticket that passed its code (a fresh one every few
// minutes stays within a ticket's life). Once the user changes their factors, or support
// resets them, that ticket must not change the new ones: otherwise it replaces the user's
// new phone with the thief's and takes a fresh set of recovery codes.
func TestStolenPhone_ElevatedTicketOutlivesNoFactorChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change is what the user (or support) does after the theft; want is what the
		// thief's ticket is then told when it tries to enroll an authenticator.
		change func(t *testing.T, v *verifier, e enrolled)
		want   string
	}{
		{"user replaces the phone after a recovery code", func(t *testing.T, v *verifier, e enrolled) {
			b := v.ticket("vera")
			if r := b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status != 200 {
				t.Fatalf("recovery sign-in: %d %s", r.Status, r.Raw)
			}
			old := v.factors(b)[0]
			r := b.call("POST", "/v1/totp/enrollments", wire.EnrollmentRequest{Label: "new phone", Replaces: old})
			if r.Status != 201 {
				t.Fatalf("enroll: %d %s", r.Status, r.Raw)
			}
			if c := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: code(t, r.str("secret"), v.Clock.Now())}); c.Status != 200 {
				t.Fatalf("confirm: %d %s", c.Status, c.Raw)
			}
		}, wire.CodeStepUpRequired},
		{"user regenerates the recovery codes", func(t *testing.T, v *verifier, e enrolled) {
			b := v.ticket("vera")
			if r := b.call("POST", "/v1/recovery/verify", wire.CodeRequest{Code: e.RecoveryCodes[0]}); r.Status != 200 {
				t.Fatalf("recovery sign-in: %d %s", r.Status, r.Raw)
			}
			if r := b.call("POST", "/v1/recovery/codes", nil); r.Status != 200 {
				t.Fatalf("regenerate: %d %s", r.Status, r.Raw)
			}
		}, wire.CodeStepUpRequired},
		{"support resets the user", func(t *testing.T, v *verifier, e enrolled) {
			if err := v.env().MFA.ResetUser(t.Context(), "shop", "vera", "phone stolen", mfa.Operator("support")); err != nil {
				t.Fatal(err)
			}
		}, wire.CodeInvalidTicket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onEachStore(t, func(t *testing.T, v *verifier) {
				e := v.enroll("vera")
				thief := v.ticket("vera")
				if r := thief.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
					t.Fatalf("the thief's sign-in with the stolen phone: %d %s", r.Status, r.Raw)
				}
				v.Clock.Advance(time.Minute)
				tc.change(t, v, e)
				r := thief.call("POST", "/v1/totp/enrollments", wire.EnrollmentRequest{Label: "thief"})
				if r.errCode() != tc.want {
					t.Fatalf("the thief's old ticket enrolls after the change: %d %s, want %s", r.Status, r.errCode(), tc.want)
				}
				if tc.want == wire.CodeStepUpRequired {
					if s := thief.call("GET", "/v1/session", nil); s.Body["elevated"] != false {
						t.Fatalf("the thief's ticket is still elevated: %s", s.Raw)
					}
					if r := thief.call("POST", "/v1/recovery/codes", nil); r.errCode() != wire.CodeStepUpRequired {
						t.Fatalf("the thief's old ticket regenerates codes: %d %s", r.Status, r.Raw)
					}
				}
			})
		})
	}
}

// A request checks its ticket's elevation when it begins, and writes later. A support
// reset, or a change of factors through another of the user's tickets, may land in
// between; whoever holds the ticket may be who the reset is against, so the write must not
// happen (someone looping passkey registrations would otherwise keep one through a reset).
// The requests here are the service's calls with the principal as each request saw it
// when it began.
func TestElevatedChange_ElevationEndedWhileInFlight_WritesNothing(t *testing.T) {
	v := startVerifier(t)
	ctx := t.Context()
	env, err := serve.Open(ctx, v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	inFlight := func(b browser) mfa.Principal {
		t.Helper()
		p, err := env.MFA.Authenticate(ctx, b.ticket)
		if err != nil || !p.Elevated() {
			t.Fatalf("the request's principal: elevated %v, %v", p.Elevated(), err)
		}
		p.IP = "127.0.0.1"
		return p
	}
	refused := func(what string, err error, code string) {
		t.Helper()
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != code {
			t.Fatalf("%s: %v, want %s", what, err, code)
		}
	}

	t.Run("ResetLandsFirst", func(t *testing.T) {
		e := v.enroll("reset-in-flight")
		p := inFlight(e.browser)
		opts, err := env.MFA.BeginPasskeyRegistration(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := passkeytest.New(origin, "localhost").Create(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.MFA.ResetUser(ctx, "shop", "reset-in-flight", "phone stolen", mfa.Operator("support")); err != nil {
			t.Fatal(err)
		}
		_, err = env.MFA.FinishPasskeyRegistration(ctx, p, cred, "Key")
		refused("a passkey registration finishing after the reset", err, wire.CodeInvalidTicket)
		_, err = env.MFA.RegenerateRecoveryCodes(ctx, p)
		refused("new recovery codes after the reset", err, wire.CodeInvalidTicket)
		if pks, err := env.Store.PasskeysOfUser(ctx, "shop", "reset-in-flight"); err != nil || len(pks) != 0 {
			t.Fatalf("%d passkeys after the reset (%v), want none", len(pks), err)
		}
		if n, err := env.Store.RecoveryCodesLeft(ctx, "shop", "reset-in-flight"); err != nil || n != 0 {
			t.Fatalf("%d recovery codes after the reset (%v), want none", n, err)
		}
	})

	t.Run("AnotherTicketChangedTheFactorsFirst", func(t *testing.T) {
		e := v.enroll("changed-in-flight")
		pk := v.registerPasskey(e.browser, passkeytest.New(origin, "localhost"))
		p := inFlight(e.browser)
		// The person, on another device, signs in and takes new recovery codes: every other
		// ticket has to pass a second factor again.
		other := v.ticket("changed-in-flight")
		if r := other.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, e.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
			t.Fatalf("sign-in on the other device: %d %s", r.Status, r.Raw)
		}
		if r := other.call("POST", "/v1/recovery/codes", nil); r.Status != 200 {
			t.Fatalf("new recovery codes on the other device: %d %s", r.Status, r.Raw)
		}
		refused("removing the passkey", env.MFA.DeleteFactor(ctx, p, pk), wire.CodeStepUpRequired)
		_, err := env.MFA.RegenerateRecoveryCodes(ctx, p)
		refused("new recovery codes", err, wire.CodeStepUpRequired)
		if pks, err := env.Store.PasskeysOfUser(ctx, "shop", "changed-in-flight"); err != nil || len(pks) != 1 {
			t.Fatalf("%d passkeys (%v), want the one still there", len(pks), err)
		}
	})
}
