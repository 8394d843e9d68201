package sqlstore

import (
	"context"
	"database/sql"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// writeTx runs the statements of one write: inside a PostgreSQL transaction, as text
// (preparing on the pool could wait for a connection while holding one, and the driver
// keeps a statement cache per connection anyway), or inside SQLite's group commit on its
// one writer connection, prepared once.
type writeTx struct {
	ctx  context.Context
	tx   *sql.Tx
	q    func(string) string
	stmt func(query string) (*sql.Stmt, error)
}

func (w *writeTx) exec(query string, args ...any) (sql.Result, error) {
	if w.tx != nil {
		return w.tx.ExecContext(w.ctx, w.q(query), args...)
	}
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(w.ctx, args...)
}

func (w *writeTx) query(query string, args ...any) (*sql.Rows, error) {
	if w.tx != nil {
		return w.tx.QueryContext(w.ctx, w.q(query), args...)
	}
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(w.ctx, args...)
}

func (w *writeTx) queryRow(query string, args ...any) row {
	if w.tx != nil {
		return w.tx.QueryRowContext(w.ctx, w.q(query), args...)
	}
	st, err := w.stmt(query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(w.ctx, args...)
}

// inTx runs fn as one transaction. On SQLite it joins the current group commit under a
// savepoint of its own, so its failure undoes it alone.
func (s *DB) inTx(ctx context.Context, fn func(w *writeTx) error) error {
	if s.gc != nil {
		return s.gc.do(ctx, false, fn)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	w := &writeTx{ctx: ctx, tx: tx, q: s.q}
	if err := fn(w); err != nil {
		return err
	}
	return tx.Commit()
}

// exec runs one writing statement: on PostgreSQL in a transaction of its own, on SQLite
// in the current group commit.
func (s *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s.gc == nil {
		st, err := s.prepared(ctx, query)
		if err != nil {
			return nil, err
		}
		return st.ExecContext(ctx, args...)
	}
	var res sql.Result
	err := s.gc.do(ctx, true, func(w *writeTx) error {
		var err error
		res, err = w.exec(query, args...)
		return err
	})
	return res, err
}

// writeRow runs one writing statement with a RETURNING clause and scans its row into dest.
func (s *DB) writeRow(ctx context.Context, query string, args []any, dest ...any) error {
	if s.gc == nil {
		return s.queryRow(ctx, query, args...).Scan(dest...)
	}
	return s.gc.do(ctx, true, func(w *writeTx) error {
		return w.queryRow(query, args...).Scan(dest...)
	})
}

// writer runs a store.Tx method's statements: on the DB itself (each method its own
// transaction) or inside one transaction (Atomically).
type writer interface {
	exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	writeRow(ctx context.Context, query string, args []any, dest ...any) error
	// queryRow reads what the writer's own writes left.
	queryRow(ctx context.Context, query string, args ...any) row
	inTx(ctx context.Context, fn func(w *writeTx) error) error
}

// inside is a writer within the transaction w: its statements run under w's context.
type inside struct{ w *writeTx }

func (i inside) exec(_ context.Context, query string, args ...any) (sql.Result, error) {
	return i.w.exec(query, args...)
}

func (i inside) writeRow(_ context.Context, query string, args []any, dest ...any) error {
	return i.w.queryRow(query, args...).Scan(dest...)
}

func (i inside) queryRow(_ context.Context, query string, args ...any) row {
	return i.w.queryRow(query, args...)
}

func (i inside) inTx(_ context.Context, fn func(w *writeTx) error) error { return fn(i.w) }

// txn implements store.Tx once for both: the DB embeds one on itself, and Atomically hands
// fn one inside its transaction.
type txn struct {
	s *DB
	x writer
}

var _ store.Tx = txn{}

func (s *DB) Atomically(ctx context.Context, fn func(store.Tx) error) error {
	return s.inTx(ctx, func(w *writeTx) error {
		t := txn{s: s, x: inside{w}}
		if s.gc != nil {
			return fn(serialTxn{t})
		}
		return fn(t)
	})
}

// serialTxn is a transaction of the group-commit writer. SQLite runs them one at a time on
// its one writer connection, so nothing another transaction writes can come between its
// reads and its commit.
type serialTxn struct{ txn }
