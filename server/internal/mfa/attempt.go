package mfa

import (
	"context"
	"errors"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/limit"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// attempt is one code typed for a factor whose budgets limit guessing.
type attempt struct {
	factor string     // the factor's budget and its name in the trail: "totp", "recovery", "passkey"
	amr    string     // what a success proves
	passed audit.Kind // the event a success records
	detail string     // and what that record says beside the factor's id
	// unlocks are other factors' budgets a success also resets.
	unlocks []string
	// accept runs once the attempt's reservation is taken. It weighs the code (count is
	// the factor's attempts so far, this one included) and makes its use durable in tx,
	// returning the id of the factor that passed, or the person's error, having recorded
	// why in tx. Any other error (a failure to record, too) undoes the attempt.
	accept func(tx store.Tx, count int) (id string, err error)
}

// try runs a: the reservation, the code's use, the give-back, the ticket's elevation and
// the audit record commit together or not at all, and on SQLite in one group commit, so
// a verification waits for one durable write rather than one per step. A nil answer means
// the code passed. Budgets kept outside the store (Redis) are reserved before the
// transaction and given back after it: a network call must not hold SQLite's one writer.
// A give-back that fails after the commit is logged, not answered.
func (s *Service) try(ctx context.Context, p Principal, now time.Time, a attempt) (answer error, err error) {
	key := factorKey(a.factor, p)
	inStore := s.limits.KeptIn(s.st)
	var budget store.Decision
	var refusal error
	if !inStore {
		budget, refusal = s.limits.Reserve(ctx, key, p.IP, now)
	}
	passed := false
	err = s.st.Atomically(ctx, func(tx store.Tx) error {
		lim := s.limits
		if inStore {
			lim = s.limits.In(tx)
			budget, refusal = lim.Reserve(ctx, key, p.IP, now)
			if errors.Is(refusal, limit.ErrUnavailable) {
				return refusal // the store failed mid-transaction: undo it all
			}
		}
		if refusal != nil {
			answer = refusal
			return s.refused(ctx, tx, p, a.factor, refusal)
		}
		id, err := a.accept(tx, budget.Count)
		var we *wire.Error
		if errors.As(err, &we) {
			answer = err
			if inStore {
				return lim.Failed(ctx, key, p.IP, now)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if inStore {
			if err := lim.Passed(ctx, key, p.IP, budget, a.unlocks...); err != nil {
				return err
			}
		}
		if err := s.elevate(ctx, tx, p, a.amr, now); err != nil {
			return err
		}
		if err := s.recordIn(ctx, tx, p, a.passed, id, true, a.detail); err != nil {
			return err
		}
		passed = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if passed && !inStore {
		// The sign-in has committed (the code is used, the ticket elevated, the trail says
		// so): a 503 now would send the person back with a code that is refused. Leaving the
		// failures counted is the safe side. A client that hangs up now does not stop it.
		if err := s.limits.Passed(context.WithoutCancel(ctx), key, p.IP, budget, a.unlocks...); err != nil {
			s.cfg.Logger.ErrorContext(ctx, "attempt not given back after a sign-in: its failures stay counted", "app", p.App.ID, "factor", a.factor, "err", err)
		}
	}
	return answer, nil
}
