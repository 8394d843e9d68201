// Package sqlite is the embedded default store: one SQLite file (modernc.org/sqlite, no
// cgo) in WAL mode with full synchronous commits, so an accepted code is on disk before the
// verifier answers.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // the driver

	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
)

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, path string) (*sqlstore.DB, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(15000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	// Immediate transactions take the write lock up front; deferred ones can deadlock when
	// two readers both try to upgrade.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s, err := sqlstore.New(ctx, db, sqlstore.Dialect{Name: "sqlite"})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}
