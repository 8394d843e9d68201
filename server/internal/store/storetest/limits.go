package storetest

import (
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

var policy = store.Backoff{Free: 5, Base: 30 * time.Second, Max: 15 * time.Minute, LockAfter: 12}

// RunBudgets runs the attempt-budget part of the contract. Run calls it for every
// store.Store; a budget-only backend (Redis) calls it alone. open gives a fresh, empty
// AttemptStore per subtest, its cleanup registered on t.
func RunBudgets(t *testing.T, open func(t *testing.T) store.AttemptStore) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s store.AttemptStore)
	}{
		{"ReserveBackoff_100Parallel_OnlyTheFreeOnesAllowed", testBackoffParallel},
		{"ReserveBackoff_BlocksDoubleToTheCap_ThenLock_UntilReset", testBackoffLadder},
		{"ReserveWindow_100Parallel_OnlyTheLimitAllowed_NextWindowFresh", testWindowParallel},
		{"RefundAttempt_GivesOneBack", testRefund},
		{"ReserveBackoff_RefusedWhileResets_NeverAnError", testBackoffWhileReset},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, open(t)) })
	}
}

func testBackoffParallel(t *testing.T, s store.AttemptStore) {
	now := at(0)
	allowed := winners(100, func(int) bool {
		d, err := s.ReserveBackoff(t.Context(), "k", now, policy)
		if err != nil {
			t.Error(err)
		}
		if err == nil && !d.Allowed && d.RetryAfter <= 0 {
			t.Errorf("refused without a wait: %+v", d)
		}
		return err == nil && d.Allowed
	})
	if allowed != policy.Free {
		t.Fatalf("%d of 100 parallel reservations allowed, want %d", allowed, policy.Free)
	}
}

// A success resets the budget (deletes its row) while other attempts are being refused:
// a refusal that finds the row gone must reserve again, not fail.
func testBackoffWhileReset(t *testing.T, s store.AttemptStore) {
	ctx, now := t.Context(), at(0)
	for range 3 {
		for range policy.Free + 1 {
			if _, err := s.ReserveBackoff(ctx, "k", now, policy); err != nil {
				t.Fatal(err)
			}
		}
		goroutines(60, func(i int) {
			var err error
			if i%3 == 0 {
				err = s.ResetAttempts(ctx, "k")
			} else {
				_, err = s.ReserveBackoff(ctx, "k", now, policy)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
}

func testBackoffLadder(t *testing.T, s store.AttemptStore) {
	ctx := t.Context()
	now := at(0)
	reserve := func() store.Decision {
		t.Helper()
		d, err := s.ReserveBackoff(ctx, "k", now, policy)
		must(t, err)
		return d
	}
	for i := 1; i <= policy.Free; i++ {
		if d := reserve(); !d.Allowed || d.Count != i {
			t.Fatalf("attempt %d: %+v", i, d)
		}
	}
	for n := policy.Free; n < policy.LockAfter; n++ {
		wait := policy.Delay(n)
		if d := reserve(); d.Allowed || d.RetryAfter != wait {
			t.Fatalf("after attempt %d: %+v, want a wait of %v", n, d, wait)
		}
		now = now.Add(wait - time.Millisecond)
		if d := reserve(); d.Allowed {
			t.Fatalf("allowed a millisecond early after attempt %d", n)
		}
		now = now.Add(time.Millisecond)
		if d := reserve(); !d.Allowed || d.Count != n+1 {
			t.Fatalf("attempt %d after the wait: %+v", n+1, d)
		}
	}
	if got := policy.Delay(11); got != 15*time.Minute {
		t.Fatalf("Delay(11) = %v, want the 15 minute cap", got)
	}
	now = now.Add(time.Hour)
	if d := reserve(); d.Allowed || !d.Locked {
		t.Fatalf("after %d attempts: %+v, want locked", policy.LockAfter, d)
	}
	must(t, s.ResetAttempts(ctx, "k"))
	if d := reserve(); !d.Allowed || d.Count != 1 {
		t.Fatalf("after reset: %+v", d)
	}
}

func testWindowParallel(t *testing.T, s store.AttemptStore) {
	w := store.Window{Limit: 7, Period: time.Minute}
	now := at(0)
	allowed := winners(100, func(int) bool {
		d, err := s.ReserveWindow(t.Context(), "ip", now, w)
		if err != nil {
			t.Error(err)
		}
		if err == nil && !d.Allowed && d.RetryAfter != time.Minute {
			t.Errorf("retry after %v, want the rest of the window", d.RetryAfter)
		}
		return err == nil && d.Allowed
	})
	if allowed != w.Limit {
		t.Fatalf("%d of 100 allowed, want %d", allowed, w.Limit)
	}
	d, err := s.ReserveWindow(t.Context(), "ip", now.Add(time.Minute), w)
	must(t, err)
	if !d.Allowed || d.Count != 1 {
		t.Fatalf("next window: %+v", d)
	}
}

func testRefund(t *testing.T, s store.AttemptStore) {
	ctx := t.Context()
	w := store.Window{Limit: 2, Period: time.Minute}
	for range 2 {
		_, err := s.ReserveWindow(ctx, "ip", at(0), w)
		must(t, err)
	}
	must(t, s.RefundAttempt(ctx, "ip"))
	if d, err := s.ReserveWindow(ctx, "ip", at(0), w); err != nil || !d.Allowed {
		t.Fatalf("after a refund: %+v %v", d, err)
	}
	must(t, s.RefundAttempt(ctx, "nobody")) // no row: nothing to give back, no error
}
