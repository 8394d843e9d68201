// Package sqlite is the embedded default store: one SQLite file (modernc.org/sqlite, no
// cgo) in WAL mode with full synchronous commits, so an accepted code is on disk before the
// verifier answers.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"time"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
)

// startProcs is GOMAXPROCS as the process started: the CPUs it may use. The serve command
// raises GOMAXPROCS well past them (serve.TuneRuntime), which should not multiply the
// readers.
var startProcs = runtime.GOMAXPROCS(0)

// Open opens (creating if needed) the database file at path and migrates it.
//
// Processes that open a new file together can find it locked where SQLite does not call
// its busy handler (while another is still setting the file up); Open tries again for a
// while then.
func Open(ctx context.Context, path string) (*sqlstore.DB, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := open(ctx, path)
		var se *driver.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func open(ctx context.Context, path string) (*sqlstore.DB, error) {
	// A new file is made here, owner-only like a backup: SQLite would make it 0644 under the
	// usual umask, and gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	f.Close()
	q := url.Values{}
	for _, p := range []string{"busy_timeout(15000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	// Immediate transactions take the write lock up front; deferred ones can deadlock when
	// two readers both try to upgrade.
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// Readers are kept open: database/sql keeps two idle connections by default, and
	// under load it closed and reopened the rest for every query, each open re-reading the
	// schema and re-preparing its statements (a fifth of the verifier's CPU).
	readers := max(4, 2*startProcs)
	db.SetMaxOpenConns(readers)
	db.SetMaxIdleConns(readers)
	// Every write goes through one connection, in group commits: writers on several
	// connections would queue in SQLite's busy handler, which sleeps in steps of up to
	// 100 ms, and each would pay a commit of its own.
	writer, err := sql.Open("sqlite", dsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	s, err := sqlstore.New(ctx, db, sqlstore.Dialect{Name: "sqlite", Writer: writer})
	if err != nil {
		db.Close()
		writer.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}
