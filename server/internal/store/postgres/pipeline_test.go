package postgres

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
)

// countingDB is one connection to a fresh database, with a table t, that counts the times
// it writes to the server: a round trip each.
func countingDB(t *testing.T) (*sql.DB, *atomic.Int64) {
	db, writes := countingPool(t)
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db, writes
}

// countingPool is a pool of one connection to a fresh database that counts its writes.
func countingPool(t *testing.T) (*sql.DB, *atomic.Int64) {
	cfg, err := pgx.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		return countingConn{c, &writes}, err
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db, &writes
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// A transaction takes a round trip per statement whose result is read, and one for COMMIT:
// BEGIN and the statements nobody reads go with the next one. Held statements run before
// it, in order.
func TestPipelinedTx_HeldStatementsGoWithTheNext_ARoundTripPerResultRead(t *testing.T) {
	db, writes := countingDB(t)
	run := runTx(db)
	ctx := t.Context()
	write := func(k string) (v int64, deleted int64) {
		err := run(ctx, func(tx sqlstore.Transaction) error {
			tx.ExecLater(`INSERT INTO t (k, v) VALUES ($1, 1)`, k)
			tx.ExecLater(`UPDATE t SET v = v + 1 WHERE k = $1`, k)
			if err := tx.QueryRow(ctx, `SELECT v FROM t WHERE k = $1`, k).Scan(&v); err != nil {
				return err
			}
			tx.ExecLater(`UPDATE t SET v = v + 10 WHERE k = $1`, k)
			var err error
			deleted, err = tx.Exec(ctx, `DELETE FROM t WHERE k = $1 AND v = 12`, k)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return v, deleted
	}
	write("warm") // prepares the statements, which takes a round trip of its own once
	before := writes.Load()
	v, deleted := write("k")
	if v != 2 || deleted != 1 {
		t.Errorf("read v = %d and deleted %d row(s), want 2 and 1: held statements ran out of order", v, deleted)
	}
	// BEGIN, INSERT, UPDATE, SELECT | UPDATE, DELETE | COMMIT
	if n := writes.Load() - before; n != 3 {
		t.Errorf("%d round trips, want 3", n)
	}
}

// A held statement that fails fails the transaction where it is sent, undoes everything
// before it, and leaves the connection fit for the next transaction.
func TestPipelinedTx_HeldStatementFails_AllUndoneConnectionReusable(t *testing.T) {
	db, _ := countingDB(t)
	run := runTx(db)
	ctx := t.Context()
	err := run(ctx, func(tx sqlstore.Transaction) error {
		if _, err := tx.Exec(ctx, `INSERT INTO t (k, v) VALUES ('a', 1)`); err != nil {
			return err
		}
		tx.ExecLater(`INSERT INTO t (k, v) VALUES ('b', 1)`)
		tx.ExecLater(`INSERT INTO t (k, v) VALUES ('a', 2)`) // duplicate key
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("commit: %v, want the held statement's duplicate key error", err)
	}
	// The same (only) connection: not left in an aborted transaction.
	err = run(ctx, func(tx sqlstore.Transaction) error {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("%d rows after the failed transaction, want 0", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Chaining queued audit records sends a batch's inserts together, with the statement that
// ends the batch: its round trips do not grow with the records, while the chain's lock is
// held.
func TestChain_QueuedRecords_RoundTripsDoNotGrowWithThem(t *testing.T) {
	db, writes := countingPool(t)
	st, err := open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db.SetMaxOpenConns(1) // one connection: every statement is prepared on it once
	ctx := t.Context()
	chain := func(records int) int64 {
		for i := range records {
			r := store.AuditRecord{At: time.Now(), Kind: string(audit.Verified), AppID: "app", User: "u" + strconv.Itoa(i), Factor: "totp", Outcome: "ok"}
			if err := st.QueueAudit(ctx, r, false); err != nil {
				t.Fatal(err)
			}
		}
		before := writes.Load()
		// Reading the trail chains what is queued first.
		if err := st.AuditRecords(ctx, store.AuditFilter{Newest: 1}, func(store.AuditRecord) error { return nil }); err != nil {
			t.Fatal(err)
		}
		return writes.Load() - before
	}
	chain(1) // prepares the statements
	few, many := chain(2), chain(200)
	if many != few {
		t.Errorf("chaining 200 records took %d round trips, 2 took %d: want the same", many, few)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM audit_log`).Scan(&n); err != nil || n != 203 {
		t.Errorf("%d records chained (%v), want 203", n, err)
	}
}
