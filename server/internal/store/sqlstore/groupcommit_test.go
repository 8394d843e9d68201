package sqlstore

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// Writes that share a group commit stay independent: one that fails after it has written,
// by an error or by a panic (errPanicked: one request's bug must not end the writer that
// every write goes through), leaves nothing behind, and the others of its batch commit.
func TestGroupCommit_FailedOrPanickedUnitRolledBackAlone(t *testing.T) {
	ctx := t.Context()
	dsn := "file:" + filepath.Join(t.TempDir(), "gc.db") + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	writer := open()
	writer.SetMaxOpenConns(1)
	s, err := New(ctx, open(), Dialect{Name: "sqlite", Writer: writer})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	errBoom := errors.New("boom")
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.inTx(ctx, func(w *writeTx) error {
				if _, err := w.exec(`INSERT INTO secrets (name, sealed) VALUES (?, ?)`, fmt.Sprint(i), []byte{1}); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errBoom
				case 2:
					var m map[string]int
					m["boom"]++ // a nil map: the runtime panics
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		want := []error{nil, errBoom, errPanicked}[i%3]
		if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
			t.Errorf("unit %d: err = %v, want %v", i, err, want)
		}
		_, err := s.Secret(ctx, fmt.Sprint(i))
		if kept := err == nil; kept != (want == nil) {
			t.Errorf("unit %d: row kept = %v (lookup: %v)", i, kept, err)
		}
	}
	if _, err := s.exec(ctx, `INSERT INTO secrets (name, sealed) VALUES ('after', x'01')`); err != nil {
		t.Fatalf("write after the batch: %v", err)
	}
	s.Close()
	if _, err := s.exec(ctx, `INSERT INTO secrets (name, sealed) VALUES ('closed', x'01')`); !errors.Is(err, errClosed) {
		t.Fatalf("write after Close: %v, want %v", err, errClosed)
	}
}
