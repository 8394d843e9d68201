package audit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/audit"
)

func TestVerify_Tampering_NamesTheFirstBrokenRecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  []string // raw SQL on the SQLite file
		ok      bool
		brokeAt int64
		reason  string
	}{
		{name: "untouched", ok: true},
		{name: "edited detail", tamper: []string{`UPDATE audit_log SET detail = 'nothing happened' WHERE id = 3`}, brokeAt: 3, reason: "edited"},
		{name: "edited outcome", tamper: []string{`UPDATE audit_log SET outcome = 'ok' WHERE id = 2`}, brokeAt: 2, reason: "edited"},
		{name: "edited time", tamper: []string{`UPDATE audit_log SET at = at + 1 WHERE id = 4`}, brokeAt: 4, reason: "edited"},
		{name: "first record edited", tamper: []string{`UPDATE audit_log SET user_id = 'mallory' WHERE id = 1`}, brokeAt: 1, reason: "edited"},
		{name: "deleted", tamper: []string{`DELETE FROM audit_log WHERE id = 3`}, brokeAt: 3, reason: "missing"},
		{name: "first deleted", tamper: []string{`DELETE FROM audit_log WHERE id = 1`}, brokeAt: 1, reason: "missing"},
		{name: "two deleted", tamper: []string{`DELETE FROM audit_log WHERE id IN (2, 3)`}, brokeAt: 2, reason: "records 2 to 3 are missing"},
		{name: "reordered", tamper: []string{
			`UPDATE audit_log SET id = -3 WHERE id = 3`,
			`UPDATE audit_log SET id = 3 WHERE id = 4`,
			`UPDATE audit_log SET id = 4 WHERE id = -3`,
		}, brokeAt: 3, reason: "edited"},
		{name: "records swapped with their hashes kept", tamper: []string{
			`UPDATE audit_log SET prev_hash = (SELECT hash FROM audit_log WHERE id = 1) WHERE id = 3`,
		}, brokeAt: 3, reason: "edited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			log := audit.NewLog(nil, nil)
			for i := range 5 {
				if err := log.Record(t.Context(), s, audit.Event{At: t0.Add(time.Duration(i) * time.Second), Kind: audit.Failed, AppID: "shop", User: "alice", Outcome: "refused", Detail: "wrong code"}); err != nil {
					t.Fatal(err)
				}
			}
			records(t, s) // reading chains the queued events: the tampering is with the chain
			for _, q := range tc.tamper {
				if _, err := s.SQL().ExecContext(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			rep, err := audit.Verify(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK != tc.ok {
				t.Fatalf("OK = %v, want %v (%+v)", rep.OK, tc.ok, rep.Broken)
			}
			if tc.ok {
				if rep.Records != 5 || rep.Broken != nil {
					t.Errorf("report %+v, want 5 records and no break", rep)
				}
				return
			}
			if rep.Broken.ID != tc.brokeAt || !strings.Contains(rep.Broken.Reason, tc.reason) {
				t.Errorf("broken at %d (%q), want %d (%q)", rep.Broken.ID, rep.Broken.Reason, tc.brokeAt, tc.reason)
			}
			if rep.Records != tc.brokeAt-1 {
				t.Errorf("Records = %d, want the %d good ones before the break", rep.Records, tc.brokeAt-1)
			}
		})
	}
}

func TestVerify_EmptyTrail_OK(t *testing.T) {
	rep, err := audit.Verify(t.Context(), openStore(t))
	if err != nil || !rep.OK || rep.Records != 0 {
		t.Fatalf("Verify(empty) = %+v, %v", rep, err)
	}
}

// A forger who edits a record and writes its correct new hash is caught by the next record,
// whose prev_hash still holds the old one.
func TestVerify_EditedAndRehashed_NextRecordBreaks(t *testing.T) {
	s := openStore(t)
	log := audit.NewLog(nil, nil)
	for range 3 {
		if err := log.Record(t.Context(), s, audit.Event{Kind: audit.AdminReset, AppID: "shop", User: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	r := records(t, s)[1]
	r.User = "bob"
	if _, err := s.SQL().ExecContext(t.Context(), `UPDATE audit_log SET user_id = ?, hash = ? WHERE id = ?`, r.User, r.Digest(), r.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Broken.ID != 3 || !strings.Contains(rep.Broken.Reason, "prev_hash") || rep.Broken.Record == nil || rep.Broken.Record.ID != 3 {
		t.Fatalf("report %+v (%+v), want a break at record 3 for its prev_hash", rep, rep.Broken)
	}
}
