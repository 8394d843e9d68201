package enroll

import (
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/wasm/b64"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var pending = wire.Enrollment{ID: "totp_1", OTPAuthURI: "otpauth://totp/Shop:alice?secret=ABC", Secret: "ABC", QRSVG: "<svg>\n</svg>", ExpiresAt: t0.Add(10 * time.Minute)}

func step(t *testing.T, s State, ev Event, now time.Time, want Step, wantFx Effect) State {
	t.Helper()
	s, fx := Next(s, ev, now)
	if s.Step != want || fx != wantFx {
		t.Fatalf("%s: got %s/%d, want %s/%d (err %v)", ev.Kind, s.Step, fx, want, wantFx, s.Err)
	}
	return s
}

func TestNext_HappyPath(t *testing.T) {
	s := step(t, State{}, Event{Kind: Start}, t0, Starting, CallStart)
	s = step(t, s, Event{Kind: Start}, t0, Starting, None) // a double click starts nothing
	s = step(t, s, Event{Kind: Started, Enrollment: pending}, t0, Scan, None)
	s = step(t, s, Event{Kind: Submit, Code: "１２３ ４５６"}, t0, Confirming, CallConfirm)
	if s.Sending != "123456" {
		t.Fatalf("sends %q", s.Sending)
	}
	s = step(t, s, Event{Kind: Submit, Code: "123456"}, t0, Confirming, None)
	s = step(t, s, Event{Kind: Confirmed, Confirmation: wire.Confirmation{RecoveryCodes: []string{"a", "b"}, Token: wire.Token{Token: "jwt"}}}, t0, Recovery, None)
	if len(s.RecoveryCodes) != 2 || s.Token.Token != "jwt" || s.Enrollment.Secret != "" {
		t.Fatalf("recovery state %+v", s)
	}
	s = step(t, s, Event{Kind: Saved}, t0, Done, None)
	if s.Token.Token != "jwt" || s.RecoveryCodes != nil {
		t.Fatalf("done state %+v", s)
	}
}

func TestNext_SecondAuthenticatorHasNoRecoveryStep(t *testing.T) {
	s := State{Step: Confirming, Enrollment: pending}
	step(t, s, Event{Kind: Confirmed, Confirmation: wire.Confirmation{RecoveryCodes: []string{}, Token: wire.Token{Token: "jwt"}}}, t0, Done, None)
}

func TestNext_WrongCodeRetriesAndCounts(t *testing.T) {
	s := State{Step: Scan, Enrollment: pending}
	s = step(t, s, Event{Kind: Submit, Code: "12345"}, t0, Scan, None)
	if s.Err == nil || s.Err.Code != wire.CodeInvalidCode || s.Attempts != 0 {
		t.Fatalf("a short code: %+v", s)
	}
	for i := 1; i <= HintAfter; i++ {
		s = step(t, s, Event{Kind: Submit, Code: "000000"}, t0, Confirming, CallConfirm)
		s = step(t, s, Event{Kind: ConfirmFailed, Err: &wire.Error{Code: wire.CodeInvalidCode, Message: "no", Clock: wire.ClockAhead}}, t0, Scan, None)
		if s.Attempts != i || s.Err.Clock != wire.ClockAhead || s.Enrollment.ID != pending.ID {
			t.Fatalf("after %d wrong codes: %+v", i, s)
		}
	}
}

func TestNext_RateLimitedWaitsWithoutCalling(t *testing.T) {
	s := State{Step: Confirming, Enrollment: pending}
	s = step(t, s, Event{Kind: ConfirmFailed, Err: &wire.Error{Code: wire.CodeRateLimited, RetryAfter: 20}}, t0, Scan, None)
	s = step(t, s, Event{Kind: Submit, Code: "123456"}, t0.Add(10*time.Second), Scan, None)
	if s.Err.Code != wire.CodeRateLimited {
		t.Fatalf("err %v", s.Err)
	}
	step(t, s, Event{Kind: Submit, Code: "123456"}, t0.Add(20*time.Second), Confirming, CallConfirm)
}

func TestNext_ExpiryEndsThePendingEnrollment(t *testing.T) {
	s := State{Step: Scan, Enrollment: pending}
	s = step(t, s, Event{Kind: Submit, Code: "123456"}, pending.ExpiresAt, Expired, None)
	if s.Enrollment.Secret != "" {
		t.Fatal("an expired enrollment keeps its secret")
	}
	s = step(t, State{Step: Scan, Enrollment: pending}, Event{Kind: Tick}, pending.ExpiresAt.Add(time.Second), Expired, None)
	step(t, s, Event{Kind: Start}, t0, Starting, CallStart)
	// The verifier forgot it first (not_found): expired too.
	step(t, State{Step: Confirming, Enrollment: pending}, Event{Kind: ConfirmFailed, Err: &wire.Error{Code: wire.CodeNotFound}}, t0, Expired, None)
}

// A confirmation that got no answer, or came too late for its ticket, keeps the enrollment
// the person scanned: retrying (after a reload, with a new ticket) confirms the same one.
func TestNext_ConfirmUnanswered_KeepsTheScannedEnrollment(t *testing.T) {
	for _, code := range []string{wire.CodeUnavailable, wire.CodeInternal, wire.CodeInvalidTicket, ""} {
		var err *wire.Error
		if code != "" {
			err = &wire.Error{Code: code, Message: "m"}
		}
		s := step(t, State{Step: Confirming, Enrollment: pending, Sending: "123456"}, Event{Kind: ConfirmFailed, Err: err}, t0, Scan, None)
		if s.Enrollment.ID != pending.ID || s.Err == nil || s.Sending != "" {
			t.Fatalf("%q: %+v", code, s)
		}
		if got, rerr := Resume(Snapshot(s), t0); rerr != nil || got.Enrollment.Secret != pending.Secret {
			t.Fatalf("%q: snapshot resumes %+v, %v", code, got, rerr)
		}
	}
	for _, code := range []string{wire.CodeStepUpRequired, wire.CodeOriginNotAllowed, wire.CodePasskeyRequired} {
		step(t, State{Step: Confirming, Enrollment: pending}, Event{Kind: ConfirmFailed, Err: &wire.Error{Code: code}}, t0, Failed, None)
	}
}

func TestNext_StepUpRequiredFails(t *testing.T) {
	s := step(t, State{Step: Starting}, Event{Kind: StartFailed, Err: &wire.Error{Code: wire.CodeStepUpRequired, Message: "verify first"}}, t0, Failed, None)
	if s.Err.Code != wire.CodeStepUpRequired {
		t.Fatal(s.Err)
	}
	step(t, s, Event{Kind: Start}, t0, Starting, CallStart)
}

func TestSnapshot_ResumesTheSameEnrollmentAfterReload(t *testing.T) {
	s := State{Step: Confirming, Enrollment: pending, Attempts: 2, Sending: "123456", Err: wire.NewError("x", "y")}
	snap := Snapshot(s)
	got, err := Resume(snap, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Step != Scan || got.Enrollment != pending || got.Attempts != 2 || got.Err != nil || got.Sending != "" {
		t.Fatalf("resumed %+v", got)
	}
	got, _ = Resume(snap, pending.ExpiresAt)
	if got.Step != Expired {
		t.Fatalf("resumed an expired enrollment as %s", got.Step)
	}
}

// The recovery codes survive a reload; the token does not: the reload brings a new ticket,
// whose nonce the old token does not carry, so the UI asks for a code to finish.
func TestSnapshot_KeepsRecoveryCodesUntilSaved_NeverTheToken(t *testing.T) {
	s := State{Step: Recovery, RecoveryCodes: []string{"abcd-efgh-jkmn", "0000-1111-2222"}, Token: wire.Token{Token: "jwt.of.t1", TokenType: "Bearer", ExpiresIn: 300}}
	snap := Snapshot(s)
	if strings.Contains(snap, b64.Encode([]byte("jwt.of.t1"))) {
		t.Fatalf("the snapshot holds the token: %q", snap)
	}
	got, err := Resume(snap, t0)
	if err != nil || got.Step != Recovery || len(got.RecoveryCodes) != 2 || got.RecoveryCodes[1] != "0000-1111-2222" || got.Token.Token != "" {
		t.Fatalf("resumed %+v, %v", got, err)
	}
	if done := step(t, got, Event{Kind: Saved}, t0, Done, None); done.Token.Token != "" {
		t.Fatalf("saved after a reload: token %q, want none", done.Token.Token)
	}
	for _, st := range []Step{Idle, Starting, Done, Expired, Failed} {
		if Snapshot(State{Step: st}) != "" {
			t.Errorf("%s has a snapshot", st)
		}
	}
}

func TestResume_RefusesGarbage(t *testing.T) {
	for _, s := range []string{"", "tf1", "tf0.a.b.c.d.e.f.g.h.i.j.k", "tf1.!.b.c.d.e.f.g.h.i.j.k", Snapshot(State{Step: Scan, Enrollment: pending})[:40]} {
		if _, err := Resume(s, t0); err == nil {
			t.Errorf("Resume(%q) accepted", s)
		}
	}
}
