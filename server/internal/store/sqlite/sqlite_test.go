package sqlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
	"github.com/twofold-dev/twofold/server/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "twofold.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// An accepted code must be on disk before the verifier answers: WAL with synchronous=FULL
// on every pooled connection, not only the first one.
func TestOpen_EveryConnection_WALAndFullSync(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "twofold.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const conns = 4
	for i := range conns {
		// Hold each connection so the next one is a new one.
		c, err := s.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, tc := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"synchronous", "2"}, // FULL
			{"foreign_keys", "1"},
			{"busy_timeout", "15000"},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatalf("connection %d: PRAGMA %s: %v", i, tc.pragma, err)
			}
			if got != tc.want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, tc.pragma, got, tc.want)
			}
		}
	}
}

// Processes starting together on a new file all come up: the migration transaction takes
// the write lock up front, so one migrates and the others find nothing left to do.
func TestOpen_ConcurrentlyOnNewFile_AllSucceed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twofold.db")
	const n = 3
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			s, err := sqlite.Open(t.Context(), path)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
}

func TestOpen_Reopen_KeepsDataAndMigratesOnce(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "twofold.db")
	app := store.App{ID: "shop", Name: "Shop", Origins: []string{"https://shop.example"}, APIKeyHash: []byte("h"), SigningAlg: "EdDSA", CreatedAt: time.UnixMilli(1_893_456_000_000)}

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	migrations, err := filepath.Glob("../sqlstore/migrations/*.sql")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for round := range 2 {
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen #%d: %v", round+1, err)
		}
		got, err := s.App(ctx, "shop")
		if err != nil {
			t.Fatalf("reopen #%d: %v", round+1, err)
		}
		if got.Name != app.Name || !got.CreatedAt.Equal(app.CreatedAt) || len(got.Origins) != 1 {
			t.Errorf("reopen #%d: App = %+v, want %+v", round+1, got, app)
		}
		var applied int
		if err := s.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&applied); err != nil {
			t.Fatal(err)
		}
		if applied != len(migrations) {
			t.Errorf("reopen #%d: %d migrations recorded, want %d (one per file)", round+1, applied, len(migrations))
		}
		s.Close()
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// A backup taken while tickets are being written is one consistent snapshot that opens as
// a store, and a second backup onto it is refused without touching it.
func TestBackup_WhileWriting_ConsistentCopyNeverOverwritten(t *testing.T) {
	ctx := t.Context()
	dbPath := filepath.Join(t.TempDir(), "twofold.db")
	s, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	if err := s.CreateApp(ctx, store.App{ID: "shop", Name: "Shop", APIKeyHash: []byte("h"), SigningAlg: "EdDSA", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	ticket := func(i int) store.Ticket {
		return store.Ticket{Hash: []byte(fmt.Sprintf("ticket-%06d", i)), AppID: "shop", User: fmt.Sprint("user-", i), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	const before = 200
	for i := range before {
		if err := s.CreateTicket(ctx, ticket(i)); err != nil {
			t.Fatal(err)
		}
	}
	stop, written := make(chan struct{}), make(chan int)
	go func() {
		n := before
		for {
			select {
			case <-stop:
				written <- n
				return
			default:
			}
			if err := s.CreateTicket(ctx, ticket(n)); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	path := filepath.Join(t.TempDir(), "backup.db")
	info, err := sqlite.Backup(ctx, dbPath, path)
	close(stop)
	total := <-written
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != path || info.Bytes <= 0 {
		t.Errorf("backup info %+v, want the path and its size", info)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v (%v), want 0600: it holds hashed codes and the audit trail", fi.Mode().Perm(), err)
	}

	// The copy opens as a store and holds every ticket written before the backup began, and
	// from those written during it, a prefix: nothing half-written, nothing out of order.
	restored, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	var n int
	var last string
	if err := restored.SQL().QueryRowContext(ctx, `SELECT COUNT(*), MAX(hash) FROM tickets`).Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if n < before || n > total || last != string(ticket(n-1).Hash) {
		t.Fatalf("the copy holds %d tickets up to %q; want from %d to %d, ending at %q", n, last, before, total, ticket(n-1).Hash)
	}
	if _, err := restored.Ticket(ctx, ticket(before-1).Hash); err != nil {
		t.Fatalf("a ticket written before the backup: %v", err)
	}

	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Backup(ctx, dbPath, path); !errors.Is(err, sqlite.ErrBackupExists) {
		t.Fatalf("a second backup onto the first: %v, want ErrBackupExists", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, saved) {
		t.Fatal("a refused backup changed the file it was refused onto")
	}
	if _, err := sqlite.Backup(ctx, dbPath, filepath.Join(t.TempDir(), "no-such-dir", "backup.db")); err == nil {
		t.Fatal("a backup into a directory that does not exist succeeded")
	}
}
