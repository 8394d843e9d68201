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

// Writes that share a group commit stay independent: one that fails after it has written
// leaves nothing behind, and the others of its batch still commit.
func TestGroupCommit_FailedUnitRolledBackAlone(t *testing.T) {
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
				if i%2 == 1 {
					return errBoom
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if want := i%2 == 1; errors.Is(err, errBoom) != want || (!want && err != nil) {
			t.Errorf("unit %d: err = %v", i, err)
		}
		_, err := s.Secret(ctx, fmt.Sprint(i))
		if kept := err == nil; kept == (i%2 == 1) {
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

// A unit whose function panics fails alone, undone, with errPanicked; the others of its
// batch commit, and the writer goes on: one request's bug does not end every write.
func TestGroupCommit_PanickingUnitFailsAlone_WriterGoesOn(t *testing.T) {
	ctx := t.Context()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "gc.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, db, Dialect{Name: "sqlite", Writer: db})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.inTx(ctx, func(w *writeTx) error {
				if _, err := w.exec(`INSERT INTO secrets (name, sealed) VALUES (?, ?)`, fmt.Sprint(i), []byte{1}); err != nil {
					return err
				}
				if i%5 == 0 {
					var m map[string]int
					m["boom"]++ // a nil map: the runtime panics
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		panicked := i%5 == 0
		if errors.Is(err, errPanicked) != panicked || (!panicked && err != nil) {
			t.Errorf("unit %d: err = %v", i, err)
		}
		if _, err := s.Secret(ctx, fmt.Sprint(i)); (err == nil) == panicked {
			t.Errorf("unit %d: row kept %v", i, err == nil)
		}
	}
	if _, err := s.exec(ctx, `INSERT INTO secrets (name, sealed) VALUES ('after', x'01')`); err != nil {
		t.Fatalf("write after the panics: %v", err)
	}
}
