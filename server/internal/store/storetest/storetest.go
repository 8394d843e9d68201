// Package storetest is the contract every store.Store backend passes: the semantics written
// in the doc comments of package store, checked the same way on SQLite and PostgreSQL so the
// two cannot drift. Backends call Run from their own tests.
package storetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Run runs the contract suite. Each subtest calls open for a fresh, empty store of its own;
// open registers whatever cleanup the store needs (closing it, dropping its database) on the
// t it is given.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, open(t))
		})
	}
	RunBudgets(t, func(t *testing.T) store.AttemptStore { return open(t) })
}

// contractCase is one property of the contract, checked on a fresh store.
type contractCase struct {
	name string
	run  func(t *testing.T, s store.Store)
}

var tests = []contractCase{
	{"Ping_OpenStore_Answers", testPing},

	{"CreateApp_ThenApp_RoundTripsEveryField", testAppRoundTrip},
	{"CreateApp_NoOrigins_RoundTrips", testAppNoOrigins},
	{"CreateApp_DuplicateID_ErrConflictAndFirstKept", testAppDuplicate},
	{"App_Unknown_ErrNotFound", testAppUnknown},
	{"OriginKnown_OnlyExactListedOrigins", testOriginKnown},

	{"CreateTicket_ThenTicket_RoundTripsEveryField", testTicketRoundTrip},
	{"Ticket_Unknown_ErrNotFound", testTicketUnknown},
	{"ElevateTicket_KeepsTheFirstTime", testElevateKeepsFirst},
	{"ElevateTicket_Concurrently_OneTimeSticks", testElevateConcurrently},
	{"EndElevations_EndsTheUsersOtherTicketsOnly", testEndElevations},

	{"CreateTOTP_Pending_RoundTripsEveryField", testTOTPRoundTrip},
	{"TOTP_Unknown_ErrNotFound", testTOTPUnknown},
	{"TOTPsOfUser_ListsOnlyConfirmedOfThatAppAndUser", testTOTPsOfUser},
	{"TicketAccount_SameAsTicketTOTPsAndPolicyRead", testTicketAccount},
	{"ConfirmTOTP_NoPendingEnrollment_ErrNotFound", testConfirmRefused},
	{"ConfirmTOTP_Pending_ConfirmsWithStep", testConfirmSetsStep},
	{"ConfirmTOTP_Twice_SecondErrNotFound", testConfirmTwice},
	{"ConfirmTOTP_SameEnrollmentConcurrently_OneWins", testConfirmConcurrently},
	{"ConfirmTOTP_RecoveryCodes_ReplaceTheOldSet", testConfirmReplacesCodes},
	{"CreateTOTP_AUserKeepsTheNewestEightPending", testPendingPerUser},
	{"ReplaceRecoveryCodes_SetsAtOnce_OneSetRemains", testReplaceCodesConcurrently},
	{"ConfirmTOTP_NoRecoveryCodesOrNotTheFirst_KeepsTheOldSet", testConfirmKeepsCodes},
	{"ConfirmTOTP_Refused_LeavesRecoveryCodesAlone", testConfirmRefusedKeepsCodes},
	{"ConfirmTOTP_TwoEnrollmentsConcurrently_OneCodeSetRemains", testConfirmCodeSetsConcurrently},
	{"AdvanceTOTP_OnlyAHigherStep_Accepted", testAdvance},
	{"AdvanceTOTP_PendingOrUnknown_Refused", testAdvanceNotConfirmed},
	{"AdvanceTOTP_SameStepConcurrently_OneWins", testAdvanceSameStepConcurrently},
	{"AdvanceTOTP_DifferentStepsConcurrently_NeverMovesBack", testAdvanceRacingSteps},

	{"ConsumeRecoveryCode_Once", testConsumeOnce},
	{"ConsumeRecoveryCode_OtherAppUserOrHash_False", testConsumeWrongOwner},
	{"ConsumeRecoveryCode_SameCodeConcurrently_OneWins", testConsumeConcurrently},
	{"RecoveryCodesLeft_NoCodes_Zero", testCodesLeftNone},

	{"AddSigningKey_FirstKey_Active", testFirstKey},
	{"AddSigningKey_SecondWithoutReplace_ErrConflict", testSecondKeyConflict},
	{"AddSigningKey_OtherAlgorithm_NoConflict", testKeyOtherAlg},
	{"AddSigningKey_Replace_RetiresOldAtNewCreatedAt", testKeyReplace},
	{"AddSigningKey_ReplaceWithDuplicateKID_ChangesNothing", testKeyReplaceDuplicateKID},
	{"AddSigningKey_FirstKeyConcurrently_OneWins", testFirstKeyConcurrently},
	{"AddSigningKey_ReplaceConcurrently_OneActiveKeyRemains", testReplaceKeyConcurrently},
	{"SigningKeys_RetiredAfter_FiltersRetiredKeys", testSigningKeysFilter},
	{"WithdrawSigningKey_ListedNoMore_OthersUntouched", testWithdrawSigningKey},

	{"Secret_Unknown_ErrNotFound", testSecretUnknown},
	{"PutSecret_FirstWins_ReturnsStoredValue", testPutSecretFirstWins},
	{"PutSecret_Concurrently_AllGetOneValue", testPutSecretConcurrently},

	{"SealedValues_ListsEveryKindWithItsOwner", testSealedValues},
	{"ReplaceSealed_CompareAndSet", testReplaceSealed},
	{"ReplaceSealed_UnknownKind_Error", testReplaceSealedUnknownKind},
	{"ReplaceSealed_SameValueConcurrently_OneWins", testReplaceSealedConcurrently},

	{"Sweep_RemovesExpired_KeepsLiveAndConfirmed", testSweep},
}

// t0 is a fixed instant on a whole millisecond, the precision every backend keeps.
var t0 = time.UnixMilli(1_893_456_000_000) // 2030-01-01T00:00:00Z

func at(d time.Duration) time.Time { return t0.Add(d) }

// winners runs f in n goroutines released together and counts how many returned true.
func winners(n int, f func(i int) bool) int {
	var won atomic.Int64
	goroutines(n, func(i int) {
		if f(i) {
			won.Add(1)
		}
	})
	return int(won.Load())
}

// goroutines runs f(i) for i in [0, n) at once, each released by the same signal so the
// calls really overlap.
func goroutines(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: err = %v, want errors.Is(err, store.ErrNotFound)", what, err)
	}
}

// --- apps ---

func newApp(id string, origins ...string) store.App {
	return store.App{
		ID:         id,
		Name:       "App " + id,
		Origins:    origins,
		APIKeyHash: []byte("key-hash-" + id),
		SigningAlg: "EdDSA",
		CreatedAt:  at(0),
	}
}

func diffApp(got, want store.App) string {
	g, w := slices.Sorted(slices.Values(got.Origins)), slices.Sorted(slices.Values(want.Origins))
	if got.ID != want.ID || got.Name != want.Name || !slices.Equal(g, w) ||
		!bytes.Equal(got.APIKeyHash, want.APIKeyHash) || got.SigningAlg != want.SigningAlg ||
		!got.CreatedAt.Equal(want.CreatedAt) {
		return fmt.Sprintf("got  %+v\nwant %+v", got, want)
	}
	return ""
}

func testPing(t *testing.T, s store.Store) {
	must(t, s.Ping(t.Context()))
}

func testAppRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := newApp("shop", "https://shop.example", "http://localhost:3000", "https://admin.shop.example")
	want.SigningAlg = "ES256"
	must(t, s.CreateApp(ctx, want))
	got, err := s.App(ctx, "shop")
	must(t, err)
	if d := diffApp(got, want); d != "" {
		t.Error(d)
	}
}

func testAppNoOrigins(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := newApp("backend-only")
	must(t, s.CreateApp(ctx, want))
	got, err := s.App(ctx, "backend-only")
	must(t, err)
	if d := diffApp(got, want); d != "" {
		t.Error(d)
	}
}

func testAppDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := newApp("shop", "https://shop.example")
	must(t, s.CreateApp(ctx, first))
	second := newApp("shop", "https://evil.example")
	second.Name, second.APIKeyHash = "Impostor", []byte("other-hash")
	if err := s.CreateApp(ctx, second); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateApp(duplicate id) = %v, want errors.Is(err, store.ErrConflict)", err)
	}
	got, err := s.App(ctx, "shop")
	must(t, err)
	if d := diffApp(got, first); d != "" {
		t.Errorf("after refused duplicate:\n%s", d)
	}
	known, err := s.OriginKnown(ctx, "https://evil.example")
	must(t, err)
	if known {
		t.Error("origin of the refused duplicate became known")
	}
}

func testAppUnknown(t *testing.T, s store.Store) {
	_, err := s.App(t.Context(), "nope")
	wantNotFound(t, "App(unknown)", err)
}

func testOriginKnown(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("a", "https://a.example", "http://localhost:3000")))
	must(t, s.CreateApp(ctx, newApp("b", "https://b.example", "http://localhost:3000")))
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"https://a.example", true},
		{"https://b.example", true},
		{"http://localhost:3000", true}, // listed by two apps
		{"https://c.example", false},
		{"http://a.example", false},      // other scheme
		{"https://a.example:443", false}, // origins compare as written
		{"https://A.example", false},     // no case folding
		{"https://a.example/", false},    // no trailing slash
		{"https://sub.a.example", false}, // no suffix match
		{"http://localhost:3001", false}, // other port
		{"", false},
	} {
		got, err := s.OriginKnown(ctx, tc.origin)
		must(t, err)
		if got != tc.want {
			t.Errorf("OriginKnown(%q) = %v, want %v", tc.origin, got, tc.want)
		}
	}
}

// --- tickets ---

func newTicket(hash string) store.Ticket {
	return store.Ticket{
		Hash:      []byte(hash),
		AppID:     "shop",
		User:      "alice",
		Nonce:     "nonce-" + hex.EncodeToString([]byte(hash)),
		CreatedAt: at(0),
		ExpiresAt: at(5 * time.Minute),
	}
}

func diffTicket(got, want store.Ticket) string {
	if !bytes.Equal(got.Hash, want.Hash) || got.AppID != want.AppID || got.User != want.User ||
		got.Nonce != want.Nonce || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || !got.ElevatedAt.Equal(want.ElevatedAt) {
		return fmt.Sprintf("got  %+v\nwant %+v", got, want)
	}
	return ""
}

func testTicketRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	plain := newTicket("plain")
	elevated := newTicket("elevated")
	elevated.ElevatedAt = at(time.Second)
	binary := newTicket("\x00\xff binary")
	binary.CreatedAt = at(123 * time.Millisecond)
	for _, want := range []store.Ticket{plain, elevated, binary} {
		must(t, s.CreateTicket(ctx, want))
		got, err := s.Ticket(ctx, want.Hash)
		must(t, err)
		if d := diffTicket(got, want); d != "" {
			t.Error(d)
		}
	}
}

func testTicketUnknown(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTicket(ctx, newTicket("known")))
	_, err := s.Ticket(ctx, []byte("unknown"))
	wantNotFound(t, "Ticket(unknown)", err)
	_, err = s.Ticket(ctx, []byte("know")) // a prefix is another hash
	wantNotFound(t, "Ticket(prefix of known)", err)
}

func testElevateKeepsFirst(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := newTicket("tk")
	must(t, s.CreateTicket(ctx, want))
	must(t, s.ElevateTicket(ctx, want.Hash, at(time.Minute), "otp"))
	must(t, s.ElevateTicket(ctx, want.Hash, at(2*time.Minute), "otp"))
	must(t, s.ElevateTicket(ctx, want.Hash, at(30*time.Second), "otp"))
	want.ElevatedAt = at(time.Minute)
	got, err := s.Ticket(ctx, want.Hash)
	must(t, err)
	if d := diffTicket(got, want); d != "" {
		t.Error(d)
	}
}

func testElevateConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	tk := newTicket("tk")
	must(t, s.CreateTicket(ctx, tk))
	const n = 20
	goroutines(n, func(i int) {
		if err := s.ElevateTicket(ctx, tk.Hash, at(time.Duration(i+1)*time.Second), "otp"); err != nil {
			t.Errorf("ElevateTicket #%d: %v", i, err)
		}
	})
	got, err := s.Ticket(ctx, tk.Hash)
	must(t, err)
	if got.ElevatedAt.Before(at(time.Second)) || got.ElevatedAt.After(at(n*time.Second)) {
		t.Fatalf("ElevatedAt = %v, want one of the times given", got.ElevatedAt)
	}
	must(t, s.ElevateTicket(ctx, tk.Hash, at(time.Hour), "otp"))
	again, err := s.Ticket(ctx, tk.Hash)
	must(t, err)
	if !again.ElevatedAt.Equal(got.ElevatedAt) {
		t.Errorf("ElevatedAt moved from %v to %v", got.ElevatedAt, again.ElevatedAt)
	}
}

// --- TOTP ---

func newPending(id, appID, user string) store.TOTPCredential {
	return store.TOTPCredential{
		ID:        id,
		AppID:     appID,
		User:      user,
		Label:     "phone " + id,
		Sealed:    []byte("sealed-" + id),
		Algorithm: "SHA1",
		Digits:    6,
		Period:    30,
		LastStep:  -1,
		ExpiresAt: at(10 * time.Minute),
		CreatedAt: at(0),
	}
}

// confirmed stores an enrollment and confirms it at step.
func confirmed(t *testing.T, s store.Store, id, appID, user string, step int64) {
	t.Helper()
	must(t, s.CreateTOTP(t.Context(), newPending(id, appID, user)))
	must(t, confirm(s, t.Context(), id, step, at(time.Minute), nil))
}

func diffTOTP(got, want store.TOTPCredential) string {
	if got.ID != want.ID || got.AppID != want.AppID || got.User != want.User || got.Label != want.Label ||
		!bytes.Equal(got.Sealed, want.Sealed) || got.Algorithm != want.Algorithm ||
		got.Digits != want.Digits || got.Period != want.Period || got.LastStep != want.LastStep ||
		got.Confirmed != want.Confirmed || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.LastUsedAt.Equal(want.LastUsedAt) {
		return fmt.Sprintf("got  %+v\nwant %+v", got, want)
	}
	return ""
}

func lastStep(t *testing.T, s store.Store, id string) int64 {
	t.Helper()
	c, err := s.TOTP(t.Context(), id)
	must(t, err)
	return c.LastStep
}

func testTOTPRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := newPending("c1", "shop", "alice")
	want.Algorithm, want.Digits, want.Period = "SHA512", 8, 60
	want.Sealed = []byte{0, 1, 2, 0xfe, 0xff}
	must(t, s.CreateTOTP(ctx, want))
	got, err := s.TOTP(ctx, "c1")
	must(t, err)
	if d := diffTOTP(got, want); d != "" {
		t.Error(d)
	}
}

func testTOTPUnknown(t *testing.T, s store.Store) {
	_, err := s.TOTP(t.Context(), "nope")
	wantNotFound(t, "TOTP(unknown)", err)
}

func testTOTPsOfUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "alice-1", "shop", "alice", 10)
	confirmed(t, s, "alice-2", "shop", "alice", 20)
	must(t, s.CreateTOTP(ctx, newPending("alice-pending", "shop", "alice")))
	confirmed(t, s, "bob-1", "shop", "bob", 10)
	confirmed(t, s, "alice-other-app", "blog", "alice", 10)

	for _, tc := range []struct {
		app, user string
		want      []string
	}{
		{"shop", "alice", []string{"alice-1", "alice-2"}},
		{"shop", "bob", []string{"bob-1"}},
		{"blog", "alice", []string{"alice-other-app"}},
		{"blog", "bob", nil},
		{"shop", "carol", nil},
	} {
		list, err := s.TOTPsOfUser(ctx, tc.app, tc.user)
		must(t, err)
		var ids []string
		for _, c := range list {
			if !c.Confirmed {
				t.Errorf("TOTPsOfUser(%s, %s) lists unconfirmed %s", tc.app, tc.user, c.ID)
			}
			ids = append(ids, c.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, tc.want) {
			t.Errorf("TOTPsOfUser(%s, %s) = %v, want %v", tc.app, tc.user, ids, tc.want)
		}
	}

	// The listed records are whole: they carry what TOTP returns.
	list, err := s.TOTPsOfUser(ctx, "shop", "bob")
	must(t, err)
	one, err := s.TOTP(ctx, "bob-1")
	must(t, err)
	if len(list) == 1 {
		if d := diffTOTP(list[0], one); d != "" {
			t.Errorf("TOTPsOfUser record differs from TOTP:\n%s", d)
		}
	}
}

func testTicketAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "alice-2", "shop", "alice", 20)
	confirmed(t, s, "alice-1", "shop", "alice", 10)
	must(t, s.CreateTOTP(ctx, newPending("alice-pending", "shop", "alice")))
	must(t, s.CreateTOTP(ctx, newPending("carol-pending", "shop", "carol")))
	confirmed(t, s, "alice-other-app", "blog", "alice", 10)
	confirmed(t, s, "bob-1", "shop", "bob", 10)
	must(t, s.SetUserPolicy(ctx, "shop", "bob", store.PolicyPasskeyOnly))
	must(t, s.SetUserPolicy(ctx, "shop", "dave", store.PolicyTOTPFallback))
	must(t, s.SetUserPolicy(ctx, "blog", "alice", store.PolicyPasskeyOnly))

	for _, tc := range []struct {
		name, app, user string
		wantIDs         []string
	}{
		{"two credentials, a pending one, no policy", "shop", "alice", []string{"alice-1", "alice-2"}},
		{"one credential and a policy", "shop", "bob", []string{"bob-1"}},
		{"only a pending enrollment", "shop", "carol", nil},
		{"no credential, a policy", "shop", "dave", nil},
		{"the same user in another app", "blog", "alice", []string{"alice-other-app"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTicket("tk-" + tc.app + "-" + tc.user)
			tk.AppID, tk.User = tc.app, tc.user
			must(t, s.CreateTicket(ctx, tk))
			gotTicket, got, err := s.TicketAccount(ctx, tk.Hash)
			must(t, err)
			if d := diffTicket(gotTicket, tk); d != "" {
				t.Error(d)
			}
			wantTOTPs, err := s.TOTPsOfUser(ctx, tc.app, tc.user)
			must(t, err)
			wantPolicy, err := s.UserPolicy(ctx, tc.app, tc.user)
			must(t, err)
			if got.Policy != wantPolicy {
				t.Errorf("Policy = %q, want %q", got.Policy, wantPolicy)
			}
			var ids []string
			for i, c := range got.TOTPs {
				ids = append(ids, c.ID)
				if i < len(wantTOTPs) {
					if d := diffTOTP(c, wantTOTPs[i]); d != "" {
						t.Errorf("credential %d differs from TOTPsOfUser's:\n%s", i, d)
					}
				}
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("TOTPs = %v, want %v", ids, tc.wantIDs)
			}
		})
	}

	_, _, err := s.TicketAccount(ctx, []byte("unknown"))
	wantNotFound(t, "TicketAccount(unknown)", err)
}

func testConfirmRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	pending := newPending("pending", "shop", "alice") // expires at(10m)
	must(t, s.CreateTOTP(ctx, pending))
	confirmed(t, s, "done", "shop", "alice", 5)
	// Stored confirmed from the start (an import), with a window that would still be open.
	imported := newPending("imported", "shop", "alice")
	imported.Confirmed, imported.LastStep = true, 5
	must(t, s.CreateTOTP(ctx, imported))
	for _, tc := range []struct {
		name string
		id   string
		now  time.Time
	}{
		{"unknown", "nope", at(time.Minute)},
		{"expired", "pending", at(11 * time.Minute)},
		{"at ExpiresAt", "pending", pending.ExpiresAt}, // it dies at ExpiresAt
		{"already confirmed", "done", at(2 * time.Minute)},
		{"created confirmed", "imported", at(2 * time.Minute)},
	} {
		err := confirm(s, ctx, tc.id, 99, tc.now, [][]byte{[]byte("code")})
		wantNotFound(t, "ConfirmTOTP("+tc.name+")", err)
	}
	// Nothing changed.
	got, err := s.TOTP(ctx, "pending")
	must(t, err)
	if d := diffTOTP(got, pending); d != "" {
		t.Errorf("refused confirmations changed the enrollment:\n%s", d)
	}
	for _, id := range []string{"done", "imported"} {
		if step := lastStep(t, s, id); step != 5 {
			t.Errorf("refused confirmation moved last step of confirmed %s to %d", id, step)
		}
	}
}

func testConfirmSetsStep(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := newPending("c1", "shop", "alice")
	must(t, s.CreateTOTP(ctx, c))
	now := at(9*time.Minute + 59*time.Second + 999*time.Millisecond) // just before ExpiresAt
	must(t, confirm(s, ctx, "c1", 63_115_200, now, nil))
	got, err := s.TOTP(ctx, "c1")
	must(t, err)
	if !got.Confirmed || got.LastStep != 63_115_200 {
		t.Errorf("after ConfirmTOTP: Confirmed=%v LastStep=%d, want true 63115200", got.Confirmed, got.LastStep)
	}
	if !got.ExpiresAt.IsZero() {
		t.Errorf("after ConfirmTOTP: ExpiresAt = %v, want zero (pending enrollments only)", got.ExpiresAt)
	}
	if got.ID != c.ID || got.AppID != c.AppID || got.User != c.User || !bytes.Equal(got.Sealed, c.Sealed) ||
		got.Label != c.Label || !got.CreatedAt.Equal(c.CreatedAt) {
		t.Errorf("ConfirmTOTP changed identity fields:\n got %+v\nfrom %+v", got, c)
	}
	// The confirmed step is itself spent.
	ok, err := s.AdvanceTOTP(ctx, "c1", 63_115_200, now, store.Drift{})
	must(t, err)
	if ok {
		t.Error("AdvanceTOTP accepted the step the credential was confirmed with")
	}
}

func testConfirmTwice(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTOTP(ctx, newPending("c1", "shop", "alice")))
	must(t, confirm(s, ctx, "c1", 100, at(time.Minute), nil))
	wantNotFound(t, "second ConfirmTOTP", confirm(s, ctx, "c1", 50, at(2*time.Minute), nil))
	if step := lastStep(t, s, "c1"); step != 100 {
		t.Errorf("second ConfirmTOTP moved last step to %d, want 100", step)
	}
}

func testConfirmConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTOTP(ctx, newPending("c1", "shop", "alice")))
	var mu sync.Mutex
	var wins []int
	goroutines(20, func(i int) {
		err := confirm(s, ctx, "c1", int64(100+i), at(time.Minute), [][]byte{fmt.Appendf(nil, "code-%d", i)})
		switch {
		case err == nil:
			mu.Lock()
			wins = append(wins, i)
			mu.Unlock()
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("ConfirmTOTP #%d: %v", i, err)
		}
	})
	if len(wins) != 1 {
		t.Fatalf("%d confirmations succeeded (%v), want exactly 1", len(wins), wins)
	}
	if step := lastStep(t, s, "c1"); step != int64(100+wins[0]) {
		t.Errorf("last step = %d, want the winner's %d", step, 100+wins[0])
	}
	left, err := s.RecoveryCodesLeft(ctx, "shop", "alice")
	must(t, err)
	if left != 1 {
		t.Errorf("RecoveryCodesLeft = %d, want the winner's 1 code", left)
	}
	ok, err := s.ConsumeRecoveryCode(ctx, "shop", "alice", fmt.Appendf(nil, "code-%d", wins[0]), at(time.Hour))
	must(t, err)
	if !ok {
		t.Error("the winner's recovery code is not the one installed")
	}
}

func hashes(prefix string, n int) [][]byte {
	var out [][]byte
	for i := range n {
		out = append(out, fmt.Appendf(nil, "%s-%d", prefix, i))
	}
	return out
}

func codesLeft(t *testing.T, s store.Store, appID, user string) int {
	t.Helper()
	n, err := s.RecoveryCodesLeft(t.Context(), appID, user)
	must(t, err)
	return n
}

func consume(t *testing.T, s store.Store, appID, user string, hash []byte) bool {
	t.Helper()
	ok, err := s.ConsumeRecoveryCode(t.Context(), appID, user, hash, at(time.Hour))
	must(t, err)
	return ok
}

func testConfirmReplacesCodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	old, fresh := hashes("old", 5), hashes("new", 3)
	must(t, s.CreateTOTP(ctx, newPending("c1", "shop", "alice")))
	must(t, confirm(s, ctx, "c1", 10, at(time.Minute), old))
	// Other users and apps keep theirs.
	must(t, s.CreateTOTP(ctx, newPending("bob", "shop", "bob")))
	must(t, confirm(s, ctx, "bob", 10, at(time.Minute), old))
	must(t, s.CreateTOTP(ctx, newPending("blog", "blog", "alice")))
	must(t, confirm(s, ctx, "blog", 10, at(time.Minute), old))

	if n := codesLeft(t, s, "shop", "alice"); n != 5 {
		t.Fatalf("RecoveryCodesLeft after first set = %d, want 5", n)
	}
	if !consume(t, s, "shop", "alice", old[0]) {
		t.Fatal("code of the first set refused")
	}

	// A first authenticator again (the last one gone, as after passkey_only): its set
	// replaces the old one.
	must(t, s.DeleteTOTP(ctx, "shop", "alice", "c1"))
	must(t, s.CreateTOTP(ctx, newPending("c2", "shop", "alice")))
	must(t, confirm(s, ctx, "c2", 20, at(2*time.Minute), fresh))
	if n := codesLeft(t, s, "shop", "alice"); n != 3 {
		t.Errorf("RecoveryCodesLeft after new set = %d, want 3", n)
	}
	for _, h := range old[1:] {
		if consume(t, s, "shop", "alice", h) {
			t.Errorf("code %q of the replaced set still accepted", h)
		}
	}
	for _, h := range fresh {
		if !consume(t, s, "shop", "alice", h) {
			t.Errorf("code %q of the new set refused", h)
		}
	}
	if n := codesLeft(t, s, "shop", "bob"); n != 5 {
		t.Errorf("another user's codes: %d left, want 5", n)
	}
	if n := codesLeft(t, s, "blog", "alice"); n != 5 {
		t.Errorf("the same user's codes in another app: %d left, want 5", n)
	}
}

func testPendingPerUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "kept", "shop", "alice", 10)
	must(t, s.CreateTOTP(ctx, newPending("bob-pending", "shop", "bob")))
	for i := range 12 {
		c := newPending(fmt.Sprint("p", i), "shop", "alice")
		c.CreatedAt = at(time.Duration(i) * time.Second)
		must(t, s.CreateTOTP(ctx, c))
	}
	for i := range 12 {
		_, err := s.TOTP(ctx, fmt.Sprint("p", i))
		if kept := i >= 4; kept != (err == nil) {
			t.Errorf("pending enrollment %d of 12: %v, kept %v", i, err, kept)
		}
	}
	for _, id := range []string{"kept", "bob-pending"} {
		if _, err := s.TOTP(ctx, id); err != nil {
			t.Errorf("%s: %v (a confirmed credential, another user's enrollment)", id, err)
		}
	}
}

// Sets of recovery codes given at once (a regeneration clicked twice) leave one set, never
// the union of several.
func testReplaceCodesConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	withCodes(t, s, "shop", "alice", hashes("old", 3))
	goroutines(8, func(i int) {
		if err := s.ReplaceRecoveryCodes(ctx, "shop", "alice", hashes(fmt.Sprint("set", i), 4), at(time.Minute)); err != nil {
			t.Errorf("ReplaceRecoveryCodes #%d: %v", i, err)
		}
	})
	if n := codesLeft(t, s, "shop", "alice"); n != 4 {
		t.Errorf("RecoveryCodesLeft = %d after sets given at once, want the 4 of one set", n)
	}
}

// confirm is ConfirmTOTP for the tests that do not ask whether codes were installed.
func confirm(s store.Store, ctx context.Context, id string, step int64, now time.Time, recoveryHashes [][]byte) error {
	_, err := s.ConfirmTOTP(ctx, id, step, now, recoveryHashes)
	return err
}

func testConfirmKeepsCodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := hashes("old", 4)
	// ConfirmTOTP says whether it installed the set, so its caller shows only codes that work.
	for _, tc := range []struct {
		id        string
		codes     [][]byte
		installed bool
	}{
		{"c1", old, true},
		{"c2", nil, false},
		{"c3", [][]byte{}, false},
		{"c4", hashes("other", 4), false}, // not the first authenticator: not installed
	} {
		must(t, s.CreateTOTP(ctx, newPending(tc.id, "shop", "alice")))
		installed, err := s.ConfirmTOTP(ctx, tc.id, 10, at(time.Minute), tc.codes)
		must(t, err)
		if installed != tc.installed {
			t.Errorf("ConfirmTOTP(%s) installed %v, want %v", tc.id, installed, tc.installed)
		}
	}
	if n := codesLeft(t, s, "shop", "alice"); n != 4 {
		t.Errorf("RecoveryCodesLeft = %d, want the old 4", n)
	}
	if consume(t, s, "shop", "alice", []byte("other-0")) {
		t.Error("a set given with a second authenticator was installed")
	}
	if !consume(t, s, "shop", "alice", old[3]) {
		t.Error("old code refused after a confirmation without codes")
	}
}

func testConfirmRefusedKeepsCodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := hashes("old", 2)
	must(t, s.CreateTOTP(ctx, newPending("c1", "shop", "alice")))
	must(t, confirm(s, ctx, "c1", 10, at(time.Minute), old))
	must(t, s.CreateTOTP(ctx, newPending("late", "shop", "alice")))
	wantNotFound(t, "ConfirmTOTP(expired)", confirm(s, ctx, "late", 10, at(time.Hour), hashes("new", 8)))
	wantNotFound(t, "ConfirmTOTP(twice)", confirm(s, ctx, "c1", 10, at(time.Minute), hashes("new", 8)))
	if n := codesLeft(t, s, "shop", "alice"); n != 2 {
		t.Errorf("RecoveryCodesLeft = %d after refused confirmations, want the old 2", n)
	}
	if consume(t, s, "shop", "alice", []byte("new-0")) {
		t.Error("a code given with a refused confirmation was installed")
	}
}

// Enrollments of one user confirmed at once each bring a full set of codes, as a first
// authenticator does; the user must end up with one of the sets, never with several (more
// codes an attacker could guess). That it is the set the first confirmation showed is
// checked end to end (TestConfirmEnrollment_TwoFirstAuthenticatorsAtOnce_ShownCodesWork).
func testConfirmCodeSetsConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	withCodes(t, s, "shop", "alice", hashes("old", 3))
	must(t, s.DeleteTOTP(ctx, "shop", "alice", "shop/alice")) // codes left, no authenticator
	for i := range n {
		must(t, s.CreateTOTP(ctx, newPending(fmt.Sprint("c", i), "shop", "alice")))
	}
	goroutines(n, func(i int) {
		if err := confirm(s, ctx, fmt.Sprint("c", i), 10, at(time.Minute), hashes(fmt.Sprint("set", i), 4)); err != nil {
			t.Errorf("ConfirmTOTP #%d: %v", i, err)
		}
	})
	if n := codesLeft(t, s, "shop", "alice"); n != 4 {
		t.Errorf("RecoveryCodesLeft = %d after concurrent confirmations, want the 4 of one set", n)
	}
	if consume(t, s, "shop", "alice", []byte("old-0")) {
		t.Error("a code of the replaced set is still accepted")
	}
}

func testAdvance(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "c1", "shop", "alice", 100)
	for _, tc := range []struct {
		step     int64
		want     bool
		wantLast int64
	}{
		{99, false, 100},
		{100, false, 100}, // the step it was confirmed with
		{-1, false, 100},
		{101, true, 101},
		{101, false, 101}, // the same code twice
		{100, false, 101},
		{150, true, 150},
		{120, false, 150}, // a late code of an earlier step
		{151, true, 151},
	} {
		now := at(time.Duration(tc.step) * time.Second)
		ok, err := s.AdvanceTOTP(ctx, "c1", tc.step, now, store.Drift{})
		must(t, err)
		if ok != tc.want {
			t.Errorf("AdvanceTOTP(%d) = %v, want %v", tc.step, ok, tc.want)
		}
		c, err := s.TOTP(ctx, "c1")
		must(t, err)
		if c.LastStep != tc.wantLast {
			t.Errorf("after AdvanceTOTP(%d): LastStep = %d, want %d", tc.step, c.LastStep, tc.wantLast)
		}
		if ok && !c.LastUsedAt.Equal(now) {
			t.Errorf("after accepted AdvanceTOTP(%d): LastUsedAt = %v, want %v", tc.step, c.LastUsedAt, now)
		}
	}
}

func testAdvanceNotConfirmed(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTOTP(ctx, newPending("pending", "shop", "alice")))
	// A pending enrollment proves nothing yet: codes go through ConfirmTOTP.
	ok, err := s.AdvanceTOTP(ctx, "pending", 1000, at(time.Minute), store.Drift{})
	must(t, err)
	if ok {
		t.Error("AdvanceTOTP accepted a step for a pending enrollment")
	}
	if step := lastStep(t, s, "pending"); step != -1 {
		t.Errorf("pending enrollment LastStep = %d, want -1", step)
	}
	ok, err = s.AdvanceTOTP(ctx, "nope", 1000, at(time.Minute), store.Drift{})
	if ok || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		t.Errorf("AdvanceTOTP(unknown) = %v, %v; want false with no error or ErrNotFound", ok, err)
	}
}

func testAdvanceSameStepConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "c1", "shop", "alice", 100)
	var mu sync.Mutex
	wins := 0
	goroutines(50, func(i int) {
		ok, err := s.AdvanceTOTP(ctx, "c1", 101, at(time.Hour), store.Drift{})
		if err != nil {
			t.Errorf("AdvanceTOTP #%d: %v", i, err)
		}
		if ok {
			mu.Lock()
			wins++
			mu.Unlock()
		}
	})
	if wins != 1 {
		t.Errorf("%d of 50 concurrent AdvanceTOTP(101) accepted, want exactly 1", wins)
	}
	if step := lastStep(t, s, "c1"); step != 101 {
		t.Errorf("LastStep = %d, want 101", step)
	}
}

func testAdvanceRacingSteps(t *testing.T, s store.Store) {
	ctx := t.Context()
	confirmed(t, s, "c1", "shop", "alice", 100)
	const n = 50
	steps := make([]int64, n)
	for i := range steps {
		steps[i] = int64(101 + i)
	}
	rand.Shuffle(n, func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
	var mu sync.Mutex
	var accepted []int64
	goroutines(n, func(i int) {
		ok, err := s.AdvanceTOTP(ctx, "c1", steps[i], at(time.Hour), store.Drift{})
		if err != nil {
			t.Errorf("AdvanceTOTP(%d): %v", steps[i], err)
		}
		if ok {
			mu.Lock()
			accepted = append(accepted, steps[i])
			mu.Unlock()
		}
	})
	if len(accepted) == 0 {
		t.Fatal("no step accepted")
	}
	top := slices.Max(accepted)
	if top != 101+n-1 {
		t.Errorf("highest accepted step = %d, want %d: the highest step can never be refused", top, 101+n-1)
	}
	if step := lastStep(t, s, "c1"); step != top {
		t.Errorf("LastStep = %d, want the highest accepted %d", step, top)
	}
	for _, step := range []int64{top, top - 1, 101} {
		ok, err := s.AdvanceTOTP(ctx, "c1", step, at(time.Hour), store.Drift{})
		must(t, err)
		if ok {
			t.Errorf("AdvanceTOTP(%d) accepted after the race reached %d", step, top)
		}
	}
}

// --- recovery codes ---

func withCodes(t *testing.T, s store.Store, appID, user string, codes [][]byte) {
	t.Helper()
	id := appID + "/" + user
	must(t, s.CreateTOTP(t.Context(), newPending(id, appID, user)))
	must(t, confirm(s, t.Context(), id, 1, at(time.Minute), codes))
}

func testConsumeOnce(t *testing.T, s store.Store) {
	codes := hashes("code", 3)
	withCodes(t, s, "shop", "alice", codes)
	if !consume(t, s, "shop", "alice", codes[1]) {
		t.Fatal("first use refused")
	}
	if n := codesLeft(t, s, "shop", "alice"); n != 2 {
		t.Errorf("RecoveryCodesLeft = %d, want 2", n)
	}
	if consume(t, s, "shop", "alice", codes[1]) {
		t.Error("second use accepted")
	}
	if n := codesLeft(t, s, "shop", "alice"); n != 2 {
		t.Errorf("RecoveryCodesLeft after refused reuse = %d, want 2", n)
	}
	for _, h := range [][]byte{codes[0], codes[2]} {
		if !consume(t, s, "shop", "alice", h) {
			t.Errorf("unused code %q refused", h)
		}
	}
	if n := codesLeft(t, s, "shop", "alice"); n != 0 {
		t.Errorf("RecoveryCodesLeft = %d, want 0", n)
	}
}

func testConsumeWrongOwner(t *testing.T, s store.Store) {
	code := []byte("code-0")
	withCodes(t, s, "shop", "alice", [][]byte{code})
	for _, tc := range []struct {
		app, user string
		hash      []byte
	}{
		{"shop", "bob", code},
		{"blog", "alice", code},
		{"shop", "alice", []byte("code-1")},
		{"shop", "alice", []byte("code-")}, // a prefix is another hash
		{"shop", "alice", nil},
	} {
		if consume(t, s, tc.app, tc.user, tc.hash) {
			t.Errorf("ConsumeRecoveryCode(%s, %s, %q) accepted", tc.app, tc.user, tc.hash)
		}
	}
	if n := codesLeft(t, s, "shop", "alice"); n != 1 {
		t.Errorf("RecoveryCodesLeft = %d, want 1", n)
	}
	if !consume(t, s, "shop", "alice", code) {
		t.Error("the owner's code was refused")
	}
}

func testConsumeConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	codes := hashes("code", 2)
	withCodes(t, s, "shop", "alice", codes)
	var mu sync.Mutex
	wins := 0
	goroutines(20, func(i int) {
		ok, err := s.ConsumeRecoveryCode(ctx, "shop", "alice", codes[0], at(time.Hour))
		if err != nil {
			t.Errorf("ConsumeRecoveryCode #%d: %v", i, err)
		}
		if ok {
			mu.Lock()
			wins++
			mu.Unlock()
		}
	})
	if wins != 1 {
		t.Errorf("%d of 20 concurrent uses of one code accepted, want exactly 1", wins)
	}
	if n := codesLeft(t, s, "shop", "alice"); n != 1 {
		t.Errorf("RecoveryCodesLeft = %d, want 1", n)
	}
}

func testCodesLeftNone(t *testing.T, s store.Store) {
	if n := codesLeft(t, s, "shop", "nobody"); n != 0 {
		t.Errorf("RecoveryCodesLeft(no codes) = %d, want 0", n)
	}
}

// --- signing keys ---

func newKey(kid, alg string, created time.Time) store.SigningKey {
	return store.SigningKey{KID: kid, Alg: alg, Sealed: []byte("sealed-" + kid), CreatedAt: created}
}

func diffKeys(got, want []store.SigningKey) string {
	byKID := func(a, b store.SigningKey) int { return cmp.Compare(a.KID, b.KID) }
	got, want = slices.SortedFunc(slices.Values(got), byKID), slices.SortedFunc(slices.Values(want), byKID)
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.KID == w.KID && g.Alg == w.Alg && bytes.Equal(g.Sealed, w.Sealed) &&
			g.CreatedAt.Equal(w.CreatedAt) && g.RetiredAt.Equal(w.RetiredAt)
	}
	if !same {
		return fmt.Sprintf("got  %+v\nwant %+v", got, want)
	}
	return ""
}

func allKeys(t *testing.T, s store.Store) []store.SigningKey {
	t.Helper()
	keys, err := s.SigningKeys(t.Context(), time.Time{})
	must(t, err)
	return keys
}

func testFirstKey(t *testing.T, s store.Store) {
	k := newKey("k1", "EdDSA", at(0))
	must(t, s.AddSigningKey(t.Context(), k, false))
	if d := diffKeys(allKeys(t, s), []store.SigningKey{k}); d != "" {
		t.Error(d)
	}
}

func testSecondKeyConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	k1 := newKey("k1", "EdDSA", at(0))
	must(t, s.AddSigningKey(ctx, k1, false))
	err := s.AddSigningKey(ctx, newKey("k2", "EdDSA", at(time.Hour)), false)
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("second AddSigningKey(replace=false) = %v, want errors.Is(err, store.ErrConflict)", err)
	}
	if d := diffKeys(allKeys(t, s), []store.SigningKey{k1}); d != "" {
		t.Errorf("after refused second key:\n%s", d)
	}
}

func testKeyOtherAlg(t *testing.T, s store.Store) {
	ctx := t.Context()
	keys := []store.SigningKey{
		newKey("ed", "EdDSA", at(0)),
		newKey("es", "ES256", at(time.Second)),
		newKey("rs", "RS256", at(2*time.Second)),
	}
	for _, k := range keys {
		must(t, s.AddSigningKey(ctx, k, false))
	}
	if d := diffKeys(allKeys(t, s), keys); d != "" {
		t.Error(d)
	}
}

func testKeyReplace(t *testing.T, s store.Store) {
	ctx := t.Context()
	k1, k2, k3 := newKey("k1", "EdDSA", at(0)), newKey("k2", "EdDSA", at(time.Hour)), newKey("k3", "EdDSA", at(2*time.Hour))
	other := newKey("es", "ES256", at(0))
	must(t, s.AddSigningKey(ctx, other, false))
	must(t, s.AddSigningKey(ctx, k1, true)) // replace with nothing to replace
	must(t, s.AddSigningKey(ctx, k2, true))
	must(t, s.AddSigningKey(ctx, k3, true))
	k1.RetiredAt, k2.RetiredAt = k2.CreatedAt, k3.CreatedAt
	if d := diffKeys(allKeys(t, s), []store.SigningKey{k1, k2, k3, other}); d != "" {
		t.Error(d)
	}
}

func testKeyReplaceDuplicateKID(t *testing.T, s store.Store) {
	ctx := t.Context()
	k1 := newKey("k1", "EdDSA", at(0))
	must(t, s.AddSigningKey(ctx, k1, false))
	dup := newKey("k1", "EdDSA", at(time.Hour))
	dup.Sealed = []byte("other")
	if err := s.AddSigningKey(ctx, dup, true); err == nil {
		t.Error("AddSigningKey(replace=true) with an existing KID succeeded")
	}
	// Atomic: the failed insert does not leave the algorithm without an active key.
	if d := diffKeys(allKeys(t, s), []store.SigningKey{k1}); d != "" {
		t.Errorf("after refused duplicate KID:\n%s", d)
	}
}

func testFirstKeyConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 10
	var mu sync.Mutex
	var wins []int
	goroutines(n, func(i int) {
		err := s.AddSigningKey(ctx, newKey(fmt.Sprintf("k%d", i), "EdDSA", at(time.Duration(i)*time.Millisecond)), false)
		switch {
		case err == nil:
			mu.Lock()
			wins = append(wins, i)
			mu.Unlock()
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("AddSigningKey #%d: %v", i, err)
		}
	})
	if len(wins) != 1 {
		t.Fatalf("%d of %d concurrent first keys stored (%v), want exactly 1", len(wins), n, wins)
	}
	want := newKey(fmt.Sprintf("k%d", wins[0]), "EdDSA", at(time.Duration(wins[0])*time.Millisecond))
	if d := diffKeys(allKeys(t, s), []store.SigningKey{want}); d != "" {
		t.Errorf("keys after the race are not the winner alone:\n%s", d)
	}
}

// Rotations racing each other may refuse some with ErrConflict, but never leave an algorithm
// with two active keys or none, and never lose a key that was reported stored.
func testReplaceKeyConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.AddSigningKey(ctx, newKey("k0", "EdDSA", at(0)), false))
	const n = 10
	var mu sync.Mutex
	stored := []string{"k0"}
	goroutines(n, func(i int) {
		kid := fmt.Sprint("k", i+1)
		err := s.AddSigningKey(ctx, newKey(kid, "EdDSA", at(time.Duration(i+1)*time.Minute)), true)
		switch {
		case err == nil:
			mu.Lock()
			stored = append(stored, kid)
			mu.Unlock()
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("AddSigningKey(%s, replace): %v", kid, err)
		}
	})
	keys := allKeys(t, s)
	var active, kids []string
	for _, k := range keys {
		kids = append(kids, k.KID)
		if k.RetiredAt.IsZero() {
			active = append(active, k.KID)
		}
	}
	if len(active) != 1 {
		t.Errorf("active keys after concurrent rotations: %v, want exactly 1", active)
	}
	slices.Sort(kids)
	slices.Sort(stored)
	if !slices.Equal(kids, stored) {
		t.Errorf("keys after concurrent rotations: %v, want the ones reported stored %v", kids, stored)
	}
}

func testSigningKeysFilter(t *testing.T, s store.Store) {
	ctx := t.Context()
	k1, k2, k3 := newKey("k1", "EdDSA", at(0)), newKey("k2", "EdDSA", at(time.Hour)), newKey("k3", "EdDSA", at(2*time.Hour))
	for _, k := range []store.SigningKey{k1, k2, k3} {
		must(t, s.AddSigningKey(ctx, k, true))
	}
	k1.RetiredAt, k2.RetiredAt = at(time.Hour), at(2*time.Hour)
	for _, tc := range []struct {
		name         string
		retiredAfter time.Time
		want         []store.SigningKey
	}{
		{"zero", time.Time{}, []store.SigningKey{k1, k2, k3}},
		{"before both retirements", at(30 * time.Minute), []store.SigningKey{k1, k2, k3}},
		{"a millisecond before k1 retired", at(time.Hour - time.Millisecond), []store.SigningKey{k1, k2, k3}},
		{"exactly when k1 retired", at(time.Hour), []store.SigningKey{k2, k3}},
		{"between retirements", at(90 * time.Minute), []store.SigningKey{k2, k3}},
		{"exactly when k2 retired", at(2 * time.Hour), []store.SigningKey{k3}},
		{"long after", at(1000 * time.Hour), []store.SigningKey{k3}},
	} {
		got, err := s.SigningKeys(ctx, tc.retiredAfter)
		must(t, err)
		if d := diffKeys(got, tc.want); d != "" {
			t.Errorf("SigningKeys(%s):\n%s", tc.name, d)
		}
	}
}

func testWithdrawSigningKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	k1, k2, es := newKey("k1", "EdDSA", at(0)), newKey("k2", "EdDSA", at(time.Hour)), newKey("es", "ES256", at(0))
	for _, k := range []store.SigningKey{k1, k2, es} {
		must(t, s.AddSigningKey(ctx, k, true))
	}
	k1.RetiredAt = k2.CreatedAt
	must(t, s.WithdrawSigningKey(ctx, "k2")) // the active key
	must(t, s.WithdrawSigningKey(ctx, "k1")) // a retired one, still published
	got, err := s.SigningKeys(ctx, at(-1000*time.Hour))
	must(t, err)
	if d := diffKeys(got, []store.SigningKey{es}); d != "" {
		t.Errorf("after withdrawing k1 and k2:\n%s", d)
	}
	wantNotFound(t, "WithdrawSigningKey(unknown)", s.WithdrawSigningKey(ctx, "nope"))
	// From the zero time the withdrawn keys are listed as tombstones: the private key gone.
	all, err := s.SigningKeys(ctx, time.Time{})
	must(t, err)
	erased := 0
	for _, k := range all {
		if (k.KID == "k1" || k.KID == "k2") && len(k.Sealed) == 0 && k.RetiredAt.Equal(time.UnixMilli(1)) {
			erased++
		}
	}
	if erased != 2 || len(all) != 3 {
		t.Errorf("SigningKeys(zero) after withdrawing k1 and k2: %+v, want both listed with no sealed key", all)
	}
	// With the active key withdrawn, a new first key of its algorithm is no conflict.
	must(t, s.AddSigningKey(ctx, newKey("k3", "EdDSA", at(2*time.Hour)), false))
}

// --- secrets ---

func testSecretUnknown(t *testing.T, s store.Store) {
	_, err := s.Secret(t.Context(), "nope")
	wantNotFound(t, "Secret(unknown)", err)
}

func testPutSecretFirstWins(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.PutSecret(ctx, "pepper", []byte("first"))
	must(t, err)
	if string(got) != "first" {
		t.Errorf("first PutSecret returned %q, want %q", got, "first")
	}
	got, err = s.PutSecret(ctx, "pepper", []byte("second"))
	must(t, err)
	if string(got) != "first" {
		t.Errorf("second PutSecret returned %q, want the stored %q", got, "first")
	}
	got, err = s.Secret(ctx, "pepper")
	must(t, err)
	if string(got) != "first" {
		t.Errorf("Secret = %q, want %q", got, "first")
	}
	got, err = s.PutSecret(ctx, "other", []byte{0, 0xff})
	must(t, err)
	if !bytes.Equal(got, []byte{0, 0xff}) {
		t.Errorf("PutSecret(other name) returned %q", got)
	}
}

func testPutSecretConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 10
	got := make([][]byte, n)
	goroutines(n, func(i int) {
		v, err := s.PutSecret(ctx, "pepper", fmt.Appendf(nil, "value-%d", i))
		if err != nil {
			t.Errorf("PutSecret #%d: %v", i, err)
		}
		got[i] = v
	})
	stored, err := s.Secret(ctx, "pepper")
	must(t, err)
	for i, v := range got {
		if !bytes.Equal(v, stored) {
			t.Errorf("PutSecret #%d returned %q, but %q is stored", i, v, stored)
		}
	}
}

// --- sealed values ---

// sealedFixture stores one value of each kind and returns them as SealedValues lists them.
func sealedFixture(t *testing.T, s store.Store) []store.Sealed {
	ctx := t.Context()
	must(t, s.CreateTOTP(ctx, newPending("c1", "shop", "alice")))
	confirmed(t, s, "c2", "blog", "bob", 7)
	must(t, s.AddSigningKey(ctx, newKey("k1", "EdDSA", at(0)), false))
	must(t, s.AddSigningKey(ctx, newKey("k2", "EdDSA", at(time.Hour)), true)) // retired ones too
	_, err := s.PutSecret(ctx, "pepper", []byte("sealed-pepper"))
	must(t, err)
	return []store.Sealed{
		{Kind: "totp", ID: "c1", AppID: "shop", User: "alice", Blob: []byte("sealed-c1")},
		{Kind: "totp", ID: "c2", AppID: "blog", User: "bob", Blob: []byte("sealed-c2")},
		{Kind: "signing_key", ID: "k1", Blob: []byte("sealed-k1")},
		{Kind: "signing_key", ID: "k2", Blob: []byte("sealed-k2")},
		{Kind: "secret", ID: "pepper", Blob: []byte("sealed-pepper")},
	}
}

func sortSealed(v []store.Sealed) []store.Sealed {
	return slices.SortedFunc(slices.Values(v), func(a, b store.Sealed) int {
		if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

func diffSealed(got, want []store.Sealed) string {
	got, want = sortSealed(got), sortSealed(want)
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.Kind == w.Kind && g.ID == w.ID && g.AppID == w.AppID && g.User == w.User && bytes.Equal(g.Blob, w.Blob)
	}
	if !same {
		return fmt.Sprintf("got  %+v\nwant %+v", got, want)
	}
	return ""
}

func testSealedValues(t *testing.T, s store.Store) {
	empty, err := s.SealedValues(t.Context())
	must(t, err)
	if len(empty) != 0 {
		t.Errorf("SealedValues of an empty store = %+v", empty)
	}
	want := sealedFixture(t, s)
	got, err := s.SealedValues(t.Context())
	must(t, err)
	if d := diffSealed(got, want); d != "" {
		t.Error(d)
	}
}

// sealedNow reads one sealed value back through the ordinary accessor of its kind.
func sealedNow(t *testing.T, s store.Store, kind, id string) []byte {
	t.Helper()
	ctx := t.Context()
	switch kind {
	case "totp":
		c, err := s.TOTP(ctx, id)
		must(t, err)
		return c.Sealed
	case "signing_key":
		for _, k := range allKeys(t, s) {
			if k.KID == id {
				return k.Sealed
			}
		}
		t.Fatalf("no signing key %s", id)
	case "secret":
		v, err := s.Secret(ctx, id)
		must(t, err)
		return v
	}
	t.Fatalf("unknown kind %s", kind)
	return nil
}

func testReplaceSealed(t *testing.T, s store.Store) {
	ctx := t.Context()
	values := sealedFixture(t, s)
	for _, v := range values {
		name := v.Kind + "/" + v.ID
		resealed := append([]byte("resealed-"), v.Blob...)

		ok, err := s.ReplaceSealed(ctx, v.Kind, v.ID, []byte("stale"), resealed)
		must(t, err)
		if ok {
			t.Errorf("%s: ReplaceSealed with a stale old value succeeded", name)
		}
		if got := sealedNow(t, s, v.Kind, v.ID); !bytes.Equal(got, v.Blob) {
			t.Errorf("%s: refused ReplaceSealed changed the value to %q", name, got)
		}

		ok, err = s.ReplaceSealed(ctx, v.Kind, v.ID, v.Blob, resealed)
		must(t, err)
		if !ok {
			t.Errorf("%s: ReplaceSealed with the current value refused", name)
		}
		if got := sealedNow(t, s, v.Kind, v.ID); !bytes.Equal(got, resealed) {
			t.Errorf("%s: after ReplaceSealed the value is %q, want %q", name, got, resealed)
		}

		// The value it replaced is stale now.
		ok, err = s.ReplaceSealed(ctx, v.Kind, v.ID, v.Blob, []byte("third"))
		must(t, err)
		if ok {
			t.Errorf("%s: ReplaceSealed with the replaced value succeeded", name)
		}
	}

	// A kind names its table: an ID of another kind is unknown there.
	ok, err := s.ReplaceSealed(ctx, "secret", "k1", []byte("sealed-k1"), []byte("x"))
	must(t, err)
	if ok {
		t.Error("ReplaceSealed(secret, <signing key id>) succeeded")
	}
	ok, err = s.ReplaceSealed(ctx, "totp", "nope", []byte("x"), []byte("y"))
	must(t, err)
	if ok {
		t.Error("ReplaceSealed(unknown id) succeeded")
	}
}

func testReplaceSealedUnknownKind(t *testing.T, s store.Store) {
	sealedFixture(t, s)
	ok, err := s.ReplaceSealed(t.Context(), "apps", "shop", []byte("x"), []byte("y"))
	if err == nil || ok {
		t.Errorf("ReplaceSealed(unknown kind) = %v, %v; want an error", ok, err)
	}
}

func testReplaceSealedConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.PutSecret(ctx, "pepper", []byte("v0"))
	must(t, err)
	var mu sync.Mutex
	var wins []int
	goroutines(10, func(i int) {
		ok, err := s.ReplaceSealed(ctx, "secret", "pepper", []byte("v0"), fmt.Appendf(nil, "v1-%d", i))
		if err != nil {
			t.Errorf("ReplaceSealed #%d: %v", i, err)
		}
		if ok {
			mu.Lock()
			wins = append(wins, i)
			mu.Unlock()
		}
	})
	if len(wins) != 1 {
		t.Fatalf("%d of 10 concurrent ReplaceSealed of one value succeeded (%v), want exactly 1", len(wins), wins)
	}
	if got, want := sealedNow(t, s, "secret", "pepper"), fmt.Sprintf("v1-%d", wins[0]); string(got) != want {
		t.Errorf("stored %q, want the winner's %q", got, want)
	}
}

// --- sweep ---

func sweep(t *testing.T, s store.Store, now time.Time) store.Swept {
	t.Helper()
	n, err := s.Sweep(t.Context(), now)
	must(t, err)
	return n
}

func testSweep(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	ticket := func(hash string, expires time.Time) store.Ticket {
		tk := newTicket(hash)
		tk.ExpiresAt = expires
		return tk
	}
	pending := func(id string, expires time.Time) store.TOTPCredential {
		c := newPending(id, "shop", "alice")
		c.ExpiresAt = expires
		return c
	}
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	for _, tk := range []store.Ticket{
		ticket("expired", now.Add(-time.Millisecond)),
		ticket("live", now.Add(time.Millisecond)),
		ticket("elevated-live", now.Add(time.Minute)),
	} {
		must(t, s.CreateTicket(ctx, tk))
	}
	must(t, s.ElevateTicket(ctx, []byte("elevated-live"), at(0), "otp"))
	for _, c := range []store.TOTPCredential{
		pending("pending-expired", now.Add(-time.Millisecond)),
		pending("pending-live", now.Add(time.Minute)),
		pending("confirmed", at(10*time.Minute)), // its enrollment window passed long ago
	} {
		must(t, s.CreateTOTP(ctx, c))
	}
	must(t, confirm(s, ctx, "confirmed", 5, at(time.Minute), hashes("code", 2)))
	must(t, s.AddSigningKey(ctx, newKey("k1", "EdDSA", at(0)), false))
	must(t, s.AddSigningKey(ctx, newKey("k2", "EdDSA", at(time.Minute)), true))
	_, err := s.PutSecret(ctx, "pepper", []byte("x"))
	must(t, err)

	if got, want := sweep(t, s, now), (store.Swept{Tickets: 1, Enrollments: 1}); got != want {
		t.Errorf("Sweep removed %+v, want %+v", got, want)
	}

	for _, tc := range []struct {
		hash string
		kept bool
	}{{"expired", false}, {"live", true}, {"elevated-live", true}} {
		_, err := s.Ticket(ctx, []byte(tc.hash))
		if tc.kept && err != nil {
			t.Errorf("ticket %s: %v after Sweep, want kept", tc.hash, err)
		}
		if !tc.kept {
			wantNotFound(t, "ticket "+tc.hash+" after Sweep", err)
		}
	}
	for _, tc := range []struct {
		id   string
		kept bool
	}{{"pending-expired", false}, {"pending-live", true}, {"confirmed", true}} {
		_, err := s.TOTP(ctx, tc.id)
		if tc.kept && err != nil {
			t.Errorf("TOTP %s: %v after Sweep, want kept", tc.id, err)
		}
		if !tc.kept {
			wantNotFound(t, "TOTP "+tc.id+" after Sweep", err)
		}
	}
	if _, err := s.App(ctx, "shop"); err != nil {
		t.Errorf("app after Sweep: %v", err)
	}
	if n := codesLeft(t, s, "shop", "alice"); n != 2 {
		t.Errorf("RecoveryCodesLeft after Sweep = %d, want 2", n)
	}
	if keys := allKeys(t, s); len(keys) != 2 {
		t.Errorf("%d signing keys after Sweep, want 2", len(keys))
	}
	if _, err := s.Secret(ctx, "pepper"); err != nil {
		t.Errorf("secret after Sweep: %v", err)
	}
	// Sweeping again, or an empty store, is fine.
	if got := sweep(t, s, now); got != (store.Swept{}) {
		t.Errorf("Sweep again removed %+v, want nothing", got)
	}
	sweep(t, s, at(1000*time.Hour))
	if _, err := s.TOTP(ctx, "confirmed"); err != nil {
		t.Errorf("confirmed credential after a far-future Sweep: %v", err)
	}
}

func testEndElevations(t *testing.T, s store.Store) {
	ctx := t.Context()
	tickets := map[string]store.Ticket{}
	for _, tc := range []struct{ hash, app, user string }{
		{"own", "shop", "alice"}, {"thief", "shop", "alice"}, {"plain", "shop", "alice"},
		{"bob", "shop", "bob"}, {"blog", "blog", "alice"},
	} {
		tk := newTicket(tc.hash)
		tk.AppID, tk.User = tc.app, tc.user
		if tc.hash != "plain" {
			tk.ElevatedAt = at(time.Second)
		}
		must(t, s.CreateTicket(ctx, tk))
		tickets[tc.hash] = tk
	}
	must(t, s.Atomically(ctx, func(tx store.Tx) error {
		return tx.EndElevations(ctx, "shop", "alice", []byte("own"))
	}))
	for hash, elevated := range map[string]bool{"own": true, "thief": false, "plain": false, "bob": true, "blog": true} {
		got, err := s.Ticket(ctx, []byte(hash))
		must(t, err)
		if !got.ElevatedAt.IsZero() != elevated {
			t.Errorf("ticket %s: elevated at %v, want elevated %v", hash, got.ElevatedAt, elevated)
		}
	}
	// Without a ticket of its own (an app's call), every one of the user's ends.
	must(t, s.Atomically(ctx, func(tx store.Tx) error { return tx.EndElevations(ctx, "shop", "alice", nil) }))
	if got, err := s.Ticket(ctx, []byte("own")); err != nil || !got.ElevatedAt.IsZero() {
		t.Errorf("own ticket after EndElevations(nil): %+v, %v", got, err)
	}
	// A reset removes the user's tickets, and nobody else's.
	_, err := s.ResetUserFactors(ctx, "shop", "alice")
	must(t, err)
	for hash, kept := range map[string]bool{"own": false, "thief": false, "bob": true, "blog": true} {
		_, err := s.Ticket(ctx, []byte(hash))
		if kept {
			must(t, err)
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ticket %s after the user's reset: %v, want not found", hash, err)
		}
	}
}
