package mfa

import (
	"context"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/store"
)

var errLastFactor = wire.NewError(wire.CodeLastFactor, "This is your only second factor. Add another one before you remove it.")

// Factors lists the user's second factors.
func (s *Service) Factors(ctx context.Context, p Principal) (wire.FactorList, error) {
	out := wire.FactorList{Factors: []wire.Factor{}}
	for _, c := range p.Account.TOTPs {
		out.Factors = append(out.Factors, wire.Factor{ID: c.ID, Type: "totp", Label: c.Label, CreatedAt: c.CreatedAt, LastUsedAt: lastUsed(c.LastUsedAt)})
	}
	passkeys, err := s.st.PasskeysOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return wire.FactorList{}, fault("list factors", err)
	}
	for _, pk := range passkeys {
		out.Factors = append(out.Factors, wire.Factor{ID: pk.ID, Type: "passkey", Label: pk.Label, CreatedAt: pk.CreatedAt, LastUsedAt: lastUsed(pk.LastUsedAt)})
	}
	return out, nil
}

// DeleteFactor removes one of the user's factors. It needs a ticket that passed a second
// factor, and it never removes the last one: a person would be left with no second factor
// by anyone who got hold of one sign-in. Only a support reset can do that. The factors are
// counted, and the one removed and its audit record written, in one transaction that holds
// the user's factors: two removals at once could otherwise each find the other's factor
// left.
func (s *Service) DeleteFactor(ctx context.Context, p Principal, id string) error {
	if !p.Elevated() {
		return errStepUp
	}
	list, err := s.Factors(ctx, p)
	if err != nil {
		return err
	}
	kind := ""
	for _, f := range list.Factors {
		if f.ID == id {
			kind = f.Type
		}
	}
	notYours := wire.NewError(wire.CodeNotFound, "That factor is not one of yours, or it was already removed.")
	if kind == "" {
		return notYours
	}
	err = s.st.Atomically(ctx, func(tx store.Tx) error {
		if err := s.stillElevated(ctx, tx, p); err != nil {
			return err
		}
		totps, passkeys, err := tx.LockFactors(ctx, p.App.ID, p.Ticket.User)
		if err != nil {
			return err
		}
		if totps+passkeys <= 1 {
			return errLastFactor
		}
		del := tx.DeleteTOTP
		if kind == "passkey" {
			del = tx.DeletePasskey
		}
		if err := del(ctx, p.App.ID, p.Ticket.User, id); err != nil {
			return err
		}
		if err := s.factorsChanged(ctx, tx, p); err != nil {
			return err
		}
		return s.recordIn(ctx, tx, p, audit.FactorRemoved, id, true, "")
	})
	switch {
	case isNotFound(err):
		return notYours
	case err != nil:
		return fault("delete factor", err)
	}
	return nil
}

// lastUsed is nil for a factor never used, which the JSON shows as null.
func lastUsed(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.Truncate(time.Second)
	return &t
}
