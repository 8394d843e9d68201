package mfa

import (
	"context"
	"strconv"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/qr"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/tokens"
	"github.com/twofold-dev/twofold/server/internal/totp"
)

func totpAAD(c store.TOTPCredential) []byte {
	return store.Sealed{Kind: "totp", ID: c.ID, AppID: c.AppID, User: c.User}.AAD()
}

func params(c store.TOTPCredential) totp.Params {
	return totp.Params{Algorithm: c.Algorithm, Digits: c.Digits, Period: c.Period}
}

// StartEnrollment creates a pending authenticator for the ticket's user. A user who already
// has a second factor must have passed it with this ticket first.
func (s *Service) StartEnrollment(ctx context.Context, p Principal, label string) (wire.Enrollment, error) {
	if msg := checkText("label", label, false); msg != "" {
		return wire.Enrollment{}, invalidRequest(msg)
	}
	if label == "" {
		label = "Authenticator app"
	}
	existing, err := s.st.TOTPsOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return wire.Enrollment{}, fault("start enrollment", err)
	}
	if len(existing) > 0 && !p.Elevated() {
		return wire.Enrollment{}, errStepUp
	}
	secret, err := totp.NewSecret()
	if err != nil {
		return wire.Enrollment{}, fault("start enrollment", err)
	}
	now := s.now()
	def := totp.Params{}.WithDefaults()
	c := store.TOTPCredential{
		ID: "totp_" + randomToken(12), AppID: p.App.ID, User: p.Ticket.User, Label: label,
		Algorithm: def.Algorithm, Digits: def.Digits, Period: def.Period, LastStep: -1,
		ExpiresAt: now.Add(s.cfg.EnrollmentTTL), CreatedAt: now,
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
	return wire.Enrollment{ID: c.ID, OTPAuthURI: uri, Secret: totp.EncodeSecret(secret), QRSVG: svg, ExpiresAt: c.ExpiresAt}, nil
}

// ConfirmEnrollment makes a pending authenticator the user's once they type a code from
// it. The confirming code's step becomes the credential's last accepted step, so that code
// cannot sign in again. The first authenticator brings a fresh set of recovery codes.
func (s *Service) ConfirmEnrollment(ctx context.Context, p Principal, id, code string) (wire.Confirmation, error) {
	c, err := s.st.TOTP(ctx, id)
	if isNotFound(err) || (err == nil && (c.Confirmed || c.AppID != p.App.ID || c.User != p.Ticket.User || !s.now().Before(c.ExpiresAt))) {
		return wire.Confirmation{}, errNoEnrollment
	}
	if err != nil {
		return wire.Confirmation{}, fault("confirm enrollment", err)
	}
	now := s.now()
	step, err := s.matchCode(c, code, now)
	if err != nil {
		return wire.Confirmation{}, err
	}
	existing, err := s.st.TOTPsOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return wire.Confirmation{}, fault("confirm enrollment", err)
	}
	var codes []string
	var hashes [][]byte
	if len(existing) == 0 {
		if codes, hashes, err = s.newRecoveryCodes(ctx, p); err != nil {
			return wire.Confirmation{}, err
		}
	}
	if err := s.st.ConfirmTOTP(ctx, c.ID, step, now, hashes); isNotFound(err) {
		return wire.Confirmation{}, errNoEnrollment
	} else if err != nil {
		return wire.Confirmation{}, fault("confirm enrollment", err)
	}
	tok, err := s.pass(ctx, p, []string{"otp"}, now)
	if err != nil {
		return wire.Confirmation{}, err
	}
	s.cfg.Logger.InfoContext(ctx, "totp enrollment confirmed", "app", p.App.ID, "credential", c.ID)
	if codes == nil {
		codes = []string{}
	}
	return wire.Confirmation{RecoveryCodes: codes, Token: tok}, nil
}

// VerifyTOTP checks a code against each of the user's authenticators and, for the one it
// matches, advances the last accepted step by compare-and-set: of any number of concurrent
// requests with one code, exactly one wins, on any number of verifier instances.
func (s *Service) VerifyTOTP(ctx context.Context, p Principal, code string) (wire.Token, error) {
	creds, err := s.st.TOTPsOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return wire.Token{}, fault("verify totp", err)
	}
	if len(creds) == 0 {
		return wire.Token{}, errNoAuthenticator
	}
	now := s.now()
	var firstErr error
	for _, c := range creds {
		step, err := s.matchCode(c, code, now)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if step <= c.LastStep {
			return wire.Token{}, errCodeUsed
		}
		won, err := s.st.AdvanceTOTP(ctx, c.ID, step, now)
		if err != nil {
			return wire.Token{}, fault("verify totp", err)
		}
		if !won {
			return wire.Token{}, errCodeUsed
		}
		return s.pass(ctx, p, []string{"otp"}, now)
	}
	return wire.Token{}, firstErr
}

// matchCode returns the step a code belongs to, or an invalid_code error that says when
// the code belongs to a step well off the verifier's clock.
func (s *Service) matchCode(c store.TOTPCredential, code string, now time.Time) (int64, error) {
	secret, err := s.sealer.Open(c.Sealed, totpAAD(c))
	if err != nil {
		return 0, fault("open totp secret", err)
	}
	code = totp.NormalizeCode(code)
	if step, ok := totp.Match(secret, code, params(c), now, s.cfg.Skew, 0); ok {
		return step, nil
	}
	if off, ok := totp.Drift(secret, code, params(c), now, s.cfg.ClockHintSteps, s.cfg.Skew); ok {
		e := *errInvalidCode
		e.Clock = wire.ClockAhead
		dir := "ahead"
		if off < 0 {
			e.Clock, dir = wire.ClockBehind, "behind"
		}
		secs := off * c.Period
		if secs < 0 {
			secs = -secs
		}
		e.Message = "That code is from about " + strconv.Itoa(secs) + " seconds " + dir + " of the real time: the clock on your phone is off. Set your phone's time to automatic, then try a new code."
		return 0, &e
	}
	return 0, errInvalidCode
}

// pass records that a second factor passed with this ticket and issues the token.
func (s *Service) pass(ctx context.Context, p Principal, amr []string, now time.Time) (wire.Token, error) {
	if err := s.st.ElevateTicket(ctx, p.Ticket.Hash, now); err != nil {
		return wire.Token{}, fault("elevate ticket", err)
	}
	tok, expiresIn, err := s.signer.Issue(ctx, tokens.Claims{
		Subject: p.Ticket.User, Audience: p.App.ID, Nonce: p.Ticket.Nonce,
		AMR: amr, AuthTime: now, Alg: p.App.SigningAlg,
	})
	if err != nil {
		return wire.Token{}, fault("issue token", err)
	}
	return wire.Token{Token: tok, TokenType: "Bearer", ExpiresIn: expiresIn}, nil
}
