package limit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/limit"
	"github.com/twofold-dev/twofold/server/internal/limit/redisbudget"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
	"github.com/twofold-dev/twofold/server/internal/store/postgres"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// down is a budget store that cannot be reached.
type down struct{}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (down) ReserveBackoff(context.Context, string, time.Time, store.Backoff) (store.Decision, error) {
	return store.Decision{}, errDown
}
func (down) ReserveWindow(context.Context, string, time.Time, store.Window) (store.Decision, error) {
	return store.Decision{}, errDown
}
func (down) ResetAttempts(context.Context, string) error { return errDown }
func (down) RefundAttempt(context.Context, string) error { return errDown }

// Without its budgets the limiter refuses (fail closed) with the error the API answers 503
// unavailable, and keeps the cause for the log.
func TestLimiter_BudgetStoreDown_UnavailableAndCauseKept(t *testing.T) {
	l := limit.New(down{}, limit.DefaultPolicy())
	for name, err := range map[string]error{
		"reserve with address": func() error { _, err := l.Reserve(t.Context(), "f", "192.0.2.1", time.Now()); return err }(),
		"reserve":              func() error { _, err := l.Reserve(t.Context(), "f", "", time.Now()); return err }(),
		"passed":               l.Passed(t.Context(), "f", "192.0.2.1", store.Decision{}, "g"),
		"reset":                l.Reset(t.Context(), "f"),
	} {
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeUnavailable || we.Message == "" {
			t.Errorf("%s: %v, want a *wire.Error with code unavailable", name, err)
		}
		if !errors.Is(err, limit.ErrUnavailable) || !errors.Is(err, errDown) {
			t.Errorf("%s: %v: want errors.Is both ErrUnavailable and the cause", name, err)
		}
	}
}

// The limiter answers the same whichever store keeps its budgets, and whether the store
// takes a reservation in one call (Redis: ReservePair, GiveBack), in three, or checks it
// and counts only a failure (inside a SQLite transaction, which runs alone): one script of
// attempts, played against SQLite, SQLite and PostgreSQL a transaction per attempt, Redis,
// and Redis called one budget at a time.
func TestLimiter_EveryBudgetStore_SameAnswers(t *testing.T) {
	ctx := t.Context()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "limits.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	redis := func() *redisbudget.Budgets { // under a fresh prefix each, counting time by the steps
		url, prefix := pgtest.RedisAddr(t)
		b, err := redisbudget.New(url, redisbudget.Options{Prefix: prefix, CallerClock: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	rb := redis()
	oneAtATime := struct{ store.AttemptStore }{redis()} // hides ReservePair and GiveBack

	policy := limit.Policy{
		Factor: store.Backoff{Free: 2, Base: 10 * time.Second, Max: time.Minute, LockAfter: 4},
		IP:     store.Window{Limit: 3, Period: time.Minute},
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at                  time.Duration
		factor, ip, unlocks string // unlocks: factors separated by spaces
		passed              bool   // the attempt succeeds; the others fail
	}
	steps := []step{
		{0, "f", "A", "", false},
		{0, "f", "A", "", false}, // the second starts a back-off
		{0, "f", "A", "", false}, // refused by it; A's attempt given back
		{0, "g", "A", "", false},
		{time.Second, "g", "A", "", false}, // A's window is full
		{11 * time.Second, "f", "B", "", false},
		{32 * time.Second, "f", "C", "", false}, // the fourth locks f
		{33 * time.Second, "f", "C", "", false},
		{34 * time.Second, "r", "C", "f g", true}, // a recovery code: forgets f's and g's failures too
		{35 * time.Second, "f", "C", "", false},
		{35 * time.Second, "g", "D", "", false},
		{36 * time.Second, "k", "C", "", false}, // the success's attempt was given back: room for this
		{37 * time.Second, "h", "C", "", false}, // C's window is full
		{36 * time.Second, "h", "", "", false},
	}
	// attempt is one step through l: the reservation, then the outcome if it was let through.
	attempt := func(l *limit.Limiter, s step) (string, error) {
		now := t0.Add(s.at)
		d, err := l.Reserve(ctx, s.factor, s.ip, now)
		var we *wire.Error
		switch {
		case errors.As(err, &we):
			return fmt.Sprintf("%s %d count %d locked %v", we.Code, we.RetryAfter, d.Count, d.Locked), nil
		case err != nil:
			return "", err
		case s.passed:
			err = l.Passed(ctx, s.factor, s.ip, d, strings.Fields(s.unlocks)...)
		default:
			err = l.Failed(ctx, s.factor, s.ip, now)
		}
		return fmt.Sprintf("ok count %d locked %v", d.Count, d.Locked), err
	}
	transcript := func(b store.AttemptStore) []string {
		l := limit.New(b, policy)
		var out []string
		for _, s := range steps {
			line, err := attempt(l, s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		return out
	}
	want := transcript(sq)
	// A transaction per attempt, as a verification takes them: on SQLite a check and a
	// failure counted afterwards, on PostgreSQL reservations in a pipelined transaction.
	sqTx, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "limits-tx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqTx.Close()
	pgTx, err := postgres.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pgTx.Close()
	for name, st := range map[string]store.Store{"SQLite": sqTx, "PostgreSQL": pgTx} {
		var got []string
		for _, s := range steps {
			err := st.Atomically(ctx, func(tx store.Tx) error {
				line, err := attempt(limit.New(st, policy).In(tx), s)
				got = append(got, line)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s, a transaction per attempt, answers\n%s\nwhere SQLite answers\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	for name, b := range map[string]store.AttemptStore{"redis": rb, "redis one budget at a time": oneAtATime} {
		if got := transcript(b); !slices.Equal(got, want) {
			t.Errorf("%s answers\n%s\nwhere SQLite answers\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	t.Logf("SQLite answers\n%s", strings.Join(want, "\n"))
}
