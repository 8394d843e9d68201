package mfa

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// Recovery codes are 12 characters of Crockford's base32 (60 bits), shown as xxxx-xxxx-xxxx:
// no 0/O or 1/I/L confusion on input, lower case to read aloud.
const (
	recoveryCount    = 10
	recoveryLen      = 12
	recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	pepperName       = "recovery_pepper"
)

// AMRRecovery is the amr value of a token earned with a recovery code. RFC 8176 has no
// registered value for it; backends that see it should prompt for a new authenticator.
const AMRRecovery = "rec"

var errBadRecovery = wire.NewError(wire.CodeInvalidCode, "That recovery code is not valid or was already used. Each code works once; check for typos.")

func (s *Service) newRecoveryCodes(ctx context.Context, p Principal) (codes []string, hashes [][]byte, err error) {
	pepper, err := s.recoveryPepper(ctx)
	if err != nil {
		return nil, nil, err
	}
	buf := make([]byte, recoveryLen)
	for range recoveryCount {
		rand.Read(buf)
		var b strings.Builder
		for i, v := range buf {
			if i > 0 && i%4 == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[v&31])
		}
		code := b.String()
		codes = append(codes, code)
		hashes = append(hashes, recoveryHash(pepper, p, code))
	}
	return codes, hashes, nil
}

// recoveryHash is a keyed hash under a pepper that is itself sealed with the master key.
// Not argon2id: the codes carry 60 random bits, so a slow hash adds nothing against
// guessing, and a keyed hash makes a stolen database useless without the master key while
// letting a code be found by its hash in one indexed lookup.
func recoveryHash(pepper []byte, p Principal, code string) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(p.App.ID + "\x00" + p.Ticket.User + "\x00" + normalizeRecovery(code)))
	return m.Sum(nil)
}

func normalizeRecovery(code string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(code) {
		switch {
		case r == 'o':
			r = '0'
		case r == 'i' || r == 'l':
			r = '1'
		case r == '-' || r == ' ':
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Service) recoveryPepper(ctx context.Context) ([]byte, error) {
	s.pepperMu.Lock()
	defer s.pepperMu.Unlock()
	if s.pepper != nil {
		return s.pepper, nil
	}
	aad := store.Sealed{Kind: "secret", ID: pepperName}.AAD()
	sealed, err := s.st.Secret(ctx, pepperName)
	if errors.Is(err, store.ErrNotFound) {
		fresh := make([]byte, 32)
		rand.Read(fresh)
		if sealed, err = s.sealer.Seal(fresh, aad); err != nil {
			return nil, fault("recovery pepper", err)
		}
		// Another instance may have stored one first; PutSecret returns the winner.
		sealed, err = s.st.PutSecret(ctx, pepperName, sealed)
	}
	if err != nil {
		return nil, fault("recovery pepper", err)
	}
	pepper, err := s.sealer.Open(sealed, aad)
	if err != nil {
		return nil, fault("recovery pepper", err)
	}
	s.pepper = pepper
	return pepper, nil
}

// VerifyRecovery signs in with a recovery code, which is used up atomically. It also lifts
// a lock on the user's authenticators and passkeys: a recovery code is how a locked-out
// person gets in.
func (s *Service) VerifyRecovery(ctx context.Context, p Principal, code string) (wire.Token, error) {
	if len(code) > 64 {
		return wire.Token{}, errBadRecovery
	}
	pepper, err := s.recoveryPepper(ctx)
	if err != nil {
		return wire.Token{}, err
	}
	now := s.now()
	hash := recoveryHash(pepper, p, code)
	answer, err := s.try(ctx, p, now, attempt{
		factor: "recovery", amr: AMRRecovery, passed: audit.RecoveryUsed, unlocks: []string{factorKey("totp", p), factorKey("passkey", p)},
		accept: func(tx store.Tx, count int) (string, error) {
			ok, err := tx.ConsumeRecoveryCode(ctx, p.App.ID, p.Ticket.User, hash, now)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", cmp.Or(s.failed(ctx, tx, p, "recovery", count, errBadRecovery), error(errBadRecovery))
			}
			return "recovery", nil
		},
	})
	if err != nil {
		return wire.Token{}, fault("verify recovery code", err)
	}
	if answer != nil {
		return wire.Token{}, answer
	}
	return s.issue(ctx, p, []string{AMRRecovery}, now)
}

// RegenerateRecoveryCodes gives the user a new set of recovery codes; the old set stops
// working at once. It needs a ticket that passed a second factor.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, p Principal) (wire.RecoveryCodes, error) {
	if !p.Elevated() {
		return wire.RecoveryCodes{}, errStepUp
	}
	codes, hashes, err := s.newRecoveryCodes(ctx, p)
	if err != nil {
		return wire.RecoveryCodes{}, err
	}
	err = s.st.Atomically(ctx, func(tx store.Tx) error {
		if err := s.stillElevated(ctx, tx, p); err != nil {
			return err
		}
		if err := tx.ReplaceRecoveryCodes(ctx, p.App.ID, p.Ticket.User, hashes, s.now()); err != nil {
			return err
		}
		if err := s.factorsChanged(ctx, tx, p); err != nil {
			return err
		}
		return s.recordIn(ctx, tx, p, audit.CodesRegenerated, "recovery", true, "")
	})
	if err != nil {
		return wire.RecoveryCodes{}, fault("regenerate recovery codes", err)
	}
	return wire.RecoveryCodes{RecoveryCodes: codes}, nil
}
