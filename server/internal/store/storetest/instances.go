package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

func init() {
	tests = append(tests, contractCase{"Instances_PutRefreshListSinceDelete", testInstances})
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
