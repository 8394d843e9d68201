package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// The audit trail, webhook outbox, admin apps and support reset join the contract here,
// in their own file, so the suite's table stays one list.
func init() { tests = append(tests, auditTests...) }

var auditTests = []contractCase{
	{"AppendAudit_EachRecordChainedToThePrevious", testAuditChain},
	{"AppendAudit_Concurrently_OneLinearChain", testAuditConcurrently},
	{"QueueAudit_ChainedInQueueOrderByTheNextReadOrAppend", testQueueAuditOrder},
	{"QueueAudit_WithAppendsAndReadsConcurrently_OneLinearChainNothingTwice", testQueueAuditConcurrently},
	{"QueueAudit_Notify_DeliveryClaimableOnceChained", testQueueAuditNotify},
	{"AuditRecords_FiltersByAppUserSinceAfterIDAndNewest", testAuditFilter},
	{"AppendAudit_Notify_QueuesOnlyForAppsWithAWebhook", testAuditNotify},
	{"ClaimDeliveries_Concurrently_EachDeliveryClaimedOnce", testClaimConcurrently},
	{"ClaimDeliveries_LeaseNextAndDone_DecideWhenDueAgain", testClaimLifecycle},
	{"DeliveryFailed_ReportedAfterTheLease_ChangesNothing", testStaleFailureReport},
	{"Sweep_FinishedDeliveryAfterTheRetention_Removed_UnfinishedNever", testSweepDeliveries},
	{"PutWebhook_RoundTripsAndReplaces", testWebhookRoundTrip},
	{"PutWebhook_UnknownApp_Error", testWebhookUnknownApp},
	{"SetAdminApp_MarksOnlyThatAppAndIsIdempotent", testAdminApps},
	{"SetAdminApp_Scope_LimitsWhomItResetsOnlyOnceScoped", testAdminScopes},
	{"SetAdminApp_ScopeNamingNoApp_FailsWholeLeavingNoAdmin", testAdminScopeUnknownApp},
	{"ResetUserFactors_RemovesOnlyThatUsersFactors", testResetUserFactors},
	{"FirstFactorAllowance_GoodUntilItsTime_TakenOnce_ThatUsersOnly", testFirstFactorAllowance},
	{"SealedValues_ListsWebhookSecrets_ReplaceSealedReseals", testWebhookSealed},
}

func auditRecord(kind, appID, user string, at time.Time) store.AuditRecord {
	return store.AuditRecord{At: at, Kind: kind, AppID: appID, User: user, Factor: "totp_x", IP: "192.0.2.1", UserAgent: "test/1", Outcome: "ok", Detail: "d"}
}

func appendAudit(t *testing.T, s store.Store, r store.AuditRecord, notify bool) store.AuditRecord {
	t.Helper()
	got, err := s.AppendAudit(t.Context(), r, notify)
	must(t, err)
	return got
}

func allAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	must(t, s.AuditRecords(t.Context(), f, func(r store.AuditRecord) error {
		out = append(out, r)
		return nil
	}))
	return out
}

// checkChain fails unless records are 1..n, each holding its own digest and the hash of
// the one before.
func checkChain(t *testing.T, records []store.AuditRecord, n int) {
	t.Helper()
	if len(records) != n {
		t.Fatalf("%d records, want %d", len(records), n)
	}
	var prev []byte
	for i, r := range records {
		if r.ID != int64(i+1) {
			t.Errorf("record #%d has ID %d, want %d", i, r.ID, i+1)
		}
		if !bytes.Equal(r.PrevHash, prev) {
			t.Errorf("record %d: PrevHash %x, want the previous record's hash %x", r.ID, r.PrevHash, prev)
		}
		if !bytes.Equal(r.Hash, r.Digest()) {
			t.Errorf("record %d: Hash is not its Digest", r.ID)
		}
		prev = r.Hash
	}
}

func testAuditChain(t *testing.T, s store.Store) {
	var appended []store.AuditRecord
	for i, kind := range []string{"verified", "failed", "admin_reset"} {
		r := auditRecord(kind, "shop", "alice", at(time.Duration(i)*time.Second+123*time.Microsecond))
		got := appendAudit(t, s, r, false)
		if !got.At.Equal(r.At.Truncate(time.Millisecond)) {
			t.Errorf("appended At = %v, want %v at millisecond precision", got.At, r.At)
		}
		appended = append(appended, got)
	}
	records := allAudit(t, s, store.AuditFilter{})
	checkChain(t, records, 3)
	for i, got := range records {
		want := appended[i]
		if got.ID != want.ID || !got.At.Equal(want.At) || got.Kind != want.Kind || got.AppID != want.AppID ||
			got.User != want.User || got.Factor != want.Factor || got.IP != want.IP || got.UserAgent != want.UserAgent ||
			got.Outcome != want.Outcome || got.Detail != want.Detail || !bytes.Equal(got.Hash, want.Hash) {
			t.Errorf("stored %+v\nappended %+v", got, want)
		}
	}
	// Every field is covered by the digest.
	base := records[1]
	for name, edit := range map[string]func(*store.AuditRecord){
		"id":         func(r *store.AuditRecord) { r.ID++ },
		"at":         func(r *store.AuditRecord) { r.At = r.At.Add(time.Millisecond) },
		"kind":       func(r *store.AuditRecord) { r.Kind = "verified" },
		"app":        func(r *store.AuditRecord) { r.AppID = "blog" },
		"user":       func(r *store.AuditRecord) { r.User = "bob" },
		"factor":     func(r *store.AuditRecord) { r.Factor = "" },
		"ip":         func(r *store.AuditRecord) { r.IP = "192.0.2.2" },
		"user_agent": func(r *store.AuditRecord) { r.UserAgent = "" },
		"outcome":    func(r *store.AuditRecord) { r.Outcome = "refused" },
		"detail":     func(r *store.AuditRecord) { r.Detail = "" },
		"prev_hash":  func(r *store.AuditRecord) { r.PrevHash = nil },
		// Length prefixes keep a byte moved across a field boundary from hashing the same.
		"boundary": func(r *store.AuditRecord) { r.Kind, r.AppID = r.Kind+"s", r.AppID[1:] },
	} {
		r := base
		edit(&r)
		if bytes.Equal(r.Digest(), base.Hash) {
			t.Errorf("changing %s leaves the digest unchanged", name)
		}
	}
}

func testAuditConcurrently(t *testing.T, s store.Store) {
	const n = 30
	goroutines(n, func(i int) {
		if _, err := s.AppendAudit(t.Context(), auditRecord("failed", "shop", fmt.Sprint("u", i), at(0)), false); err != nil {
			t.Errorf("AppendAudit #%d: %v", i, err)
		}
	})
	checkChain(t, allAudit(t, s, store.AuditFilter{}), n)
}

func queueAudit(t *testing.T, s store.Store, r store.AuditRecord, notify bool) {
	t.Helper()
	must(t, s.QueueAudit(t.Context(), r, notify))
}

func testQueueAuditOrder(t *testing.T, s store.Store) {
	for i := range 3 {
		r := auditRecord("failed", "shop", "alice", at(time.Duration(i)*time.Second))
		r.Detail = fmt.Sprint("queued ", i)
		queueAudit(t, s, r, false)
	}
	got := allAudit(t, s, store.AuditFilter{})
	checkChain(t, got, 3)
	for i, r := range got {
		if want := fmt.Sprint("queued ", i); r.Detail != want || !r.At.Equal(at(time.Duration(i)*time.Second)) {
			t.Errorf("record %d: %q at %v, want %q at %v", r.ID, r.Detail, r.At, want, at(time.Duration(i)*time.Second))
		}
	}
	queueAudit(t, s, auditRecord("failed", "shop", "alice", at(0)), false)
	appended := appendAudit(t, s, auditRecord("admin_reset", "shop", "alice", at(0)), false)
	if appended.ID != 5 {
		t.Errorf("an append after a queued record got ID %d, want 5: the queued one is chained first", appended.ID)
	}
	checkChain(t, allAudit(t, s, store.AuditFilter{}), 5)
}

func testQueueAuditConcurrently(t *testing.T, s store.Store) {
	const queuers, appenders, each = 4, 2, 25
	goroutines(queuers+appenders+2, func(i int) {
		for j := range each {
			r := auditRecord("failed", "shop", "alice", at(0))
			r.Detail = fmt.Sprint(i, "/", j)
			var err error
			switch {
			case i < queuers:
				err = s.QueueAudit(t.Context(), r, false)
			case i < queuers+appenders:
				_, err = s.AppendAudit(t.Context(), r, false)
			default: // readers chain what is queued while the others write
				err = s.AuditRecords(t.Context(), store.AuditFilter{Newest: 1}, func(store.AuditRecord) error { return nil })
			}
			if err != nil {
				t.Errorf("goroutine %d: %v", i, err)
				return
			}
		}
	})
	got := allAudit(t, s, store.AuditFilter{})
	checkChain(t, got, (queuers+appenders)*each)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.Detail] {
			t.Errorf("record %q chained twice", r.Detail)
		}
		seen[r.Detail] = true
	}
}

func testQueueAuditNotify(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	must(t, s.PutWebhook(ctx, newWebhook("shop")))
	queueAudit(t, s, auditRecord("verified", "shop", "alice", at(0)), false)
	queueAudit(t, s, auditRecord("locked", "shop", "alice", at(0)), true)
	got := claim(t, s, at(time.Second), 10)
	if len(got) != 1 || got[0].Record.ID != 2 || got[0].Record.Kind != "locked" || !bytes.Equal(got[0].Record.Hash, got[0].Record.Digest()) {
		t.Fatalf("claimed %+v, want one delivery of chained record 2 (locked)", got)
	}
}

func testAuditFilter(t *testing.T, s store.Store) {
	for i, r := range []store.AuditRecord{
		auditRecord("verified", "shop", "alice", at(0)),
		auditRecord("verified", "shop", "bob", at(time.Minute)),
		auditRecord("verified", "blog", "alice", at(2*time.Minute)),
		auditRecord("failed", "shop", "alice", at(3*time.Minute)),
	} {
		if got := appendAudit(t, s, r, false); got.ID != int64(i+1) {
			t.Fatalf("record %d got ID %d", i+1, got.ID)
		}
	}
	for _, tc := range []struct {
		name   string
		filter store.AuditFilter
		want   []int64
	}{
		{"everything", store.AuditFilter{}, []int64{1, 2, 3, 4}},
		{"app", store.AuditFilter{AppID: "shop"}, []int64{1, 2, 4}},
		{"user", store.AuditFilter{User: "alice"}, []int64{1, 3, 4}},
		{"app and user", store.AuditFilter{AppID: "shop", User: "alice"}, []int64{1, 4}},
		{"since is inclusive", store.AuditFilter{Since: at(time.Minute)}, []int64{2, 3, 4}},
		{"after id", store.AuditFilter{AfterID: 2}, []int64{3, 4}},
		{"newest two, newest first", store.AuditFilter{Newest: 2}, []int64{4, 3}},
		{"newest of a user", store.AuditFilter{User: "alice", Newest: 2}, []int64{4, 3}},
		{"no match", store.AuditFilter{User: "carol"}, nil},
	} {
		var got []int64
		for _, r := range allAudit(t, s, tc.filter) {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: IDs %v, want %v", tc.name, got, tc.want)
		}
	}
	// fn's error stops the walk and is returned as is.
	stop := errors.New("stop")
	calls := 0
	err := s.AuditRecords(t.Context(), store.AuditFilter{}, func(store.AuditRecord) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("AuditRecords with a failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
}

func newWebhook(appID string) store.Webhook {
	return store.Webhook{AppID: appID, URL: "https://" + appID + ".example/hooks/twofold", Sealed: []byte("sealed-whsec-" + appID), CreatedAt: at(0)}
}

func claim(t *testing.T, s store.Store, now time.Time, max int) []store.Delivery {
	t.Helper()
	d, err := s.ClaimDeliveries(t.Context(), now, time.Minute, max)
	must(t, err)
	return d
}

func testAuditNotify(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	must(t, s.CreateApp(ctx, newApp("blog", "https://blog.example")))
	must(t, s.PutWebhook(ctx, newWebhook("shop")))

	appendAudit(t, s, auditRecord("verified", "shop", "alice", at(0)), false)    // not notified
	appendAudit(t, s, auditRecord("factor_removed", "blog", "bob", at(0)), true) // no webhook
	want := appendAudit(t, s, auditRecord("admin_reset", "shop", "alice", at(0)), true)

	got := claim(t, s, at(time.Second), 10)
	if len(got) != 1 {
		t.Fatalf("claimed %d deliveries, want 1: %+v", len(got), got)
	}
	d := got[0]
	if d.Attempts != 1 || d.Webhook.AppID != "shop" || d.Webhook.URL != newWebhook("shop").URL || !bytes.Equal(d.Webhook.Sealed, newWebhook("shop").Sealed) {
		t.Errorf("delivery %+v, want shop's webhook at attempt 1", d)
	}
	if d.Record.ID != want.ID || d.Record.Kind != "admin_reset" || !bytes.Equal(d.Record.Hash, want.Hash) {
		t.Errorf("delivery record %+v, want %+v", d.Record, want)
	}
	// Due from the event's own time, not before.
	appendAudit(t, s, auditRecord("locked", "shop", "alice", at(time.Hour)), true)
	if got := claim(t, s, at(time.Minute), 10); len(got) != 0 {
		t.Errorf("a delivery of an event at 1h was claimed at 1m: %+v", got)
	}
}

func testClaimConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	must(t, s.PutWebhook(ctx, newWebhook("shop")))
	const n = 12
	for i := range n {
		appendAudit(t, s, auditRecord("locked", "shop", fmt.Sprint("u", i), at(0)), true)
	}
	var mu sync.Mutex
	claimed := map[int64]int{}
	goroutines(8, func(i int) {
		d, err := s.ClaimDeliveries(ctx, at(time.Second), time.Minute, 3)
		if err != nil {
			t.Errorf("ClaimDeliveries #%d: %v", i, err)
		}
		mu.Lock()
		for _, x := range d {
			claimed[x.ID]++
		}
		mu.Unlock()
	})
	// Whatever the racing claims left is claimable now; nothing more.
	for _, x := range claim(t, s, at(time.Second), n) {
		claimed[x.ID]++
	}
	if len(claimed) != n {
		t.Errorf("%d distinct deliveries claimed, want %d", len(claimed), n)
	}
	for id, times := range claimed {
		if times != 1 {
			t.Errorf("delivery %d claimed %d times within its lease", id, times)
		}
	}
}

func testClaimLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	must(t, s.PutWebhook(ctx, newWebhook("shop")))
	for range 3 {
		appendAudit(t, s, auditRecord("factor_added", "shop", "alice", at(0)), true)
	}
	first := claim(t, s, at(0), 10)
	if len(first) != 3 {
		t.Fatalf("claimed %d, want 3", len(first))
	}
	done, failed, gaveUp := first[0].ID, first[1].ID, first[2].ID
	must(t, s.DeliveryDone(ctx, done, at(time.Second)))
	must(t, s.DeliveryFailed(ctx, failed, 1, at(10*time.Minute), "503 Service Unavailable", false))
	// gaveUp is left claimed: it is due again once the lease (1 minute) runs out.

	ids := func(d []store.Delivery) []int64 {
		var out []int64
		for _, x := range d {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tc := range []struct {
		now  time.Time
		want []int64
	}{
		{at(30 * time.Second), nil},             // all done, backing off or leased
		{at(61 * time.Second), []int64{gaveUp}}, // the lease ran out
	} {
		if got := ids(claim(t, s, tc.now, 10)); !slices.Equal(got, tc.want) {
			t.Errorf("claim at %v: %v, want %v", tc.now.Sub(t0), got, tc.want)
		}
	}
	must(t, s.DeliveryFailed(ctx, gaveUp, 2, at(2*time.Minute), "too many attempts", true))
	got := claim(t, s, at(time.Hour), 10)
	if !slices.Equal(ids(got), []int64{failed}) {
		t.Fatalf("claim at 1h: %v, want only the retried %d", ids(got), failed)
	}
	if got[0].Attempts != 2 {
		t.Errorf("retried delivery at attempt %d, want 2", got[0].Attempts)
	}
}

// A sender whose lease ran out while it sent reports its failure late: by then another
// instance holds the claim, or has delivered. The report changes nothing, or a third
// instance would send the event while the second still does, or after it delivered.
func testStaleFailureReport(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	must(t, s.PutWebhook(ctx, newWebhook("shop")))
	appendAudit(t, s, auditRecord("factor_added", "shop", "alice", at(0)), true)
	a := claim(t, s, at(0), 1)
	b := claim(t, s, at(10*time.Minute), 1) // a's lease of a minute ran out
	if len(a) != 1 || len(b) != 1 || b[0].ID != a[0].ID || b[0].Attempts != 2 {
		t.Fatalf("claims %+v then %+v, want one delivery claimed again at attempt 2", a, b)
	}
	must(t, s.DeliveryFailed(ctx, a[0].ID, a[0].Attempts, at(10*time.Minute), "context deadline exceeded", false))
	if c := claim(t, s, at(10*time.Minute+2*time.Second), 1); len(c) != 0 {
		t.Errorf("after the first sender's late report a third claimed the delivery the second holds: %+v", c)
	}
	must(t, s.DeliveryDone(ctx, b[0].ID, at(10*time.Minute+5*time.Second)))
	must(t, s.DeliveryFailed(ctx, a[0].ID, a[0].Attempts, at(11*time.Minute), "context deadline exceeded", false))
	if c := claim(t, s, at(2*time.Hour), 1); len(c) != 0 {
		t.Errorf("a late failure report brought back a delivered event: %+v", c)
	}
}

// A delivery is finished once sent or given up; one still due, backing off or claimed is
// kept however old, or its event would never be told.
func testSweepDeliveries(t *testing.T, s store.Store) {
	ctx := t.Context()
	keep := store.DeliveryRetention
	now := at(4 * keep)
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	must(t, s.PutWebhook(ctx, newWebhook("shop")))
	var events []int64
	for range 7 {
		events = append(events, appendAudit(t, s, auditRecord("factor_added", "shop", "alice", at(0)), true).ID)
	}
	claimed := claim(t, s, at(0), 6) // the seventh event's delivery is never claimed
	if len(claimed) != 6 {
		t.Fatalf("claimed %d, want 6", len(claimed))
	}
	sentOld, gaveUpOld, sentRecent, gaveUpRecent, retrying := claimed[0].ID, claimed[1].ID, claimed[2].ID, claimed[3].ID, claimed[4].ID
	must(t, s.DeliveryDone(ctx, sentOld, at(time.Second)))
	must(t, s.DeliveryFailed(ctx, gaveUpOld, 1, at(time.Second), "410 Gone", true))
	must(t, s.DeliveryDone(ctx, sentRecent, now.Add(-keep+time.Minute)))
	must(t, s.DeliveryFailed(ctx, gaveUpRecent, 1, now.Add(-time.Hour), "410 Gone", true))
	must(t, s.DeliveryFailed(ctx, retrying, 1, at(10*time.Minute), "503 Service Unavailable", false))
	// claimed[5] stays claimed, as by a deliverer that died: due again once the lease runs
	// out.

	if n := sweep(t, s, now).Deliveries; n != 2 {
		t.Errorf("Sweep removed %d deliveries, want the 2 finished more than the retention ago", n)
	}
	if n := sweep(t, s, now).Deliveries; n != 0 {
		t.Errorf("Sweep again removed %d deliveries, want none: the recently finished are kept", n)
	}
	// The events whose deliveries are claimable, in order.
	unfinished := func(now time.Time) []int64 {
		var out []int64
		for _, d := range claim(t, s, now, 10) {
			out = append(out, d.Record.ID)
		}
		slices.Sort(out)
		return out
	}
	want := []int64{claimed[4].Record.ID, claimed[5].Record.ID, events[6]} // retrying, leased, never claimed
	slices.Sort(want)
	if got := unfinished(now); !slices.Equal(got, want) {
		t.Errorf("events claimable after Sweep: %v, want the retrying, the leased and the never claimed %v", got, want)
	}
	// Once the recently finished are older than the retention they go too, and the
	// unfinished (now claimed again) still stay.
	if n := sweep(t, s, now.Add(keep)).Deliveries; n != 2 {
		t.Errorf("Sweep a retention later removed %d deliveries, want the 2 finished since", n)
	}
	if got := unfinished(now.Add(keep)); !slices.Equal(got, want) {
		t.Errorf("events claimable after the later Sweep: %v, want %v", got, want)
	}
}

func testWebhookRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	_, err := s.Webhook(ctx, "shop")
	wantNotFound(t, "Webhook before PutWebhook", err)
	for _, w := range []store.Webhook{
		newWebhook("shop"),
		{AppID: "shop", URL: "https://other.example/h", Sealed: []byte("sealed-2"), CreatedAt: at(time.Hour)},
	} {
		must(t, s.PutWebhook(ctx, w))
		got, err := s.Webhook(ctx, "shop")
		must(t, err)
		if got.AppID != w.AppID || got.URL != w.URL || !bytes.Equal(got.Sealed, w.Sealed) || !got.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("Webhook = %+v, want %+v", got, w)
		}
	}
}

func testWebhookUnknownApp(t *testing.T, s store.Store) {
	if err := s.PutWebhook(t.Context(), newWebhook("nope")); err == nil {
		t.Error("PutWebhook for an unknown app succeeded")
	}
}

func testAdminApps(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("ops", "https://ops.example")))
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	must(t, s.SetAdminApp(ctx, "ops"))
	must(t, s.SetAdminApp(ctx, "ops"))
	wantNotFound(t, "SetAdminApp(unknown)", s.SetAdminApp(ctx, "nope"))
	for app, want := range map[string]bool{"ops": true, "shop": false, "nope": false} {
		got, err := s.IsAdminApp(ctx, app)
		must(t, err)
		if got != want {
			t.Errorf("IsAdminApp(%s) = %v, want %v", app, got, want)
		}
	}
}

func testAdminScopes(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"ops", "help", "shop", "blog", "wiki"} {
		must(t, s.CreateApp(ctx, newApp(id, "https://"+id+".example")))
	}
	must(t, s.SetAdminApp(ctx, "ops"))
	must(t, s.SetAdminApp(ctx, "help", "shop"))
	must(t, s.SetAdminApp(ctx, "help", "blog", "blog")) // adds to the scope; idempotent
	wantNotFound(t, "SetAdminApp(unknown app in scope)", s.SetAdminApp(ctx, "help", "nope"))
	for _, tc := range []struct {
		admin, app string
		want       bool
	}{
		{"ops", "shop", true}, {"ops", "wiki", true}, // never scoped: every app
		{"help", "shop", true}, {"help", "blog", true}, {"help", "wiki", false}, {"help", "ops", false},
	} {
		got, err := s.AdminMayReset(ctx, tc.admin, tc.app)
		must(t, err)
		if got != tc.want {
			t.Errorf("AdminMayReset(%s, %s) = %v, want %v", tc.admin, tc.app, got, tc.want)
		}
	}
}

// The scope comes in the call that makes the admin, in one transaction: were the mark to
// stay after a scope failed, the app could reset the users of every ordinary app.
func testAdminScopeUnknownApp(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"help", "shop", "wiki"} {
		must(t, s.CreateApp(ctx, newApp(id, "https://"+id+".example")))
	}
	wantNotFound(t, "SetAdminApp(help, shop, nope)", s.SetAdminApp(ctx, "help", "shop", "nope"))
	admin, err := s.IsAdminApp(ctx, "help")
	must(t, err)
	if admin {
		t.Fatal("help is an admin app after SetAdminApp failed")
	}
	// Nor did the scope that came before the unknown app stay: marked now without a
	// scope, help may reset every ordinary app's users.
	must(t, s.SetAdminApp(ctx, "help"))
	for _, app := range []string{"shop", "wiki"} {
		may, err := s.AdminMayReset(ctx, "help", app)
		must(t, err)
		if !may {
			t.Errorf("AdminMayReset(help, %s) = false: a scope of the failed call stayed", app)
		}
	}
}

func testResetUserFactors(t *testing.T, s store.Store) {
	ctx := t.Context()
	withCodes(t, s, "shop", "alice", hashes("a", 4))
	confirmed(t, s, "alice-2", "shop", "alice", 5)
	must(t, s.CreateTOTP(ctx, newPending("alice-pending", "shop", "alice")))
	if !consume(t, s, "shop", "alice", hashes("a", 4)[0]) {
		t.Fatal("could not use one of alice's codes")
	}
	withCodes(t, s, "shop", "bob", hashes("b", 3))
	withCodes(t, s, "blog", "alice", hashes("c", 2))

	got, err := s.ResetUserFactors(ctx, "shop", "alice")
	must(t, err)
	if want := (store.FactorsRemoved{TOTP: 2, RecoveryCodes: 3}); got != want {
		t.Errorf("ResetUserFactors = %+v, want %+v (confirmed credentials, unused codes)", got, want)
	}
	if creds, err := s.TOTPsOfUser(ctx, "shop", "alice"); err != nil || len(creds) != 0 {
		t.Errorf("alice still has %d credentials (%v)", len(creds), err)
	}
	_, err = s.TOTP(ctx, "alice-pending")
	wantNotFound(t, "pending enrollment after reset", err)
	if n := codesLeft(t, s, "shop", "alice"); n != 0 {
		t.Errorf("alice has %d recovery codes left", n)
	}
	// Others keep theirs.
	if n := codesLeft(t, s, "shop", "bob"); n != 3 {
		t.Errorf("bob has %d codes, want 3", n)
	}
	if n := codesLeft(t, s, "blog", "alice"); n != 2 {
		t.Errorf("alice on blog has %d codes, want 2", n)
	}
	if creds, _ := s.TOTPsOfUser(ctx, "blog", "alice"); len(creds) != 1 {
		t.Errorf("alice on blog has %d credentials, want 1", len(creds))
	}
	// Nothing left: a second reset removes nothing and is no error.
	again, err := s.ResetUserFactors(ctx, "shop", "alice")
	must(t, err)
	if again != (store.FactorsRemoved{}) {
		t.Errorf("second reset removed %+v", again)
	}
}

func testFirstFactorAllowance(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	allowed := func(app, user string, at time.Time) bool {
		t.Helper()
		ok, err := s.FirstFactorAllowed(ctx, app, user, at)
		must(t, err)
		return ok
	}
	take := func(app, user string, at time.Time) bool {
		t.Helper()
		ok, err := s.TakeFirstFactorAllowance(ctx, app, user, at)
		must(t, err)
		return ok
	}
	if allowed("ops", "root", now) || take("ops", "root", now) {
		t.Fatal("an allowance nobody gave")
	}
	must(t, s.AllowFirstFactor(ctx, "ops", "root", now.Add(time.Hour)))
	must(t, s.AllowFirstFactor(ctx, "ops", "Root", now.Add(-time.Second))) // gone already
	if !allowed("ops", "root", now.Add(59*time.Minute)) || allowed("ops", "root", now.Add(time.Hour)) {
		t.Error("the allowance is not good until its time and no longer")
	}
	if allowed("ops", "Root", now) || allowed("ops", "root ", now) || allowed("help", "root", now) {
		t.Error("an allowance counted for another user or app")
	}
	if take("ops", "root", now.Add(time.Hour)) {
		t.Error("an allowance taken at its end")
	}
	if !take("ops", "root", now) || take("ops", "root", now) || allowed("ops", "root", now) {
		t.Error("the allowance is not taken exactly once")
	}
	// Given again, it is good again, until the new time.
	must(t, s.AllowFirstFactor(ctx, "ops", "root", now.Add(time.Minute)))
	must(t, s.AllowFirstFactor(ctx, "ops", "root", now.Add(2*time.Minute)))
	if !allowed("ops", "root", now.Add(90*time.Second)) {
		t.Error("a second allowance did not replace the first")
	}
	if n, err := s.Sweep(ctx, now.Add(3*time.Minute)); err != nil || n.Allowances != 2 {
		t.Fatalf("sweep: %+v %v, want the two allowances past their time (root's and Root's)", n, err)
	}
	if allowed("ops", "root", now) {
		t.Error("the sweep left an allowance past its time")
	}
}

func testWebhookSealed(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateApp(ctx, newApp("shop", "https://shop.example")))
	w := newWebhook("shop")
	must(t, s.PutWebhook(ctx, w))
	values, err := s.SealedValues(ctx)
	must(t, err)
	if d := diffSealed(values, []store.Sealed{{Kind: "webhook", ID: "shop", Blob: w.Sealed}}); d != "" {
		t.Error(d)
	}
	ok, err := s.ReplaceSealed(ctx, "webhook", "shop", w.Sealed, []byte("resealed"))
	must(t, err)
	got, err := s.Webhook(ctx, "shop")
	must(t, err)
	if !ok || string(got.Sealed) != "resealed" {
		t.Errorf("ReplaceSealed(webhook) = %v, stored %q", ok, got.Sealed)
	}
	if aad := string((store.Sealed{Kind: "webhook", ID: "shop"}).AAD()); aad != "webhook:shop" {
		t.Errorf("webhook AAD = %q", aad)
	}
}
