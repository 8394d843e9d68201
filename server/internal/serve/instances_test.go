package serve

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// Which running verifiers keep a master key rotation from going ahead: those that lack the
// new key and cannot learn it. One not seen for longer than instanceLive is not running.
func TestCheckInstances_RefusesOnlyARunningVerifierThatCannotGetTheKey(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const file = "file web-1:/var/lib/twofold/master.key"
	for _, tc := range []struct {
		name           string
		in             store.Instance
		newKey, ourKey string // the rotation: to newKey (env or command), or a new key in the file ourKey
		refused        bool
	}{
		{"environment, holds the new key", store.Instance{KeyIDs: []string{"aa", "bb"}}, "bb", "", false},
		{"environment, lacks it", store.Instance{KeyIDs: []string{"aa"}}, "bb", "", true},
		{"command, lacks it but runs the command again", store.Instance{KeyIDs: []string{"aa"}, Follows: "command"}, "bb", "", false},
		{"the same key file", store.Instance{KeyIDs: []string{"aa"}, Follows: file}, "", file, false},
		{"another host's key file", store.Instance{KeyIDs: []string{"aa"}, Follows: "file web-2:/var/lib/twofold/master.key"}, "", file, true},
		{"environment, while the file gets a new key", store.Instance{KeyIDs: []string{"aa"}}, "", file, true},
		{"environment, lacks it, not seen for two minutes", store.Instance{KeyIDs: []string{"aa"}, SeenAt: now.Add(-2 * time.Minute)}, "bb", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), DBFile))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			in := tc.in
			in.ID, in.Host = "web-1/42/x", "web-1"
			if in.SeenAt.IsZero() {
				in.SeenAt = now.Add(-10 * time.Second)
			}
			if err := st.PutInstance(t.Context(), in); err != nil {
				t.Fatal(err)
			}
			err = checkInstances(t.Context(), st, now, tc.newKey, tc.ourKey)
			var refusal *KeyNotHeldError
			if got := errors.As(err, &refusal); got != tc.refused || (!got && err != nil) {
				t.Fatalf("checkInstances: %v, want refused %v", err, tc.refused)
			}
			if tc.refused && (len(refusal.Instances) != 1 || refusal.Instances[0].ID != in.ID) {
				t.Fatalf("refusal names %+v, want %s", refusal.Instances, in.ID)
			}
		})
	}
}
