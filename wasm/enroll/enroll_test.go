package enroll

import (
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
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

func TestSnapshot_KeepsRecoveryCodesUntilSaved(t *testing.T) {
	s := State{Step: Recovery, RecoveryCodes: []string{"abcd-efgh-jkmn", "0000-1111-2222"}, Token: wire.Token{Token: "jwt", TokenType: "Bearer", ExpiresIn: 300}}
	got, err := Resume(Snapshot(s), t0)
	if err != nil || got.Step != Recovery || len(got.RecoveryCodes) != 2 || got.RecoveryCodes[1] != "0000-1111-2222" || got.Token != s.Token {
		t.Fatalf("resumed %+v, %v", got, err)
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
