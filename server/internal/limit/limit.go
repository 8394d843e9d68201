// Package limit owns brute-force policy: how many codes a factor and a client address may
// try, and what a person is told when they may not. The budgets live in a store (SQL or
// Redis) and are reserved before a code is weighed, so parallel guesses cannot exceed them;
// inside a transaction that runs alone, checking them is enough, and only a failure counts.
package limit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/clientip"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// Policy is the brute-force policy; DefaultPolicy gives the shipped one.
type Policy struct {
	// Factor limits consecutive failures of one factor of one user: five free tries, then
	// a back-off of 30 s doubling to 15 minutes, and a lock after 100 (NIST SP 800-63B
	// §5.2.2) until a recovery code or an admin reset.
	Factor store.Backoff
	// IP limits failures from one client address (an IPv6 client's /64) across all users,
	// which stops one source from spraying many accounts. Successes are given back.
	IP store.Window
}

// DefaultPolicy is the policy twofold ships with.
func DefaultPolicy() Policy {
	return Policy{
		Factor: store.Backoff{Free: 5, Base: 30 * time.Second, Max: 15 * time.Minute, LockAfter: 100},
		IP:     store.Window{Limit: 200, Period: 10 * time.Minute},
	}
}

// Limiter reserves attempts against a policy.
type Limiter struct {
	b store.AttemptStore
	p Policy
}

// New returns a Limiter keeping its budgets in b.
func New(b store.AttemptStore, p Policy) *Limiter { return &Limiter{b: b, p: p} }

// KeptIn reports whether the budgets live in b, so that a transaction of b can hold them.
func (l *Limiter) KeptIn(b store.AttemptStore) bool { return l.b == b }

// In is the same policy on b: the budgets within a transaction of the store that keeps
// them.
func (l *Limiter) In(b store.AttemptStore) *Limiter { return &Limiter{b: b, p: l.p} }

// Policy is the policy in force.
func (l *Limiter) Policy() Policy { return l.p }

// pairedBudgets is a budget store that takes an attempt's two reservations, and gives a
// success's attempt back, in one call each: redisbudget, where each call is a round trip.
type pairedBudgets interface {
	ReservePair(ctx context.Context, windowKey string, w store.Window, backoffKey string, b store.Backoff, now time.Time) (window, backoff store.Decision, err error)
	GiveBack(ctx context.Context, refundKey, attempt string, resetKeys ...string) error
}

// checkedBudgets is a budget store inside a transaction that runs alone (SQLite's one
// writer). It can answer a reservation without counting it: nothing can count an attempt
// between its read and its commit, so an attempt need only be counted if it fails, and a
// success, the common case, writes nothing to the budgets.
type checkedBudgets interface {
	// CheckPair answers as ReservePair would, but counts nothing; an empty windowKey has
	// no window.
	CheckPair(ctx context.Context, windowKey string, w store.Window, backoffKey string, b store.Backoff, now time.Time) (window, backoff store.Decision, err error)
}

// Reserve takes one attempt from the client address's budget and from the factor's before
// a code is weighed. A refusal is a *wire.Error a person can act on; the Decision carries
// the factor's count so the caller can tell when a failure locked it, and the address's
// attempt (Attempt) for Passed to give back. Once the code is weighed, call Passed or
// Failed.
func (l *Limiter) Reserve(ctx context.Context, factor, ip string, now time.Time) (store.Decision, error) {
	var w, d store.Decision
	var err error
	if cb, ok := l.b.(checkedBudgets); ok {
		w, d, err = cb.CheckPair(ctx, addressKey(ip), l.p.IP, "f:"+factor, l.p.Factor, now)
	} else if pb, ok := l.b.(pairedBudgets); ok && ip != "" {
		w, d, err = pb.ReservePair(ctx, addressKey(ip), l.p.IP, "f:"+factor, l.p.Factor, now)
	} else {
		w, d, err = l.reserve(ctx, factor, ip, now)
	}
	switch {
	case err != nil:
		return d, unavailable(err)
	case !w.Allowed:
		return w, tooMany(w.RetryAfter, "Too many failed attempts from your network.")
	case d.Locked:
		// One message for every factor: codes, recovery codes and passkeys.
		return d, wire.NewError(wire.CodeFactorLocked, "Too many failed attempts: this is locked to protect your account. Sign in another way (a recovery code, or another of your second factors), or ask the app's support to reset your second factor.")
	case !d.Allowed:
		return d, tooMany(d.RetryAfter, "Too many failed attempts.")
	}
	d.Attempt = w.Attempt
	return d, nil
}

// reserve is Reserve in one call per budget. Without an address, the window allows.
func (l *Limiter) reserve(ctx context.Context, factor, ip string, now time.Time) (window, backoff store.Decision, err error) {
	window.Allowed = true
	addr := addressKey(ip)
	if ip != "" {
		if window, err = l.b.ReserveWindow(ctx, addr, now, l.p.IP); err != nil || !window.Allowed {
			return window, backoff, err
		}
	}
	if backoff, err = l.b.ReserveBackoff(ctx, "f:"+factor, now, l.p.Factor); err != nil || backoff.Allowed || ip == "" {
		return window, backoff, err
	}
	// The address's attempt was never weighed.
	return window, backoff, l.b.RefundAttempt(ctx, addr)
}

// addressKey names the budget of the network a client address belongs to (an IPv6
// address's /64); "" for no address.
func addressKey(ip string) string {
	if ip == "" {
		return ""
	}
	return "ip:" + clientip.Network(ip)
}

// Failed records that the attempt Reserve let through failed. Reserve counted it already,
// except in a transaction that runs alone, where it only checked the budgets: it is
// counted now.
func (l *Limiter) Failed(ctx context.Context, factor, ip string, now time.Time) error {
	if _, ok := l.b.(checkedBudgets); !ok {
		return nil
	}
	if _, _, err := l.reserve(ctx, factor, ip, now); err != nil {
		return unavailable(err)
	}
	return nil
}

// Passed records a success: the factor's failures are forgotten, and those of the other
// factors it unlocks (a recovery code also lifts the authenticators' and the passkeys'
// locks), and the address's attempt is given back. reserved is what Reserve answered:
// where the store names attempts, the one given back is the one it names.
func (l *Limiter) Passed(ctx context.Context, factor, ip string, reserved store.Decision, unlocks ...string) error {
	factors := append([]string{factor}, unlocks...)
	if _, ok := l.b.(checkedBudgets); ok {
		ip = "" // the attempt was never counted
	}
	if pb, ok := l.b.(pairedBudgets); ok && ip != "" {
		keys := make([]string, len(factors))
		for i, f := range factors {
			keys[i] = "f:" + f
		}
		if err := pb.GiveBack(ctx, addressKey(ip), reserved.Attempt, keys...); err != nil {
			return unavailable(err)
		}
		return nil
	}
	for _, f := range factors {
		if err := l.Reset(ctx, f); err != nil {
			return err
		}
	}
	if ip != "" {
		if err := l.b.RefundAttempt(ctx, addressKey(ip)); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

// Reset forgets a factor's failures and unlocks it.
func (l *Limiter) Reset(ctx context.Context, factor string) error {
	if err := l.b.ResetAttempts(ctx, "f:"+factor); err != nil {
		return unavailable(err)
	}
	return nil
}

// ErrUnavailable is how a verification is refused when its budgets cannot be read: without
// them guessing would be unbounded, so no code is weighed at all (fail closed). Match it
// with errors.Is.
var ErrUnavailable = wire.NewError(wire.CodeUnavailable, unavailableMessage)

const unavailableMessage = "Codes cannot be checked right now: the verifier cannot reach the store that limits attempts. Try again in a minute; if it goes on, tell the app's support."

// unavailable keeps the cause for logs while errors.As finds the *wire.Error.
func unavailable(err error) error {
	return fmt.Errorf("limit: %w: %w", wire.NewError(wire.CodeUnavailable, unavailableMessage), err)
}

func tooMany(wait time.Duration, why string) *wire.Error {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	e := wire.NewError(wire.CodeRateLimited, why+" Wait "+plural(secs)+", then try again.")
	e.RetryAfter = secs
	return e
}

func plural(secs int) string {
	if secs == 1 {
		return "1 second"
	}
	if secs >= 120 {
		return fmt.Sprintf("%d minutes", (secs+59)/60)
	}
	return fmt.Sprintf("%d seconds", secs)
}
