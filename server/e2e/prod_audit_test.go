package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/checkpoint"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
)

// firstCheckpoint waits until the verifier has signed the trail and returns that record.
func firstCheckpoint(t *testing.T, v *verifier) store.AuditRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var found store.AuditRecord
		env := v.env()
		env.Store.AuditRecords(context.Background(), store.AuditFilter{}, func(r store.AuditRecord) error {
			if r.Kind == checkpoint.Kind && found.ID == 0 {
				found = r
			}
			return nil
		})
		if found.ID != 0 {
			return found
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no audit checkpoint within 10s")
	return store.AuditRecord{}
}

// auditVerify runs `twofold audit verify` on dir and returns its report and exit code.
func auditVerify(t *testing.T, dir string, args ...string) (checkpoint.Report, int) {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"audit", "verify", "--data", dir}, args...)...).Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep checkpoint.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("audit verify printed %q: %v", out, err)
	}
	return rep, code
}

// An attacker with write access to the database can edit a record and recompute every
// hash after it, or cut the end of the trail off; the hash chain alone cannot tell. The
// checkpoints, signed with the token signing key, can, and `audit verify` names where.
func TestAuditVerify_RewrittenOrCutOffTrail_FailsOnSignedCheckpoint(t *testing.T) {
	v := startVerifierWith(t, func(c *serve.Config) { c.CheckpointEvery = 20 * time.Millisecond })
	e := v.enroll("alice")
	e.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: "000000"})
	cp := firstCheckpoint(t, v)
	v.enroll("bob") // records after the checkpoint

	if rep, code := auditVerify(t, v.Data, "--max-checkpoint-age", "1h"); code != 0 || !rep.OK || rep.Checkpoints < 1 {
		t.Fatalf("untouched trail: exit %d %+v", code, rep)
	}

	for _, tc := range []struct {
		name   string
		tamper func(db execer, recs []store.AuditRecord)
		args   []string
		id     int64
		reason string
	}{
		{"one record edited, every later hash recomputed", func(db execer, recs []store.AuditRecord) {
			// The first record: every checkpoint vouches for it or a later one, whereas the
			// first checkpoint may vouch for the record before it, if one was appended while
			// the checkpoint was signed.
			recs[0].User = "mallory"
			for i := range recs {
				if i > 0 {
					recs[i].PrevHash = recs[i-1].Hash
				}
				recs[i].PrevHash = append([]byte{}, recs[i].PrevHash...) // never NULL
				recs[i].Hash = recs[i].Digest()
				db.Exec(`UPDATE audit_log SET user_id = ?, prev_hash = ?, hash = ? WHERE id = ?`, recs[i].User, recs[i].PrevHash, recs[i].Hash, recs[i].ID)
			}
		}, nil, cp.ID, "rewritten"},
		{"the end cut off, checkpoints with it", func(db execer, recs []store.AuditRecord) {
			db.Exec(`DELETE FROM audit_log WHERE id >= ?`, cp.ID)
		}, []string{"--max-checkpoint-age", "1h"}, cp.ID, "cut off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyData(t, v.Data, dir)
			st, err := sqlite.Open(t.Context(), filepath.Join(dir, "twofold.db"))
			if err != nil {
				t.Fatal(err)
			}
			var recs []store.AuditRecord
			st.AuditRecords(t.Context(), store.AuditFilter{}, func(r store.AuditRecord) error { recs = append(recs, r); return nil })
			tc.tamper(execer{t, st.SQL()}, recs)
			st.Close()
			rep, code := auditVerify(t, dir, tc.args...)
			if code != 1 || rep.OK || rep.Broken == nil || rep.Broken.ID != tc.id || !strings.Contains(rep.Broken.Reason, tc.reason) {
				t.Fatalf("exit %d, report %+v broken %+v; want exit 1 naming record %d (%s)", code, rep, rep.Broken, tc.id, tc.reason)
			}
		})
	}
}

// execer runs tampering statements, failing the test on an error.
type execer struct {
	t  *testing.T
	db *sql.DB
}

func (e execer) Exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		e.t.Fatal(err)
	}
}
