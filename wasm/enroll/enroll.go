// Package enroll is the enrollment flow of an authenticator app as a state machine:
// start → scan the QR code → confirm with a code → save the recovery codes → done, with
// retries on a wrong code, expiry of the pending enrollment, and a snapshot that survives a
// page reload, so a reload in the middle resumes the same enrollment (the QR the person
// already scanned) instead of starting a new one whose codes their app does not know.
//
// The machine does no I/O: Next takes the state and an event and returns the new state and
// the effect to run (a call to the verifier); the caller runs it and feeds the answer back
// as the next event. The clock is a parameter.
package enroll

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/wasm/b64"
	"github.com/twofold-dev/twofold/wasm/codes"
)

// Step is where the person is.
type Step string

const (
	Idle       Step = "idle"       // nothing started yet
	Starting   Step = "starting"   // asked the verifier for a new authenticator
	Scan       Step = "scan"       // QR code and secret shown; waiting for a code
	Confirming Step = "confirming" // code sent
	Recovery   Step = "recovery"   // recovery codes shown once; waiting for "I saved them"
	Done       Step = "done"       // enrolled; Token is the proof
	Expired    Step = "expired"    // the pending enrollment timed out; Start begins anew
	Failed     Step = "failed"     // an error that trying the same step again cannot fix
)

// State is everything the UI shows. Err is the last error, for the person; it is not part
// of a snapshot.
type State struct {
	Step          Step
	Enrollment    wire.Enrollment
	RecoveryCodes []string
	Token         wire.Token
	Attempts      int // wrong codes typed for this enrollment
	Err           *wire.Error
	RetryAt       time.Time // not before, after rate_limited
	Sending       string    // the normalised code of a CallConfirm effect
}

// Effect is what the caller must do after a transition.
type Effect int

const (
	None        Effect = iota
	CallStart          // POST /v1/totp/enrollments, then Started or StartFailed
	CallConfirm        // POST /v1/totp/enrollments/{State.Enrollment.ID}/confirm with State.Sending, then Confirmed or ConfirmFailed
)

// Event is one thing that happened. Exactly one field group is meaningful, chosen by Kind.
type Event struct {
	Kind         EventKind
	Code         string            // Submit
	Enrollment   wire.Enrollment   // Started
	Confirmation wire.Confirmation // Confirmed
	Err          *wire.Error       // StartFailed, ConfirmFailed
}

// EventKind names an event.
type EventKind string

const (
	Start         EventKind = "start"          // the person asks to set up an authenticator
	Started       EventKind = "started"        // the verifier answered the start
	StartFailed   EventKind = "start_failed"   //
	Submit        EventKind = "submit"         // the person typed a code
	Confirmed     EventKind = "confirmed"      // the verifier accepted it
	ConfirmFailed EventKind = "confirm_failed" //
	Saved         EventKind = "saved"          // "I saved them"
	Tick          EventKind = "tick"           // time passed; expires a pending enrollment
)

// HintAfter is the number of wrong codes after which the UI suggests checking the phone's
// clock and scanning again.
const HintAfter = 3

var (
	errFormat  = wire.NewError(wire.CodeInvalidCode, "Type the 6-digit code your authenticator app shows for this account.")
	errExpired = wire.NewError(wire.CodeNotFound, "This setup timed out before it was confirmed. Start again and scan the new code.")
	errBusy    = wire.NewError(wire.CodeConflict, "Still waiting for the verifier's answer.")
)

// Next applies ev to s at now. Events that make no sense in the current step leave the
// state as it is (a double click, a late answer after expiry).
func Next(s State, ev Event, now time.Time) (State, Effect) {
	if s.Step == "" {
		s.Step = Idle
	}
	if expired(s, now) {
		s = State{Step: Expired, Err: errExpired}
		if ev.Kind != Start {
			return s, None
		}
	}
	switch ev.Kind {
	case Start:
		switch s.Step {
		case Idle, Expired, Failed:
			return State{Step: Starting}, CallStart
		}
	case Started:
		if s.Step == Starting {
			return State{Step: Scan, Enrollment: ev.Enrollment}, None
		}
	case StartFailed:
		if s.Step == Starting {
			return State{Step: Failed, Err: orInternal(ev.Err)}, None
		}
	case Submit:
		switch s.Step {
		case Scan:
			code, ok := codes.Valid(ev.Code)
			if !ok {
				s.Err = errFormat
				return s, None
			}
			if now.Before(s.RetryAt) {
				s.Err = wire.NewError(wire.CodeRateLimited, "Too many tries. Wait "+strconv.Itoa(int(s.RetryAt.Sub(now).Seconds()+0.999))+" seconds, then try the newest code.")
				return s, None
			}
			s.Step, s.Err, s.Sending = Confirming, nil, code
			return s, CallConfirm
		case Confirming:
			s.Err = errBusy
			return s, None
		}
	case Confirmed:
		if s.Step == Confirming {
			c := ev.Confirmation
			next := State{Step: Done, Token: c.Token, RecoveryCodes: c.RecoveryCodes}
			if len(c.RecoveryCodes) > 0 {
				next.Step = Recovery
			}
			return next, None
		}
	case ConfirmFailed:
		if s.Step == Confirming {
			s.Sending = ""
			err := orInternal(ev.Err)
			switch err.Code {
			case wire.CodeInvalidCode:
				s.Attempts++
				s.Step, s.Err = Scan, err
			case wire.CodeCodeAlreadyUsed, wire.CodeInvalidRequest:
				s.Step, s.Err = Scan, err
			case wire.CodeRateLimited:
				s.Step, s.Err = Scan, err
				s.RetryAt = now.Add(time.Duration(err.RetryAfter) * time.Second)
			case wire.CodeNotFound:
				return State{Step: Expired, Err: err}, None
			case wire.CodeStepUpRequired, wire.CodeOriginNotAllowed, wire.CodePasskeyRequired:
				return State{Step: Failed, Err: err}, None
			default:
				// The verifier unreachable or failing, the ticket expired: the enrollment
				// the person scanned still stands. Keep it, so a retry or a reload with a
				// new ticket confirms it rather than asking them to scan a new one.
				s.Step, s.Err = Scan, err
			}
			return s, None
		}
	case Saved:
		if s.Step == Recovery {
			// Resumed after a reload, there is no token: the UI asks for a code instead.
			return State{Step: Done, Token: s.Token}, None
		}
	case Tick:
	}
	return s, None
}

func expired(s State, now time.Time) bool {
	return (s.Step == Scan || s.Step == Confirming) && !s.Enrollment.ExpiresAt.IsZero() && !now.Before(s.Enrollment.ExpiresAt)
}

func orInternal(e *wire.Error) *wire.Error {
	if e == nil {
		return wire.NewError(wire.CodeInternal, "Something went wrong. Try again.")
	}
	return e
}

// Snapshot encoding: version, then fields in a fixed order, each base64url, joined by dots.
// Hand-written so the wasm needs no encoding/json reflection.
const snapshotVersion = "tf1"

// Snapshot returns what the page keeps in sessionStorage to resume after a reload, or ""
// when there is nothing to resume (idle, done, failed). It holds the pending secret and,
// until the person confirms saving them, the recovery codes, because losing either on a
// reload would strand the person; the page drops it as soon as the step is done. It never
// holds the token: a reload brings a new ticket, often with a new nonce, and the old
// ticket's token would be refused or expired by the time the codes are saved.
func Snapshot(s State) string {
	switch s.Step {
	case Scan, Confirming, Recovery:
	default:
		return ""
	}
	e := s.Enrollment
	fields := []string{
		string(s.Step), e.ID, e.OTPAuthURI, e.Secret, e.QRSVG, ms(e.ExpiresAt),
		strings.Join(s.RecoveryCodes, " "), "", "", "", strconv.Itoa(s.Attempts), // no token
	}
	var b strings.Builder
	b.WriteString(snapshotVersion)
	for _, f := range fields {
		b.WriteByte('.')
		b.WriteString(b64.Encode([]byte(f)))
	}
	return b.String()
}

var errSnapshot = errors.New("enroll: not a snapshot of this version")

// Resume restores a snapshot at now. A snapshot taken while a confirmation was in flight
// resumes at Scan (its answer was lost; typing the next code is safe), and one whose
// enrollment has expired resumes as Expired.
func Resume(snap string, now time.Time) (State, error) {
	parts := strings.Split(snap, ".")
	if len(parts) != 12 || parts[0] != snapshotVersion {
		return State{}, errSnapshot
	}
	f := make([]string, 11)
	for i, p := range parts[1:] {
		b, err := b64.Decode(p)
		if err != nil {
			return State{}, errSnapshot
		}
		f[i] = string(b)
	}
	exp, err1 := strconv.ParseInt(f[5], 10, 64)
	att, err2 := strconv.Atoi(f[10])
	if err1 != nil || err2 != nil {
		return State{}, errSnapshot
	}
	// f[7:10] held the token in snapshots of earlier versions: never resumed (see Snapshot).
	s := State{
		Step:       Step(f[0]),
		Enrollment: wire.Enrollment{ID: f[1], OTPAuthURI: f[2], Secret: f[3], QRSVG: f[4], ExpiresAt: time.UnixMilli(exp).UTC()},
		Attempts:   att,
	}
	if exp == 0 {
		s.Enrollment.ExpiresAt = time.Time{}
	}
	if f[6] != "" {
		s.RecoveryCodes = strings.Split(f[6], " ")
	}
	switch s.Step {
	case Confirming:
		s.Step = Scan
	case Scan, Recovery:
	default:
		return State{}, errSnapshot
	}
	if expired(s, now) {
		return State{Step: Expired, Err: errExpired}, nil
	}
	return s, nil
}

func ms(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}
