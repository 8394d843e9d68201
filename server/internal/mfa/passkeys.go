package mfa

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/passkey"
	"github.com/twofold-dev/twofold/server/internal/store"
)

var (
	errNoPasskey       = wire.NewError(wire.CodeNotFound, "No passkey is set up for this account yet.")
	errChallenge       = wire.NewError(wire.CodeChallengeExpired, "This passkey request has expired or was already used. Start again.")
	errPasskeyRefused  = wire.NewError(wire.CodeInvalidPasskey, "That passkey could not be verified. Try again, or use another sign-in method.")
	errPasskeyRequired = wire.NewError(wire.CodePasskeyRequired, "This account signs in with a passkey only. Use your passkey.")
)

// relyingParty is the app's WebAuthn relying party, built once per app and settings.
func (s *Service) relyingParty(app store.App) (*passkey.RP, error) {
	key := strings.Join([]string{app.ID, strings.Join(app.Origins, ","), app.RPID, app.UserVerification, app.Attestation, strings.Join(app.AAGUIDs, ",")}, "\x00")
	if rp, ok := s.rps.Load(key); ok {
		return rp.(*passkey.RP), nil
	}
	rp, err := passkey.New(passkey.Config{
		RPID: app.RPID, RPName: app.Name, Origins: app.Origins,
		UserVerification: app.UserVerification, Attestation: app.Attestation, AAGUIDs: app.AAGUIDs,
	})
	if err != nil {
		return nil, err
	}
	s.rps.Store(key, rp)
	return rp, nil
}

// party is the app's relying party and the user as WebAuthn sees them, with their stored
// passkeys.
func (s *Service) party(ctx context.Context, p Principal) (*passkey.RP, passkey.User, []store.Passkey, error) {
	rp, err := s.relyingParty(p.App)
	if errors.Is(err, passkey.ErrNoRPID) {
		return nil, passkey.User{}, nil, wire.NewError(wire.CodeConflict, "Passkeys need the app to be registered with an origin that has a host name (such as http://localhost:3000), not an IP address.")
	}
	if err != nil {
		return nil, passkey.User{}, nil, fault("relying party", err)
	}
	candidate := make([]byte, 32)
	rand.Read(candidate)
	handle, err := s.st.UserHandle(ctx, p.App.ID, p.Ticket.User, candidate)
	if err != nil {
		return nil, passkey.User{}, nil, fault("user handle", err)
	}
	stored, err := s.st.PasskeysOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return nil, passkey.User{}, nil, fault("passkeys", err)
	}
	u := passkey.User{Handle: handle, Name: p.Ticket.User}
	for _, pk := range stored {
		u.Credentials = append(u.Credentials, passkey.Credential{ID: pk.ID, Record: pk.Data})
	}
	return rp, u, stored, nil
}

// policy is the user's own passkey policy, else the app's.
func policy(p Principal) string {
	return cmp.Or(p.Account.Policy, p.App.PasskeyPolicy)
}

// passkeyOnly reports whether TOTP is closed to this user: the policy says passkey_only and
// the user has a passkey to use instead.
func (s *Service) passkeyOnly(ctx context.Context, p Principal) (bool, error) {
	if policy(p) != store.PolicyPasskeyOnly {
		return false, nil
	}
	pks, err := s.st.PasskeysOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return false, fault("passkeys", err)
	}
	return len(pks) > 0, nil
}

func (s *Service) begin(ctx context.Context, p Principal, kind string, c passkey.Ceremony, rp *passkey.RP) ([]byte, error) {
	err := s.st.PutCeremony(ctx, store.Ceremony{
		Challenge: c.Challenge, Kind: kind, AppID: p.App.ID, User: p.Ticket.User,
		TicketHash: p.Ticket.Hash, Session: c.Session, ExpiresAt: s.now().Add(rp.Timeout),
	})
	if err != nil {
		return nil, fault("begin "+kind, err)
	}
	return c.Options, nil
}

// ceremonyOf reads, without taking it, the ceremony an answer belongs to. It must have been
// begun with this very ticket for kind, and not have expired: a challenge cannot be answered
// late or from another session. It is taken, so answered once, in the transaction that
// makes the answer's outcome durable.
func (s *Service) ceremonyOf(ctx context.Context, p Principal, kind string, body []byte, now time.Time) (store.Ceremony, error) {
	challenge, err := passkey.ChallengeOf(body)
	if err != nil {
		return store.Ceremony{}, errPasskeyRefused
	}
	c, err := s.st.Ceremony(ctx, challenge)
	if isNotFound(err) || err == nil && (!begunWith(c, p, kind) || !now.Before(c.ExpiresAt)) {
		return store.Ceremony{}, errChallenge
	}
	if err != nil {
		return store.Ceremony{}, fault("read ceremony", err)
	}
	return c, nil
}

// begunWith reports whether c is a ceremony of kind begun with p's ticket.
func begunWith(c store.Ceremony, p Principal, kind string) bool {
	return c.Kind == kind && c.AppID == p.App.ID && c.User == p.Ticket.User && bytes.Equal(c.TicketHash, p.Ticket.Hash)
}

// BeginPasskeyRegistration starts adding a passkey; only a ticket that already passed a
// second factor may.
func (s *Service) BeginPasskeyRegistration(ctx context.Context, p Principal) ([]byte, error) {
	if !p.Elevated() {
		return nil, errStepUp
	}
	rp, u, _, err := s.party(ctx, p)
	if err != nil {
		return nil, err
	}
	c, err := rp.BeginRegistration(u)
	if err != nil {
		return nil, fault("begin registration", err)
	}
	return s.begin(ctx, p, "registration", c, rp)
}

// FinishPasskeyRegistration stores the passkey the browser created. Under passkey_only the
// user's TOTP secrets are destroyed once it is in.
func (s *Service) FinishPasskeyRegistration(ctx context.Context, p Principal, body []byte, label string) (wire.PasskeyRegistered, error) {
	if !p.Elevated() {
		return wire.PasskeyRegistered{}, errStepUp
	}
	now := s.now()
	c, err := s.ceremonyOf(ctx, p, "registration", body, now)
	if err != nil {
		return wire.PasskeyRegistered{}, err
	}
	rp, u, _, err := s.party(ctx, p)
	if err != nil {
		return wire.PasskeyRegistered{}, err
	}
	cred, err := rp.FinishRegistration(u, c.Session, body)
	if err != nil {
		// A refused answer uses the challenge up as well.
		if _, terr := s.st.TakeCeremony(ctx, c.Challenge, now); terr != nil && !isNotFound(terr) {
			return wire.PasskeyRegistered{}, fault("take ceremony", terr)
		}
		return wire.PasskeyRegistered{}, s.passkeyRefused(ctx, p, err)
	}
	if label == "" {
		label = "Passkey"
	}
	// The ceremony taken, the passkey, its audit record and, under passkey_only, the end of
	// the user's TOTP secrets commit together.
	err = s.st.Atomically(ctx, func(tx store.Tx) error {
		if err := s.stillElevated(ctx, tx, p); err != nil {
			return err
		}
		if _, err := tx.TakeCeremony(ctx, c.Challenge, now); isNotFound(err) {
			return errChallenge // answered twice at once, or expired meanwhile
		} else if err != nil {
			return err
		}
		err := tx.AddPasskey(ctx, store.Passkey{
			ID: cred.ID, AppID: p.App.ID, User: p.Ticket.User, Label: label, Data: cred.Record,
			SignCount: int64(cred.SignCount), AAGUID: cred.AAGUID, Transports: strings.Join(cred.Transports, ","),
			BackupEligible: cred.BackupEligible, BackupState: cred.BackupState, CreatedAt: now,
		})
		if err != nil {
			return err
		}
		if err := s.recordIn(ctx, tx, p, audit.FactorAdded, cred.ID, true, "passkey: "+label); err != nil {
			return err
		}
		if policy(p) == store.PolicyPasskeyOnly {
			if err := s.destroyTOTPs(ctx, tx, p); err != nil {
				return err
			}
		}
		return s.factorsChanged(ctx, tx, p)
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return wire.PasskeyRegistered{}, wire.NewError(wire.CodeConflict, "This passkey is already registered.")
	case err != nil:
		return wire.PasskeyRegistered{}, fault("add passkey", err)
	}
	return wire.PasskeyRegistered{ID: cred.ID}, nil
}

// destroyTOTPs ends every authenticator-app secret of the user in tx, with an audit record
// for each confirmed one, if the user has a passkey: passkey_only applies from then on.
// The passkey is counted under the lock a factor's removal takes, so it cannot be going
// meanwhile.
func (s *Service) destroyTOTPs(ctx context.Context, tx store.Tx, p Principal) error {
	_, passkeys, err := tx.LockFactors(ctx, p.App.ID, p.Ticket.User)
	if err != nil || passkeys == 0 {
		return err
	}
	ids, err := tx.DeleteTOTPsOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.recordIn(ctx, tx, p, audit.FactorRemoved, id, true, "passkey_only: TOTP secret destroyed"); err != nil {
			return err
		}
	}
	return nil
}

// BeginPasskeyLogin starts a login with one of the user's passkeys; discoverable lets the
// browser offer any passkey of the app (usernameless), whose answer must still be this
// user's.
func (s *Service) BeginPasskeyLogin(ctx context.Context, p Principal, discoverable bool) ([]byte, error) {
	rp, u, stored, err := s.party(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return nil, errNoPasskey
	}
	if discoverable {
		u.Credentials = nil
	}
	c, err := rp.BeginLogin(u)
	if err != nil {
		return nil, fault("begin login", err)
	}
	return s.begin(ctx, p, "assertion", c, rp)
}

// FinishPasskeyLogin checks the browser's assertion. A sign counter that went backwards
// (a possibly cloned passkey) is refused and audited; each sign count is taken by one login
// only. A passkey with user verification is a complete second factor.
//
// The assertion is weighed first, against its ceremony as stored, so that the writer does
// no cryptography. Then, as for a code, one transaction takes the attempt's reservation,
// takes the ceremony (a challenge is answered once), moves the sign counter on, gives the
// reservation back, elevates the ticket and records the audit event, or does none of it.
func (s *Service) FinishPasskeyLogin(ctx context.Context, p Principal, body []byte) (wire.Token, error) {
	now := s.now()
	a, err := s.weighAssertion(ctx, p, body, now)
	if err != nil {
		return wire.Token{}, err
	}
	answer, err := s.try(ctx, p, now, attempt{
		factor: "passkey", amr: a.amr[0], passed: audit.Verified, detail: "passkey",
		accept: func(tx store.Tx, count int) (string, error) {
			if a.challenge != "" {
				if _, err := tx.TakeCeremony(ctx, a.challenge, now); isNotFound(err) {
					a.refusal = errChallenge // answered twice at once, or expired meanwhile
				} else if err != nil {
					return "", err
				}
			}
			if a.refusal != nil {
				return "", cmp.Or(s.failed(ctx, tx, p, "passkey", count, a.refusal), a.refusal)
			}
			if a.cloned {
				return "", cmp.Or(s.recordIn(ctx, tx, p, audit.Failed, a.used.ID, false, "sign counter went backwards: the passkey may have been cloned"), error(errPasskeyRefused))
			}
			won, err := tx.UsePasskey(ctx, a.used.ID, a.used.SignCount, int64(a.cred.SignCount), a.cred.Record, now)
			if err != nil {
				return "", err
			}
			if !won {
				return "", cmp.Or(s.recordIn(ctx, tx, p, audit.ReplayBlocked, a.used.ID, false, "sign count already taken"), error(errPasskeyRefused))
			}
			return a.used.ID, nil
		},
	})
	if err != nil {
		return wire.Token{}, fault("passkey login", err)
	}
	if answer != nil {
		return wire.Token{}, answer
	}
	return s.issue(ctx, p, a.amr, now)
}

// weighedAssertion is a passkey login's answer checked against its ceremony, before the
// transaction that makes its use durable.
type weighedAssertion struct {
	challenge string // the ceremony to take: one begun with this ticket, or "" for none
	refusal   error  // the person's error when the answer does not pass
	cloned    bool   // the sign counter went backwards
	used      store.Passkey
	cred      passkey.Credential // the passkey as this login leaves it
	amr       []string
}

// weighAssertion checks body against the ceremony it answers, which it reads but does not
// take. Only a failure of the verifier itself is an error.
func (s *Service) weighAssertion(ctx context.Context, p Principal, body []byte, now time.Time) (weighedAssertion, error) {
	a := weighedAssertion{amr: []string{"hwk"}}
	c, err := s.ceremonyOf(ctx, p, "assertion", body, now)
	if errors.Is(err, errPasskeyRefused) || errors.Is(err, errChallenge) {
		a.refusal = err
		return a, nil
	}
	if err != nil {
		return a, err
	}
	a.challenge = c.Challenge
	rp, u, stored, err := s.party(ctx, p)
	if err != nil {
		return a, err
	}
	cred, err := rp.FinishLogin(u, c.Session, body)
	if err != nil {
		if err := s.passkeyRefused(ctx, p, err); !errors.Is(err, errPasskeyRefused) {
			return a, err
		}
		a.refusal = errPasskeyRefused
		return a, nil
	}
	for _, pk := range stored {
		if pk.ID == cred.ID {
			a.used = pk
		}
	}
	a.cred, a.cloned = cred, cred.Cloned || a.used.ID == ""
	if a.cloned {
		a.used.ID = cred.ID
	}
	// RFC 8176: a synced passkey is a software-secured key, a device-bound one hardware.
	if a.used.BackupEligible {
		a.amr[0] = "swk"
	}
	if cred.UserVerified {
		a.amr = append(a.amr, "user")
	}
	return a, nil
}

func (s *Service) passkeyRefused(ctx context.Context, p Principal, err error) error {
	var r passkey.Refused
	if errors.As(err, &r) {
		s.cfg.Logger.InfoContext(ctx, "passkey refused", "app", p.App.ID, "reason", r.Reason)
		return errPasskeyRefused
	}
	return fault("passkey", err)
}

// SetUserPolicy sets one user's passkey policy; under passkey_only a user who has a passkey
// loses their TOTP secrets at once.
func (s *Service) SetUserPolicy(ctx context.Context, app store.App, user, policy string) error {
	if msg := wire.CheckUser(user); msg != "" {
		return invalidRequest(msg)
	}
	if policy != store.PolicyTOTPFallback && policy != store.PolicyPasskeyOnly {
		return invalidRequest("policy must be totp_fallback or passkey_only.")
	}
	if err := s.st.SetUserPolicy(ctx, app.ID, user, policy); err != nil {
		return fault("set policy", err)
	}
	if policy != store.PolicyPasskeyOnly {
		return nil
	}
	p := Principal{App: app, Ticket: store.Ticket{AppID: app.ID, User: user}, Account: store.Account{Policy: policy}}
	err := s.st.Atomically(ctx, func(tx store.Tx) error {
		if err := s.destroyTOTPs(ctx, tx, p); err != nil {
			return err
		}
		return s.factorsChanged(ctx, tx, p)
	})
	if err != nil {
		return fault("passkey only", err)
	}
	return nil
}
