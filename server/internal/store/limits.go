package store

import (
	"context"
	"time"
)

// Backoff is a budget of consecutive failures: Free attempts go through at once; each one
// after that waits Base, doubling per attempt, at most Max; at LockAfter the key is locked
// until ResetAttempts.
type Backoff struct {
	Free      int
	Base, Max time.Duration
	LockAfter int
}

// Delay is how long the attempt numbered n (1-based) blocks the next one.
func (b Backoff) Delay(n int) time.Duration {
	if n < b.Free {
		return 0
	}
	d := b.Base
	for i := b.Free; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Window is a budget of Limit attempts per Period.
type Window struct {
	Limit  int
	Period time.Duration
}

// Decision answers a reservation.
type Decision struct {
	Allowed bool
	// Count is the number of attempts counted against the key, this one included.
	Count int
	// Locked is set when a Backoff key reached LockAfter.
	Locked     bool
	RetryAfter time.Duration
	// Attempt names the attempt an allowed Window reservation counted, where the store
	// names them (Redis): giving that one back by its name takes it back once, however
	// often the give-back is sent. "" where the store does not.
	Attempt string
}

// AttemptStore keeps attempt budgets. A reservation is taken before a code is weighed, so
// parallel requests can never exceed a budget.
type AttemptStore interface {
	// ReserveBackoff counts one attempt against key if its budget allows one now.
	ReserveBackoff(ctx context.Context, key string, now time.Time, b Backoff) (Decision, error)
	// ReserveWindow counts one attempt against key's current window if it has room.
	ReserveWindow(ctx context.Context, key string, now time.Time, w Window) (Decision, error)
	// ResetAttempts forgets key's failures (a success, a recovery, an admin reset).
	ResetAttempts(ctx context.Context, key string) error
	// RefundAttempt gives back one attempt of key's count (an attempt that was not a failure).
	RefundAttempt(ctx context.Context, key string) error
}
