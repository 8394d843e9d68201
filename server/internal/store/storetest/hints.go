package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

func init() {
	tests = append(tests,
		contractCase{"HintTOTPStep_MarkedStepNeverAdvances_OthersDo", testHintRefusesStep},
		contractCase{"HintTOTPStep_CommittedBeforeAdvance_RefusedOnAnyConnection", testHintConcurrentAdvance},
		contractCase{"Sweep_ClockHints_RemovedOnlyOnceExpired", testSweepHints})
}

func testHintRefusesStep(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "c1", "shop", "alice", 100)
	confirmed(t, s, "c2", "shop", "alice", 100)
	must(t, s.HintTOTPStep(ctx, "c1", 104, at(time.Hour)))
	must(t, s.HintTOTPStep(ctx, "c1", 104, at(time.Hour))) // twice is fine
	must(t, s.Atomically(ctx, func(tx store.Tx) error { return tx.HintTOTPStep(ctx, "c1", 106, at(time.Hour)) }))
	for _, tc := range []struct {
		id       string
		step     int64
		want     bool
		wantLast int64
	}{
		{"c1", 104, false, 100}, // the hinted step itself
		{"c1", 102, true, 102},
		{"c1", 104, false, 102},
		{"c1", 105, true, 105},
		{"c1", 106, false, 105}, // hinted inside a transaction
		{"c2", 104, true, 104},  // another credential's step 104 is another code
		{"c1", 107, true, 107},
	} {
		ok, err := s.AdvanceTOTP(ctx, tc.id, tc.step, at(time.Minute), store.Drift{})
		must(t, err)
		if ok != tc.want {
			t.Errorf("AdvanceTOTP(%s, %d) = %v, want %v", tc.id, tc.step, ok, tc.want)
		}
		c, err := s.TOTP(ctx, tc.id)
		must(t, err)
		if c.LastStep != tc.wantLast {
			t.Errorf("after AdvanceTOTP(%s, %d): LastStep = %d, want %d", tc.id, tc.step, c.LastStep, tc.wantLast)
		}
	}
	// A second mark with an earlier until does not shorten the first: a sweep in between
	// keeps it.
	confirmed(t, s, "c3", "shop", "alice", 100)
	must(t, s.HintTOTPStep(ctx, "c3", 104, at(time.Hour)))
	must(t, s.HintTOTPStep(ctx, "c3", 104, at(time.Minute)))
	sweep(t, s, at(30*time.Minute))
	if ok, err := s.AdvanceTOTP(ctx, "c3", 104, at(30*time.Minute), store.Drift{}); err != nil || ok {
		t.Errorf("AdvanceTOTP of a step hinted until later, after a sweep = %v, %v; want refused", ok, err)
	}
}

// The hint's transaction and later verifications run on many connections (instances): a
// mark committed before a verification begins holds there too, and while verifications of
// the marked step race, none wins.
func testHintConcurrentAdvance(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "c1", "shop", "alice", 100)
	must(t, s.Atomically(ctx, func(tx store.Tx) error { return tx.HintTOTPStep(ctx, "c1", 103, at(time.Hour)) }))
	var wg sync.WaitGroup
	wins := make(chan bool, 8)
	for range 8 {
		wg.Go(func() {
			var won bool
			err := s.Atomically(ctx, func(tx store.Tx) (err error) {
				won, err = tx.AdvanceTOTP(ctx, "c1", 103, at(time.Minute), store.Drift{})
				return err
			})
			if err != nil {
				t.Error(err)
			}
			wins <- won
		})
	}
	wg.Wait()
	close(wins)
	for won := range wins {
		if won {
			t.Fatal("a verification of the hinted step won")
		}
	}
}

func testSweepHints(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	confirmed(t, s, "c1", "shop", "alice", 100)
	must(t, s.HintTOTPStep(ctx, "c1", 101, now.Add(-time.Millisecond)))
	must(t, s.HintTOTPStep(ctx, "c1", 102, now.Add(time.Millisecond)))
	if got, want := sweep(t, s, now), (store.Swept{Hints: 1}); got != want {
		t.Errorf("Sweep removed %+v, want %+v", got, want)
	}
	if ok, err := s.AdvanceTOTP(ctx, "c1", 102, now, store.Drift{}); err != nil || ok {
		t.Errorf("AdvanceTOTP of the live hinted step after Sweep = %v, %v; want refused", ok, err)
	}
	if ok, err := s.AdvanceTOTP(ctx, "c1", 103, now, store.Drift{}); err != nil || !ok {
		t.Errorf("AdvanceTOTP(103) = %v, %v; want accepted", ok, err)
	}
	if got := sweep(t, s, now); got != (store.Swept{}) {
		t.Errorf("Sweep again removed %+v, want nothing", got)
	}
}
