package sqlite_test

import (
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
