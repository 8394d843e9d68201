package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Atomically joins the contract in its own file, as the audit trail does.
func init() {
	tests = append(tests, []contractCase{
		{"Atomically_Error_UndoesEveryWrite", testAtomicallyUndone},
		{"Atomically_Nil_CommitsEveryWrite_EachSeenInside", testAtomicallyCommits},
		{"Atomically_SameStepConcurrently_OneWins", testAtomicallyOneWins},
		{"ClaimOnce_InTransaction_UndoneWithIt_CommittedWithIt", testClaimOnceInTx},
		{"ClaimOnce_ConcurrentTransactions_OneCommits_FailedClaimsFreeTheKey", testClaimOnceTxConcurrently},
	}...)
}

// attemptWrites is every write of one verification, in one transaction: a reservation of
// each kind, the compare-and-set, a recovery code, the elevation and an audit record. It
// reports what the reservations and the compare-and-set answered.
func attemptWrites(ctx context.Context, tx store.Tx, ticket []byte) (backoff, window store.Decision, advanced, consumed bool, err error) {
	if backoff, err = tx.ReserveBackoff(ctx, "f:alice", at(time.Minute), store.Backoff{Free: 5, LockAfter: 100}); err != nil {
		return
	}
	if window, err = tx.ReserveWindow(ctx, "ip:192.0.2.1", at(time.Minute), store.Window{Limit: 10, Period: time.Hour}); err != nil {
		return
	}
	if advanced, err = tx.AdvanceTOTP(ctx, "c1", 200, at(time.Minute), store.Drift{}); err != nil {
		return
	}
	if consumed, err = tx.ConsumeRecoveryCode(ctx, "shop", "alice", []byte("code-1"), at(time.Minute)); err != nil {
		return
	}
	if err = tx.ElevateTicket(ctx, ticket, at(time.Minute), "otp"); err != nil {
		return
	}
	err = tx.QueueAudit(ctx, auditRecord("verified", "shop", "alice", at(time.Minute)), false)
	return
}

func atomicFixture(t *testing.T, s store.Store) []byte {
	ctx := t.Context()
	confirmed(t, s, "c1", "shop", "alice", 100)
	must(t, s.ReplaceRecoveryCodes(ctx, "shop", "alice", [][]byte{[]byte("code-1")}, at(0)))
	tk := newTicket("tk")
	must(t, s.CreateTicket(ctx, tk))
	return tk.Hash
}

func testAtomicallyUndone(t *testing.T, s store.Store) {
	ctx := t.Context()
	ticket := atomicFixture(t, s)
	errLater := errors.New("a later step failed")
	err := s.Atomically(ctx, func(tx store.Tx) error {
		if _, _, _, _, err := attemptWrites(ctx, tx, ticket); err != nil {
			return err
		}
		return errLater
	})
	if !errors.Is(err, errLater) {
		t.Fatalf("Atomically = %v, want fn's error", err)
	}
	// Done again outside, every write finds the state as it was before.
	backoff, window, advanced, consumed, err := attemptWrites(ctx, s, ticket)
	must(t, err)
	if backoff.Count != 1 || window.Count != 1 || !advanced || !consumed {
		t.Errorf("after an undone transaction: backoff count %d, window count %d, advanced %v, consumed %v; want 1, 1, true, true",
			backoff.Count, window.Count, advanced, consumed)
	}
	tk, err := s.Ticket(ctx, ticket)
	must(t, err)
	if records := allAudit(t, s, store.AuditFilter{}); len(records) != 1 || !tk.ElevatedAt.Equal(at(time.Minute)) {
		t.Errorf("after an undone transaction: %d audit records, elevated at %v; want 1 and %v", len(records), tk.ElevatedAt, at(time.Minute))
	}
	checkChain(t, allAudit(t, s, store.AuditFilter{}), 1)
}

func testAtomicallyCommits(t *testing.T, s store.Store) {
	ctx := t.Context()
	ticket := atomicFixture(t, s)
	must(t, s.Atomically(ctx, func(tx store.Tx) error {
		if _, _, _, _, err := attemptWrites(ctx, tx, ticket); err != nil {
			return err
		}
		// A second round inside sees the first: counts go on, the step and the code are
		// taken.
		backoff, window, advanced, consumed, err := attemptWrites(ctx, tx, ticket)
		if err == nil && (backoff.Count != 2 || window.Count != 2 || advanced || consumed) {
			t.Errorf("inside the transaction: backoff count %d, window count %d, advanced %v, consumed %v; want 2, 2, false, false",
				backoff.Count, window.Count, advanced, consumed)
		}
		return err
	}))
	c, err := s.TOTP(ctx, "c1")
	must(t, err)
	left, err := s.RecoveryCodesLeft(ctx, "shop", "alice")
	must(t, err)
	tk, err := s.Ticket(ctx, ticket)
	must(t, err)
	if c.LastStep != 200 || left != 0 || !tk.ElevatedAt.Equal(at(time.Minute)) {
		t.Errorf("after commit: last step %d, %d codes left, elevated at %v; want 200, 0, %v", c.LastStep, left, tk.ElevatedAt, at(time.Minute))
	}
	checkChain(t, allAudit(t, s, store.AuditFilter{}), 2)
	d, err := s.ReserveBackoff(ctx, "f:alice", at(time.Minute), store.Backoff{Free: 5, LockAfter: 100})
	must(t, err)
	if d.Count != 3 {
		t.Errorf("after commit: backoff count %d, want 3", d.Count)
	}
}

func testAtomicallyOneWins(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "c1", "shop", "alice", 100)
	const n = 20
	wins := make([]bool, n)
	errs := make([]error, n)
	goroutines(n, func(i int) {
		errs[i] = s.Atomically(ctx, func(tx store.Tx) error {
			var err error
			wins[i], err = tx.AdvanceTOTP(ctx, "c1", 101, at(time.Minute), store.Drift{})
			if err != nil {
				return err
			}
			return tx.QueueAudit(ctx, auditRecord("verified", "shop", "alice", at(time.Minute)), false)
		})
	})
	won := 0
	for i := range n {
		must(t, errs[i])
		if wins[i] {
			won++
		}
	}
	if won != 1 {
		t.Errorf("%d of %d transactions advanced to the same step, want 1", won, n)
	}
	checkChain(t, allAudit(t, s, store.AuditFilter{}), n)
}

// A claim made in a transaction is the transaction's: seen inside it at once, gone when
// it is undone, kept when it commits. An admin reset that fails must not spend its token.
func testClaimOnceInTx(t *testing.T, s store.Store) {
	ctx := t.Context()
	errLater := errors.New("a later step failed")
	err := s.Atomically(ctx, func(tx store.Tx) error {
		if ok, err := tx.ClaimOnce(ctx, "jti-1", at(5*time.Minute)); err != nil || !ok {
			t.Errorf("first claim inside: %v %v, want true", ok, err)
		}
		if ok, err := tx.ClaimOnce(ctx, "jti-1", at(5*time.Minute)); err != nil || ok {
			t.Errorf("second claim inside the same transaction: %v %v, want false", ok, err)
		}
		return errLater
	})
	if !errors.Is(err, errLater) {
		t.Fatalf("Atomically = %v, want fn's error", err)
	}
	must(t, s.Atomically(ctx, func(tx store.Tx) error {
		if ok, err := tx.ClaimOnce(ctx, "jti-1", at(5*time.Minute)); err != nil || !ok {
			t.Errorf("a claim after its transaction was undone: %v %v, want true", ok, err)
		}
		return nil
	}))
	if ok, err := s.ClaimOnce(ctx, "jti-1", at(5*time.Minute)); err != nil || ok {
		t.Fatalf("a claim after its transaction committed: %v %v, want false", ok, err)
	}
}

// Transactions that claim one key at once: while the holder of the claim fails, the next
// one may claim it; once one commits, no other can. Of n, the first three to hold the
// claim fail, so exactly the fourth commits it and the other n-4 find it taken.
func testClaimOnceTxConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n, failing = 10, 3
	errFail := errors.New("the action failed")
	var mu sync.Mutex
	failed, committed, taken := 0, 0, 0
	goroutines(n, func(int) {
		err := s.Atomically(ctx, func(tx store.Tx) error {
			ok, err := tx.ClaimOnce(ctx, "jti-1", at(5*time.Minute))
			if err != nil || !ok {
				return err
			}
			// The action's own write, after the claim, as a reset's are.
			if err := tx.QueueAudit(ctx, auditRecord("admin_reset", "shop", "alice", at(time.Minute)), false); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if failed < failing {
				failed++
				return errFail
			}
			committed++
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			taken++ // committed, or found the key taken
		case !errors.Is(err, errFail):
			t.Error(err)
		}
	})
	if failed != failing || committed != 1 || taken != n-failing {
		t.Fatalf("%d claims failed, %d committed, %d transactions ended well; want %d, 1, %d", failed, committed, taken, failing, n-failing)
	}
	checkChain(t, allAudit(t, s, store.AuditFilter{}), 1)
	if ok, err := s.ClaimOnce(ctx, "jti-1", at(5*time.Minute)); err != nil || ok {
		t.Fatalf("a claim after one committed: %v %v, want false", ok, err)
	}
}
