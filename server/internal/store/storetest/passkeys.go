package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

func init() {
	tests = append(tests, []contractCase{
		{"UserHandle_FirstCandidateWins_AndFindsTheUser", testUserHandle},
		{"AddPasskey_RoundTrips_DuplicateIDConflicts", testPasskeyRoundTrip},
		{"UsePasskey_SameCountConcurrently_OneWins", testUsePasskeyConcurrently},
		{"TakeCeremony_Once_AndNeverExpired_ReadTakesNothing", testTakeCeremony},
		{"PutCeremony_ATicketKeepsItsNewestEight", testCeremoniesPerTicket},
		{"LockFactors_CountsConfirmed_TwoRemovalsAtOnce_OneStays", testLockFactors},
		{"HoldTicket_SeesEndedElevationAndReset_ResetNeverLandsBetweenReadAndWrite", testHoldTicket},
		{"UserPolicy_SetAndReplace", testUserPolicy},
		{"ClaimOnce_ConcurrentClaims_OneWins_SweptAfterwards", testClaimOnce},
	}...)
}

func testUserHandle(t *testing.T, s store.Store) {
	ctx := t.Context()
	handles := make([][]byte, 10)
	goroutines(len(handles), func(i int) {
		h, err := s.UserHandle(ctx, "app", "alice", []byte{byte(i), 1, 2, 3})
		if err != nil {
			t.Error(err)
		}
		handles[i] = h
	})
	for _, h := range handles[1:] {
		if string(h) != string(handles[0]) {
			t.Fatalf("handles differ: %x vs %x", h, handles[0])
		}
	}
	u, err := s.UserOfHandle(ctx, "app", handles[0])
	if err != nil || u != "alice" {
		t.Fatalf("UserOfHandle = %q, %v", u, err)
	}
	if _, err := s.UserOfHandle(ctx, "other-app", handles[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another app's handle lookup: %v", err)
	}
}

func testPasskeyRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := store.Passkey{
		ID: "cred1", AppID: "app", User: "alice", Label: "Key", Data: []byte(`{"x":1}`), SignCount: 7,
		AAGUID: []byte{1, 2}, Transports: "internal,usb", BackupEligible: true, BackupState: true, CreatedAt: at(0),
	}
	must(t, s.AddPasskey(ctx, want))
	if err := s.AddPasskey(ctx, want); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate id: %v", err)
	}
	got, err := s.Passkey(ctx, "app", "cred1")
	must(t, err)
	if got.Label != want.Label || got.SignCount != 7 || string(got.Data) != string(want.Data) || !got.BackupEligible || !got.BackupState || got.Transports != want.Transports || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("round trip: %+v", got)
	}
	list, err := s.PasskeysOfUser(ctx, "app", "alice")
	must(t, err)
	if len(list) != 1 {
		t.Fatalf("PasskeysOfUser = %d", len(list))
	}
	if err := s.DeletePasskey(ctx, "app", "bob", "cred1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting another user's passkey: %v", err)
	}
	must(t, s.DeletePasskey(ctx, "app", "alice", "cred1"))
	if _, err := s.Passkey(ctx, "app", "cred1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func testUsePasskeyConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.AddPasskey(ctx, store.Passkey{ID: "c", AppID: "app", User: "u", Data: []byte("{}"), SignCount: 3, AAGUID: []byte{}, CreatedAt: at(0)}))
	wins := winners(20, func(int) bool {
		ok, err := s.UsePasskey(ctx, "c", 3, 4, []byte(`{"n":4}`), at(time.Minute))
		if err != nil {
			t.Error(err)
		}
		return ok
	})
	if wins != 1 {
		t.Fatalf("%d of 20 logins took sign count 4, want 1", wins)
	}
	got, _ := s.Passkey(ctx, "app", "c")
	if got.SignCount != 4 || !got.LastUsedAt.Equal(at(time.Minute)) {
		t.Fatalf("after use: %+v", got)
	}
}

func testTakeCeremony(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := store.Ceremony{Challenge: "ch", Kind: "assertion", AppID: "app", User: "u", TicketHash: []byte{1}, Session: []byte("{}"), ExpiresAt: at(5 * time.Minute)}
	must(t, s.PutCeremony(ctx, c))
	for range 2 { // reading takes nothing
		if got, err := s.Ceremony(ctx, "ch"); err != nil || got.Kind != "assertion" || got.User != "u" || string(got.Session) != "{}" || !got.ExpiresAt.Equal(c.ExpiresAt) {
			t.Fatalf("read: %+v %v", got, err)
		}
	}
	// Taken in a transaction that is then undone, it stays.
	undo := errors.New("undo")
	err := s.Atomically(ctx, func(tx store.Tx) error {
		if _, err := tx.TakeCeremony(ctx, "ch", at(time.Minute)); err != nil {
			return err
		}
		return undo
	})
	if !errors.Is(err, undo) {
		t.Fatalf("take in a transaction: %v", err)
	}
	taken := winners(10, func(int) bool {
		got, err := s.TakeCeremony(ctx, "ch", at(time.Minute))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Error(err)
		}
		if err == nil && (got.Kind != "assertion" || got.User != "u" || string(got.Session) != "{}") {
			t.Errorf("taken: %+v", got)
		}
		return err == nil
	})
	if taken != 1 {
		t.Fatalf("ceremony taken %d times, want 1", taken)
	}
	if _, err := s.Ceremony(ctx, "ch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read after it was taken: %v", err)
	}
	c.Challenge = "late"
	must(t, s.PutCeremony(ctx, c))
	if _, err := s.TakeCeremony(ctx, "late", at(5*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired ceremony: %v", err)
	}
}

func testLockFactors(t *testing.T, s store.Store) {
	ctx := t.Context()
	for round := range 5 {
		user := fmt.Sprintf("u%d", round)
		confirmed(t, s, user+"-app", "app", user, 10)
		must(t, s.CreateTOTP(ctx, newPending(user+"-pending", "app", user)))
		must(t, s.AddPasskey(ctx, store.Passkey{ID: user + "-key", AppID: "app", User: user, Data: []byte("{}"), AAGUID: []byte{}, CreatedAt: at(0)}))
		// Each removes one factor if it finds another left, as DeleteFactor does.
		removed := winners(2, func(i int) bool {
			var gone bool
			err := s.Atomically(ctx, func(tx store.Tx) error {
				totps, passkeys, err := tx.LockFactors(ctx, "app", user)
				if err != nil || totps+passkeys < 2 {
					return err
				}
				if totps != 1 || passkeys != 1 {
					return fmt.Errorf("counted %d apps and %d passkeys, want 1 and 1 (a pending enrollment is none)", totps, passkeys)
				}
				gone = true
				if i == 0 {
					return tx.DeleteTOTP(ctx, "app", user, user+"-app")
				}
				return tx.DeletePasskey(ctx, "app", user, user+"-key")
			})
			if err != nil {
				t.Error(err)
			}
			return gone
		})
		if removed != 1 {
			t.Fatalf("round %d: %d removals found another factor left, want 1", round, removed)
		}
		must(t, s.Atomically(ctx, func(tx store.Tx) error {
			if totps, passkeys, err := tx.LockFactors(ctx, "app", user); err != nil || totps+passkeys != 1 {
				return fmt.Errorf("factors left: %d apps, %d passkeys, %v; want one factor", totps, passkeys, err)
			}
			return nil
		}))
	}
}

func testHoldTicket(t *testing.T, s store.Store) {
	ctx := t.Context()
	hold := func(app, user string, hash []byte) (store.Ticket, error) {
		var got store.Ticket
		err := s.Atomically(ctx, func(tx store.Tx) (err error) {
			got, err = tx.HoldTicket(ctx, app, user, hash)
			return err
		})
		return got, err
	}
	a, b := newTicket("held-a"), newTicket("held-b")
	for _, tk := range []store.Ticket{a, b} {
		must(t, s.CreateTicket(ctx, tk))
		must(t, s.ElevateTicket(ctx, tk.Hash, at(time.Second), "otp"))
	}
	got, err := hold("shop", "alice", a.Hash)
	must(t, err)
	if got.ElevatedAt.IsZero() || got.ElevatedBy != "otp" || got.Nonce != a.Nonce {
		t.Fatalf("held ticket %+v, want %s elevated by otp", got, a.Hash)
	}
	for _, other := range []struct{ app, user string }{{"shop", "bob"}, {"blog", "alice"}} {
		if _, err := hold(other.app, other.user, a.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("alice's ticket held as %s's of %s: %v, want ErrNotFound", other.user, other.app, err)
		}
	}
	// Another ticket changed the factors: this one's elevation is over.
	must(t, s.EndElevations(ctx, "shop", "alice", b.Hash))
	if got, err := hold("shop", "alice", a.Hash); err != nil || !got.ElevatedAt.IsZero() {
		t.Fatalf("after another ticket's change: %+v, %v; want the ticket, no longer elevated", got, err)
	}
	if _, err := s.ResetUserFactors(ctx, "shop", "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := hold("shop", "alice", b.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a reset: %v, want ErrNotFound", err)
	}

	// A passkey added by a transaction that found the ticket, racing a reset: either the
	// reset comes after and removes it, or the transaction finds no ticket. Never a passkey
	// added under a ticket the reset had already removed.
	for round := range 30 {
		user := fmt.Sprint("racer", round)
		tk := store.Ticket{Hash: []byte(user), AppID: "shop", User: user, CreatedAt: at(0), ExpiresAt: at(5 * time.Minute)}
		must(t, s.CreateTicket(ctx, tk))
		goroutines(2, func(i int) {
			if i == 1 {
				if _, err := s.ResetUserFactors(ctx, "shop", user); err != nil {
					t.Error(err)
				}
				return
			}
			err := s.Atomically(ctx, func(tx store.Tx) error {
				if _, err := tx.HoldTicket(ctx, "shop", user, tk.Hash); err != nil {
					return err
				}
				return tx.AddPasskey(ctx, store.Passkey{ID: user + "-key", AppID: "shop", User: user, Data: []byte("{}"), AAGUID: []byte{}, CreatedAt: at(0)})
			})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		})
		if pks, err := s.PasskeysOfUser(ctx, "shop", user); err != nil || len(pks) != 0 {
			t.Fatalf("round %d: %d passkeys left after the reset (%v), want none", round, len(pks), err)
		}
	}
}

func testCeremoniesPerTicket(t *testing.T, s store.Store) {
	ctx := t.Context()
	other := store.Ceremony{Challenge: "other", Kind: "assertion", AppID: "app", User: "u", TicketHash: []byte{2}, Session: []byte("{}"), ExpiresAt: at(time.Minute)}
	must(t, s.PutCeremony(ctx, other))
	for i := range 12 {
		must(t, s.PutCeremony(ctx, store.Ceremony{Challenge: fmt.Sprint("c", i), Kind: "assertion", AppID: "app", User: "u",
			TicketHash: []byte{1}, Session: []byte("{}"), ExpiresAt: at(time.Duration(i+2) * time.Minute)}))
	}
	for i := range 12 {
		_, err := s.Ceremony(ctx, fmt.Sprint("c", i))
		if kept := i >= 4; kept != (err == nil) {
			t.Errorf("ceremony %d of 12: %v, kept %v", i, err, kept)
		}
	}
	if _, err := s.Ceremony(ctx, "other"); err != nil {
		t.Errorf("another ticket's ceremony: %v", err)
	}
}

func testUserPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	if p, err := s.UserPolicy(ctx, "app", "u"); err != nil || p != "" {
		t.Fatalf("no policy: %q %v", p, err)
	}
	must(t, s.SetUserPolicy(ctx, "app", "u", store.PolicyPasskeyOnly))
	must(t, s.SetUserPolicy(ctx, "app", "u", store.PolicyTOTPFallback))
	if p, err := s.UserPolicy(ctx, "app", "u"); err != nil || p != store.PolicyTOTPFallback {
		t.Fatalf("policy: %q %v", p, err)
	}
}

func testClaimOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	wins := winners(10, func(int) bool {
		ok, err := s.ClaimOnce(ctx, "jti-1", at(5*time.Minute))
		if err != nil {
			t.Error(err)
		}
		return ok
	})
	if wins != 1 {
		t.Fatalf("%d of 10 claims of one key won, want 1", wins)
	}
	sweep(t, s, at(6*time.Minute))
	if ok, err := s.ClaimOnce(ctx, "jti-1", at(time.Hour)); err != nil || !ok {
		t.Fatalf("after its time was swept: %v %v", ok, err)
	}
}
