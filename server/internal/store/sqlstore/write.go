package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Transaction is one write transaction on the pool as a Dialect runs it (Dialect.RunTx).
// Its statements' placeholders are already the driver's.
type Transaction interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	// ExecLater runs a statement whose result nobody reads. It may be held back and sent
	// with the next statement, or with the commit; its failure is then theirs.
	ExecLater(query string, args ...any)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow's row must be scanned before the next statement.
	QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(...any) error }
}

// Rows is what a Transaction's Query returns.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// writeTx runs the statements of one write: inside a PostgreSQL transaction (Dialect.RunTx),
// or inside SQLite's group commit on its one writer connection, prepared once.
type writeTx struct {
	ctx  context.Context
	tx   Transaction
	q    func(string) string
	stmt func(query string) (*sql.Stmt, error)
}

// affected is the sql.Result of a Transaction's Exec.
type affected int64

func (n affected) LastInsertId() (int64, error) {
	return 0, errors.New("no LastInsertId: use RETURNING")
}
func (n affected) RowsAffected() (int64, error) { return int64(n), nil }

func (w *writeTx) exec(query string, args ...any) (sql.Result, error) {
	if w.tx != nil {
		n, err := w.tx.Exec(w.ctx, w.q(query), args...)
		return affected(n), err
	}
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(w.ctx, args...)
}

// execLater runs a statement whose result nobody reads: on PostgreSQL it is sent with the
// next statement, or with the commit, saving a round trip; its failure fails that one.
func (w *writeTx) execLater(query string, args ...any) error {
	if w.tx != nil {
		w.tx.ExecLater(w.q(query), args...)
		return nil
	}
	_, err := w.exec(query, args...)
	return err
}

func (w *writeTx) query(query string, args ...any) (Rows, error) {
	if w.tx != nil {
		return w.tx.Query(w.ctx, w.q(query), args...)
	}
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(w.ctx, args...)
}

func (w *writeTx) queryRow(query string, args ...any) row {
	if w.tx != nil {
		return w.tx.QueryRow(w.ctx, w.q(query), args...)
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
	return s.d.RunTx(ctx, func(tx Transaction) error {
		return fn(&writeTx{ctx: ctx, tx: tx, q: s.q})
	})
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

// execLater is exec: outside a transaction there is nothing to send it with.
func (s *DB) execLater(ctx context.Context, query string, args ...any) error {
	_, err := s.exec(ctx, query, args...)
	return err
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
	// execLater runs a statement whose result nobody reads, perhaps with the next one.
	execLater(ctx context.Context, query string, args ...any) error
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

func (i inside) execLater(_ context.Context, query string, args ...any) error {
	return i.w.execLater(query, args...)
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
