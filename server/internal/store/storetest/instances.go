package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

func init() {
	tests = append(tests,
		contractCase{"Instances_PutRefreshListSinceDelete", testInstances},
		contractCase{"Sweep_InstanceNotSeenForTheRetention_Removed_ItsNextPutRecreatesIt", testSweepInstances})
}

func testInstances(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := store.Instance{ID: "a", Host: "web-1", KeyIDs: []string{"0102", "0304"}, Follows: "", SeenAt: at(time.Minute)}
	b := store.Instance{ID: "b", Host: "web-2", KeyIDs: []string{"0102"}, Follows: "file web-2:/var/lib/twofold/master.key", Budgets: "redis twofold:", SeenAt: at(0)}
	must(t, s.PutInstance(ctx, a))
	must(t, s.PutInstance(ctx, b))
	got, err := s.Instances(ctx, at(30*time.Second))
	must(t, err)
	if len(got) != 1 || got[0].ID != "a" || got[0].Host != "web-1" || !slices.Equal(got[0].KeyIDs, a.KeyIDs) || !got[0].SeenAt.Equal(a.SeenAt) {
		t.Fatalf("instances seen since 30 s: %+v, want only a as put", got)
	}
	// b says it holds a new key now: the row is refreshed, not added.
	b.KeyIDs, b.SeenAt = []string{"0506", "0102"}, at(2*time.Minute)
	must(t, s.PutInstance(ctx, b))
	got, err = s.Instances(ctx, at(0))
	must(t, err)
	if len(got) != 2 || got[1].ID != "b" || !slices.Equal(got[1].KeyIDs, b.KeyIDs) || got[1].Follows != b.Follows || got[1].Budgets != b.Budgets {
		t.Fatalf("after b's refresh: %+v", got)
	}
	must(t, s.DeleteInstance(ctx, "a"))
	got, err = s.Instances(ctx, at(0))
	must(t, err)
	if len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("after a stopped: %+v, want b alone", got)
	}
}

func testSweepInstances(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(10 * store.InstanceRetention)
	instance := func(id string, seen time.Time) store.Instance {
		return store.Instance{ID: id, Host: "web-" + id, KeyIDs: []string{"0102"}, SeenAt: seen}
	}
	crashed := instance("crashed", now.Add(-store.InstanceRetention-time.Millisecond))
	for _, in := range []store.Instance{
		crashed,
		instance("long-crashed", at(0)),
		instance("quiet", now.Add(-store.InstanceRetention+time.Minute)), // silent for nearly the retention
		instance("live", now.Add(-20*time.Second)),
	} {
		must(t, s.PutInstance(ctx, in))
	}
	if n := sweep(t, s, now).Instances; n != 2 {
		t.Errorf("Sweep removed %d instances, want the 2 not seen for the retention", n)
	}
	ids := func(since time.Time) []string {
		got, err := s.Instances(ctx, since)
		must(t, err)
		var out []string
		for _, in := range got {
			out = append(out, in.ID)
		}
		return out
	}
	if got := ids(time.Time{}); !slices.Equal(got, []string{"live", "quiet"}) {
		t.Errorf("instances after Sweep: %v, want live and quiet", got)
	}
	// A verifier that was only paused (a long GC, a suspended VM) says it serves again: its
	// record is back as it says, and the next sweep keeps it.
	crashed.KeyIDs, crashed.SeenAt = []string{"0506", "0102"}, now.Add(time.Second)
	must(t, s.PutInstance(ctx, crashed))
	sweep(t, s, now.Add(time.Minute))
	got, err := s.Instances(ctx, now)
	must(t, err)
	if len(got) != 1 || got[0].ID != "crashed" || !slices.Equal(got[0].KeyIDs, crashed.KeyIDs) || !got[0].SeenAt.Equal(crashed.SeenAt) {
		t.Errorf("instances seen since the sweep after the paused one came back: %+v, want it as put", got)
	}
}
