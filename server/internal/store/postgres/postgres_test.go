package postgres_test

import (
	"path/filepath"
	"testing"

	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
	"github.com/twofold-dev/twofold/server/internal/store/postgres"
	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
	"github.com/twofold-dev/twofold/server/internal/store/storetest"
)

func open(t *testing.T, dsn string) *sqlstore.DB {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, pgtest.NewDatabase(t))
	})
}

// Verifier instances starting together on an empty database all come up: the advisory lock
// lets one migrate while the others wait, then find nothing left to do.
func TestOpen_ConcurrentlyOnFreshDatabase_AllSucceed(t *testing.T) {
	migrations, err := filepath.Glob("../sqlstore/migrations/*.sql")
	if err != nil || len(migrations) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	for round := range 3 {
		dsn := pgtest.NewDatabase(t)
		const n = 3
		stores := make([]*sqlstore.DB, n)
		errs := make(chan error, n)
		start := make(chan struct{})
		for i := range n {
			go func() {
				<-start
				s, err := postgres.Open(t.Context(), dsn)
				stores[i] = s
				errs <- err
			}()
		}
		close(start)
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("round %d: concurrent Open: %v", round, err)
			}
		}
		for _, s := range stores {
			if s != nil {
				t.Cleanup(func() { s.Close() })
			}
		}
		if t.Failed() {
			return
		}
		var applied int
		if err := stores[0].SQL().QueryRowContext(t.Context(), "SELECT COUNT(*) FROM schema_migrations").Scan(&applied); err != nil {
			t.Fatal(err)
		}
		if applied != len(migrations) {
			t.Errorf("round %d: %d migrations recorded, want %d (one per file)", round, applied, len(migrations))
		}
		// All of them work on the one schema.
		if err := stores[1].CreateApp(t.Context(), store.App{ID: "a", Name: "A", APIKeyHash: []byte("h"), SigningAlg: "EdDSA"}); err != nil {
			t.Fatal(err)
		}
		if _, err := stores[2].App(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
	}
}

// Warm leaves the pool's every connection open, each a server process, and idle for the
// first requests. Opened by them on demand, all at once, two instances' connections held
// those requests for over a second.
func TestWarm_OpensEveryConnection(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t))
	db := s.SQL()
	want := db.Stats().MaxOpenConnections
	if n := db.Stats().OpenConnections; n >= want {
		t.Fatalf("%d of %d connections open before Warm: nothing to tell", n, want)
	}
	if err := s.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := db.Stats(); st.OpenConnections != want || st.Idle != want {
		t.Errorf("after Warm: %d open, %d idle, want %d of each", st.OpenConnections, st.Idle, want)
	}
	var backends int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()`).Scan(&backends); err != nil {
		t.Fatal(err)
	}
	if backends < want {
		t.Errorf("the server runs %d processes for this database, want at least %d", backends, want)
	}
}
