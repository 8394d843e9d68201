package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
)

// runTx runs fn as one transaction on a connection of db, pipelined: BEGIN, and the
// statements whose results nobody reads (ExecLater), are held back and sent in one batch
// with the next statement, or with COMMIT. A verification's write (BEGIN, the replay
// guard's compare-and-set, the ticket's elevation, the queued audit record, COMMIT) then
// takes two round trips instead of five, each of which costs the verifier and the server
// a wake-up and a pair of socket calls.
func runTx(db *sql.DB) func(ctx context.Context, fn func(sqlstore.Transaction) error) error {
	return func(ctx context.Context, fn func(sqlstore.Transaction) error) error {
		c, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Raw(func(dc any) error {
			sc, ok := dc.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("postgres: driver connection is %T, not pgx's", dc)
			}
			t := &pipelinedTx{c: sc.Conn()}
			t.held.Queue("BEGIN")
			err := fn(t)
			if err == nil {
				t.held.Queue("COMMIT")
				if err = t.flush(ctx); err == nil {
					return nil
				}
			}
			if !t.sent {
				return err
			}
			// A failed statement leaves the transaction open and aborted; a failed
			// ROLLBACK leaves the connection in an unknown state: database/sql drops it.
			if _, rerr := t.c.Exec(ctx, "ROLLBACK"); rerr != nil {
				return errors.Join(err, fmt.Errorf("rollback: %w", rerr), driver.ErrBadConn)
			}
			return err
		})
	}
}

// pipelinedTx is a transaction on one pgx connection that holds back what it can.
type pipelinedTx struct {
	c    *pgx.Conn
	held pgx.Batch
	sent bool // BEGIN has gone out
}

func (t *pipelinedTx) ExecLater(query string, args ...any) { t.held.Queue(query, args...) }

// send sends the held statements and then query, if any, in one batch, and reads the held
// ones' results. The caller reads query's from the returned results and closes them.
func (t *pipelinedTx) send(ctx context.Context, query string, args []any) (pgx.BatchResults, error) {
	n := t.held.Len()
	if query != "" {
		t.held.Queue(query, args...)
	}
	b := t.held // the results read the batch they came from
	t.held, t.sent = pgx.Batch{}, true
	br := t.c.SendBatch(ctx, &b)
	for range n {
		if _, err := br.Exec(); err != nil {
			return nil, errors.Join(err, br.Close())
		}
	}
	return br, nil
}

// flush sends what is held, alone.
func (t *pipelinedTx) flush(ctx context.Context) error {
	if t.held.Len() == 0 {
		return nil
	}
	br, err := t.send(ctx, "", nil)
	if err != nil {
		return err
	}
	return br.Close()
}

func (t *pipelinedTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	br, err := t.send(ctx, query, args)
	if err != nil {
		return 0, err
	}
	tag, err := br.Exec()
	if err := errors.Join(err, br.Close()); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t *pipelinedTx) QueryRow(ctx context.Context, query string, args ...any) interface{ Scan(...any) error } {
	br, err := t.send(ctx, query, args)
	if err != nil {
		return errRow{err}
	}
	return batchRow{br}
}

// batchRow is the last statement of a batch, read when it is scanned.
type batchRow struct{ br pgx.BatchResults }

func (r batchRow) Scan(dest ...any) error {
	err := r.br.QueryRow().Scan(dest...)
	return errors.Join(err, r.br.Close())
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// Query sends what is held first: the rows are read after the call returns, and a batch's
// results must be read in order.
func (t *pipelinedTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	r, err := t.c.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

// rows gives pgx's rows database/sql's Close.
type rows struct{ pgx.Rows }

func (r rows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}
