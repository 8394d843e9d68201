package sqlstore

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// The sweep runs every minute in the one writer: a statement that read a whole table held
// every write up (175 ms at a million enrolled users) until pending enrollments had an
// index.
func TestSweep_EveryStatementUsesAnIndex(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "sweep.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(t.Context(), db, Dialect{Name: "sqlite", Writer: db})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, sw := range sweeps {
		rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+sw.query, 0)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if len(plan) == 0 || strings.HasPrefix(plan[0], "SCAN") {
			t.Errorf("sweep of %s: plan %q, want a search through an index", sw.what, plan)
		}
	}
}
