package mfa

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/qr"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/tokens"
	"github.com/twofold-dev/twofold/server/internal/totp"
)

// maxDrift bounds how far a credential's window may follow its phone's clock, as
// privacyIDEA's time-shift does.
const maxDrift = 2

func totpAAD(c store.TOTPCredential) []byte {
	return store.Sealed{Kind: "totp", ID: c.ID, AppID: c.AppID, User: c.User}.AAD()
}

func params(c store.TOTPCredential) totp.Params {
	return totp.Params{Algorithm: c.Algorithm, Digits: c.Digits, Period: c.Period}
}

// factorKey names a user's factor in the attempt budgets. All of a user's authenticator
// apps share one budget: one guess is weighed against all of them.
func factorKey(kind string, p Principal) string {
	return kind + ":" + p.App.ID + ":" + p.Ticket.User
}

// StartEnrollment creates a pending authenticator for the ticket's user. A user who already
// has a second factor must have passed it with this ticket first.
func (s *Service) StartEnrollment(ctx context.Context, p Principal, req wire.EnrollmentRequest) (wire.Enrollment, error) {
	if msg := wire.CheckText("label", req.Label, false); msg != "" {
		return wire.Enrollment{}, invalidRequest(msg)
	}
	if req.Label == "" {
		req.Label = "Authenticator app"
	}
	existing := p.Account.TOTPs
	if only, err := s.passkeyOnly(ctx, p); err != nil || only {
		return wire.Enrollment{}, cmp.Or(err, error(errPasskeyRequired))
	}
	// A ticket proves the first factor only: a user with any second factor, an
	// authenticator app or only a passkey, passes it with this ticket first, or whoever
	// has the password would add an authenticator of their own and sign in with it.
	if !p.Elevated() {
		if has, err := s.hasFactor(ctx, p); err != nil || has {
			return wire.Enrollment{}, cmp.Or(err, error(errStepUp))
		}
		if err := s.mayEnrollFirst(ctx, p); err != nil {
			return wire.Enrollment{}, err
		}
	}
	if req.Replaces != "" && !hasCredential(existing, req.Replaces) {
		return wire.Enrollment{}, wire.NewError(wire.CodeNotFound, "The authenticator to replace is not one of yours.")
	}
	secret, err := totp.NewSecret()
	if err != nil {
		return wire.Enrollment{}, fault("start enrollment", err)
	}
	now := s.now()
	def := totp.Params{}.WithDefaults()
	c := store.TOTPCredential{
		ID: "totp_" + randomToken(12), AppID: p.App.ID, User: p.Ticket.User, Label: req.Label,
		Algorithm: def.Algorithm, Digits: def.Digits, Period: def.Period, LastStep: -1,
		ExpiresAt: now.Add(s.cfg.EnrollmentTTL), CreatedAt: now, Replaces: req.Replaces,
	}
	if c.Sealed, err = s.sealer.Seal(secret, totpAAD(c)); err != nil {
		return wire.Enrollment{}, fault("start enrollment", err)
	}
	if err := s.st.CreateTOTP(ctx, c); err != nil {
		return wire.Enrollment{}, fault("start enrollment", err)
	}
	uri := totp.URI(p.App.Name, p.Ticket.User, secret, def)
	svg, err := qr.SVG(uri)
	if err != nil {
		return wire.Enrollment{}, fault("start enrollment", err)
	}
	s.record(ctx, p, audit.EnrollmentStarted, c.ID, true, "")
	return wire.Enrollment{ID: c.ID, OTPAuthURI: uri, Secret: totp.EncodeSecret(secret), QRSVG: svg, ExpiresAt: c.ExpiresAt}, nil
}

// hasFactor reports whether the user has a second factor: a confirmed authenticator app or
// a passkey.
func (s *Service) hasFactor(ctx context.Context, p Principal) (bool, error) {
	if len(p.Account.TOTPs) > 0 {
		return true, nil
	}
	pks, err := s.st.PasskeysOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return false, fault("passkeys", err)
	}
	return len(pks) > 0, nil
}

// AdminFirstFactorWindow is how long the operator's leave for a user of an admin app to set
// up a first factor lasts; adminWindowWords says it to a person.
const (
	AdminFirstFactorWindow = time.Hour
	adminWindowWords       = "an hour"
)

func errAdminFirstFactor(p Principal) *wire.Error {
	return wire.NewError(wire.CodeOperatorRequired, p.App.ID+" is an admin app: its users set up a first authenticator only with the leave of the verifier's operator, or whoever holds the app's API key could make up an admin. Ask them to run `twofold users reset --app "+p.App.ID+" --user USER --reason ...` on the verifier's host, then set it up within "+adminWindowWords+".")
}

// mayEnrollFirst refuses a user of an admin app a first factor without the operator's
// leave: the admin API's second half (an admin's own fresh second factor) must not be had
// by naming a user with none yet. Such a refusal is recorded: it is a sign the app's key is
// in the wrong hands.
func (s *Service) mayEnrollFirst(ctx context.Context, p Principal) error {
	admin, err := s.st.IsAdminApp(ctx, p.App.ID)
	if err != nil {
		return fault("admin app", err)
	}
	if !admin {
		return nil
	}
	ok, err := s.st.FirstFactorAllowed(ctx, p.App.ID, p.Ticket.User, s.now())
	if err != nil {
		return fault("first factor allowance", err)
	}
	if ok {
		return nil
	}
	s.record(ctx, p, audit.AdminRefused, "", false, "first factor of an admin without the operator's leave")
	return errAdminFirstFactor(p)
}

func hasCredential(creds []store.TOTPCredential, id string) bool {
	for _, c := range creds {
		if c.ID == id {
			return true
		}
	}
	return false
}

// ConfirmEnrollment makes a pending authenticator the user's once they type a code from
// it. The confirming code's step becomes the credential's last accepted step, so that code
// cannot sign in again. The first authenticator brings a fresh set of recovery codes.
func (s *Service) ConfirmEnrollment(ctx context.Context, p Principal, id, code string) (wire.Confirmation, error) {
	if !storable(id) {
		return wire.Confirmation{}, errNoEnrollment
	}
	c, err := s.st.TOTP(ctx, id)
	if isNotFound(err) || (err == nil && (c.Confirmed || c.AppID != p.App.ID || c.User != p.Ticket.User || !s.now().Before(c.ExpiresAt))) {
		return wire.Confirmation{}, errNoEnrollment
	}
	if err != nil {
		return wire.Confirmation{}, fault("confirm enrollment", err)
	}
	now := s.now()
	step, _, err := s.matchCode(c, code, now)
	if err != nil {
		return wire.Confirmation{}, err
	}
	var codes []string
	var hashes [][]byte
	if len(p.Account.TOTPs) == 0 { // the user's first authenticator: it comes with recovery codes
		if codes, hashes, err = s.newRecoveryCodes(ctx, p); err != nil {
			return wire.Confirmation{}, err
		}
	}
	// Read whatever the request saw: whether this is the user's first factor is settled
	// only in the transaction.
	adminApp, err := s.st.IsAdminApp(ctx, p.App.ID)
	if err != nil {
		return wire.Confirmation{}, fault("confirm enrollment", err)
	}
	// The confirmation signs the user in: like a verification, it commits with its audit
	// records and the ticket's elevation, or not at all.
	err = s.st.Atomically(ctx, func(tx store.Tx) error {
		installed, err := tx.ConfirmTOTP(ctx, c.ID, step, now, hashes)
		if err != nil {
			return err
		}
		if !installed {
			// Another authenticator was confirmed first: its codes stay, and these (which
			// would not work) are not shown.
			codes = nil
		}
		// ConfirmTOTP holds the user's lock until the end, so these counts are settled, and
		// the ticket is read as it stands now: its elevation may have ended meanwhile.
		totps, passkeys, err := tx.LockFactors(ctx, p.App.ID, p.Ticket.User)
		if err != nil {
			return err
		}
		// A user's first factor needs no elevated ticket. Otherwise (one may have come while
		// this enrollment was open) this ticket passes a second factor first, or whoever
		// held the password and started this enrollment would add an authenticator of
		// their own.
		first := totps-1+passkeys == 0
		if err := s.stillElevated(ctx, tx, p); err != nil && !(errors.Is(err, errStepUp) && first) {
			return err
		}
		if first && adminApp {
			if ok, err := tx.TakeFirstFactorAllowance(ctx, p.App.ID, p.Ticket.User, now); err != nil || !ok {
				return cmp.Or(err, error(errAdminFirstFactor(p)))
			}
		}
		if err := s.recordIn(ctx, tx, p, audit.FactorAdded, c.ID, true, c.Label); err != nil {
			return err
		}
		if c.Replaces != "" && c.Replaces != c.ID {
			switch err := tx.DeleteTOTP(ctx, p.App.ID, p.Ticket.User, c.Replaces); {
			case isNotFound(err): // another new phone replaced it first: no removal of ours
			case err != nil:
				return err
			default:
				if err := s.recordIn(ctx, tx, p, audit.FactorRemoved, c.Replaces, true, "replaced by "+c.ID); err != nil {
					return err
				}
			}
		}
		if err := s.factorsChanged(ctx, tx, p); err != nil {
			return err
		}
		return s.elevate(ctx, tx, p, "otp", now)
	})
	switch {
	case isNotFound(err):
		return wire.Confirmation{}, errNoEnrollment
	case errors.Is(err, wire.NewError(wire.CodeOperatorRequired, "")):
		s.record(ctx, p, audit.AdminRefused, c.ID, false, "first factor of an admin without the operator's leave")
		return wire.Confirmation{}, err
	case err != nil:
		return wire.Confirmation{}, fault("confirm enrollment", err)
	}
	tok, err := s.issue(ctx, p, []string{"otp"}, now)
	if err != nil {
		return wire.Confirmation{}, err
	}
	if codes == nil {
		codes = []string{}
	}
	return wire.Confirmation{RecoveryCodes: codes, Token: tok}, nil
}

// VerifyTOTP checks a code against each of the user's authenticators and, for the one it
// matches, advances the last accepted step by compare-and-set: of any number of concurrent
// requests with one code, exactly one wins, on any number of verifier instances. The
// attempt is reserved from the brute-force budgets before the code's outcome counts, in
// the same transaction.
func (s *Service) VerifyTOTP(ctx context.Context, p Principal, code string) (wire.Token, error) {
	creds := p.Account.TOTPs
	// First: under passkey_only the TOTP secrets are gone, and the answer must say why.
	if only, err := s.passkeyOnly(ctx, p); err != nil || only {
		return wire.Token{}, cmp.Or(err, error(errPasskeyRequired))
	}
	if len(creds) == 0 {
		return wire.Token{}, errNoAuthenticator
	}
	now := s.now()
	// The code is weighed before the transaction, so the writer does no cryptography; what
	// it matched counts only once the reservation is taken.
	c, step, offset, mismatch := s.firstMatch(creds, code, now)
	answer, err := s.try(ctx, p, now, attempt{
		factor: "totp", amr: "otp", passed: audit.Verified,
		accept: func(tx store.Tx, count int) (string, error) {
			if mismatch != nil {
				if revealsStep(mismatch) {
					// The answer tells which later step this code is: that step must never
					// sign in. Marked in the transaction that counts the failure, before the
					// answer is sent.
					if err := tx.HintTOTPStep(ctx, c.ID, step, s.hintedUntil(c, step)); err != nil {
						return "", err
					}
				}
				return "", cmp.Or(s.failed(ctx, tx, p, "totp", count, mismatch), mismatch)
			}
			won := false
			if step > c.LastStep {
				drift := store.Drift{Steps: c.Steps, LastOffset: offset}
				if offset == c.LastOffset { // two codes in a row agree on the phone's clock
					drift.Steps = max(-maxDrift, min(maxDrift, offset))
				}
				var err error
				if won, err = tx.AdvanceTOTP(ctx, c.ID, step, now, drift); err != nil {
					return "", err
				}
			}
			if !won {
				return "", cmp.Or(s.recordIn(ctx, tx, p, audit.ReplayBlocked, c.ID, false, ""), error(errCodeUsed))
			}
			return c.ID, nil
		},
	})
	if err != nil {
		return wire.Token{}, fault("verify totp", err)
	}
	if answer != nil {
		return wire.Token{}, answer
	}
	if s.clock != nil {
		s.clock.ObserveStep(offset)
	}
	return s.issue(ctx, p, []string{"otp"}, now)
}

// firstMatch is the first of creds that code matches, with the step and offset it matched
// at; or, when it matches none, the error of the first (which may say the phone's clock is
// off) with that credential and, when the error says the code is ahead, the step it is.
func (s *Service) firstMatch(creds []store.TOTPCredential, code string, now time.Time) (c store.TOTPCredential, step int64, offset int, mismatch error) {
	var first store.TOTPCredential
	var firstStep int64
	for _, c := range creds {
		step, offset, err := s.matchCode(c, code, now)
		if err == nil {
			return c, step, offset, nil
		}
		if mismatch == nil {
			first, firstStep, mismatch = c, step, err
		}
	}
	return first, firstStep, 0, mismatch
}

// revealsStep reports whether err tells whoever typed the code that it is the code of a
// step still to come.
func revealsStep(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Clock == wire.ClockAhead
}

// hintedUntil is when step of c can no longer be accepted, however far the credential's
// window has followed its phone: until then the mark of a hint about it must stay.
func (s *Service) hintedUntil(c store.TOTPCredential, step int64) time.Time {
	period := int64(params(c).WithDefaults().Period)
	last := step + int64(s.cfg.Skew) + maxDrift // the last verifier step whose window holds it
	return time.Unix((last+1)*period, 0)
}

// refused records, in to, a reservation the limits turned down.
func (s *Service) refused(ctx context.Context, to audit.Appender, p Principal, factor string, why error) error {
	var we *wire.Error
	if !errors.As(why, &we) {
		return nil
	}
	return s.recordIn(ctx, to, p, audit.RateLimited, factor, false, we.Code)
}

// failed records, in to, a weighed code that was wrong, and the lock it may have caused.
func (s *Service) failed(ctx context.Context, to audit.Appender, p Principal, factor string, count int, why error) error {
	detail := ""
	var we *wire.Error
	if errors.As(why, &we) && we.Clock != "" {
		detail = "clock " + we.Clock
	}
	err := s.recordIn(ctx, to, p, audit.Failed, factor, false, detail)
	if err == nil && count >= s.limits.Policy().Factor.LockAfter {
		err = s.recordIn(ctx, to, p, audit.Locked, factor, false, strconv.Itoa(count)+" consecutive failures")
	}
	return err
}

// matchCode returns the step a code belongs to and its offset from the verifier's step, or
// an invalid_code error that says when the code belongs to a step well off the verifier's
// clock; when that step is ahead, it is returned with the error (and must be marked with
// HintTOTPStep when the error is answered).
func (s *Service) matchCode(c store.TOTPCredential, code string, now time.Time) (step int64, offset int, err error) {
	secret, err := s.sealer.Open(c.Sealed, totpAAD(c))
	if err != nil {
		return 0, 0, fault("open totp secret", err)
	}
	defer clear(secret)
	code = totp.NormalizeCode(code)
	pr := params(c)
	if step, ok := totp.Match(secret, code, pr, now, s.cfg.Skew, c.Steps); ok {
		return step, int(step - totp.Step(now, pr.WithDefaults().Period)), nil
	}
	if off, ok := totp.Drift(secret, code, pr, now, s.cfg.ClockHintSteps, s.cfg.Skew); ok {
		e := *errInvalidCode
		e.Clock = wire.ClockAhead
		dir := "ahead of"
		if off < 0 {
			e.Clock, dir = wire.ClockBehind, "behind"
		}
		secs := off * c.Period
		if secs < 0 {
			secs = -secs
		}
		e.Message = "That code is from about " + strconv.Itoa(secs) + " seconds " + dir + " the real time: the clock on your phone is off. Set your phone's time to automatic, then try a new code."
		if off > 0 {
			return totp.Step(now, pr.WithDefaults().Period) + int64(off), 0, &e
		}
		return 0, 0, &e
	}
	return 0, 0, errInvalidCode
}

// elevate records in tx that a second factor (amr) passed with this ticket.
func (s *Service) elevate(ctx context.Context, tx store.Tx, p Principal, amr string, now time.Time) error {
	if p.Elevated() { // the first factor passed with it stays its mark
		return nil
	}
	return tx.ElevateTicket(ctx, p.Ticket.Hash, now, amr)
}

// issue signs the token of a second factor (amr) that passed with this ticket.
func (s *Service) issue(ctx context.Context, p Principal, amr []string, now time.Time) (wire.Token, error) {
	// acr lets a backend demand phishing-resistant authentication: only a passkey is.
	acr := "mfa"
	if amr[0] == "hwk" || amr[0] == "swk" {
		acr = "phr"
	}
	tok, expiresIn, err := s.signer.Issue(ctx, tokens.Claims{
		Subject: p.Ticket.User, Audience: p.App.ID, Nonce: p.Ticket.Nonce,
		AMR: amr, AuthTime: now, Alg: p.App.SigningAlg, Extra: map[string]any{"acr": acr},
	})
	if err != nil {
		return wire.Token{}, fault("issue token", err)
	}
	return wire.Token{Token: tok, TokenType: "Bearer", ExpiresIn: expiresIn}, nil
}
