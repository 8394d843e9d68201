package limit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/limit"
	"github.com/twofold-dev/twofold/server/internal/store"
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
		"passed":               l.Passed(t.Context(), "f", "192.0.2.1", "g"),
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
