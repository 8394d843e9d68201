package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// maxBatch bounds one group commit, so a flood of writes cannot hold the write lock for
// long against other processes (the CLI) on the same file.
const maxBatch = 256

var errClosed = errors.New("store closed")

// groupCommit runs the writes of concurrent requests on one connection, as one transaction
// per batch. SQLite lets one writer in at a time anyway, and most of what a write costs is
// its commit (the WAL's fsync), which a batch pays once: while one batch commits, the
// writes that arrive meanwhile gather into the next. Each write answers only once its
// batch is durable, so nothing is acknowledged that a crash could take back.
type groupCommit struct {
	conn    *sql.Conn
	stmts   map[string]*sql.Stmt // the writer's statements; only run touches them
	q       func(string) string
	units   chan *unit
	stop    chan struct{}
	stopped chan struct{}
	close   func() error // once
}

type unit struct {
	ctx context.Context
	fn  func(w *writeTx) error
	// atomic is a single statement: SQLite undoes a failed statement by itself, so it
	// needs no savepoint.
	atomic bool
	err    chan error
}

func newGroupCommit(ctx context.Context, db *sql.DB, q func(string) string) (*groupCommit, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("writer connection: %w", err)
	}
	g := &groupCommit{
		conn: conn, stmts: map[string]*sql.Stmt{}, q: q,
		units: make(chan *unit, maxBatch), stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	g.close = sync.OnceValue(g.shutdown)
	go g.run()
	return g, nil
}

// do runs fn in the next batch and returns once that batch has committed (or failed).
func (g *groupCommit) do(ctx context.Context, atomic bool, fn func(w *writeTx) error) error {
	u := &unit{ctx: ctx, fn: fn, atomic: atomic, err: make(chan error, 1)}
	select {
	case g.units <- u:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stop:
		return errClosed
	}
	// Once queued, wait for the outcome even if ctx ends: fn may be running.
	select {
	case err := <-u.err:
		return err
	case <-g.stopped:
		select {
		case err := <-u.err:
			return err
		default:
			return errClosed
		}
	}
}

func (g *groupCommit) shutdown() error {
	close(g.stop)
	<-g.stopped
	for _, st := range g.stmts {
		st.Close()
	}
	return g.conn.Close()
}

func (g *groupCommit) run() {
	defer close(g.stopped)
	batch := make([]*unit, 0, maxBatch)
	for {
		select {
		case u := <-g.units:
			batch = append(batch[:0], u)
		case <-g.stop:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case u := <-g.units:
				batch = append(batch, u)
			default:
				break gather
			}
		}
		g.commit(batch)
		clear(batch)
	}
}

// commit runs one batch. The batch's statements run under a context of their own: one
// request that gives up must not fail the others' writes.
func (g *groupCommit) commit(batch []*unit) {
	ctx := context.Background()
	errs := make([]error, len(batch))
	err := g.transaction(ctx, func() error {
		for i, u := range batch {
			if err := u.ctx.Err(); err != nil {
				errs[i] = err // its caller stopped waiting before the batch began
				continue
			}
			var fatal error
			errs[i], fatal = g.apply(ctx, u)
			if fatal != nil {
				return fatal
			}
		}
		return nil
	})
	for i, u := range batch {
		u.err <- cmp.Or(err, errs[i])
	}
}

func (g *groupCommit) transaction(ctx context.Context, body func() error) error {
	if _, err := g.exec(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	err := body()
	if err == nil {
		if _, err = g.exec(ctx, "COMMIT"); err == nil {
			return nil
		}
		err = fmt.Errorf("commit: %w", err)
	}
	if _, rerr := g.exec(ctx, "ROLLBACK"); rerr != nil {
		err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
	}
	return err
}

// apply runs one unit. A unit's own failure is rolled back to its savepoint; fatal is a
// failure of the savepoints themselves, after which the batch's state is unknown and the
// whole batch must be rolled back.
func (g *groupCommit) apply(ctx context.Context, u *unit) (err, fatal error) {
	w := &writeTx{ctx: ctx, stmt: func(query string) (*sql.Stmt, error) { return g.stmt(ctx, query) }}
	if u.atomic {
		return runUnit(u, w), nil
	}
	if _, err := g.exec(ctx, "SAVEPOINT unit"); err != nil {
		return nil, err
	}
	if err = runUnit(u, w); err != nil {
		if _, rerr := g.exec(ctx, "ROLLBACK TO unit"); rerr != nil {
			return err, rerr
		}
	}
	if _, rerr := g.exec(ctx, "RELEASE unit"); rerr != nil {
		return err, rerr
	}
	return err, nil
}

// errPanicked is a unit whose function panicked: it fails alone and is undone, since one
// request's bug must not end the writer that every write of the process goes through.
var errPanicked = errors.New("the transaction panicked")

func runUnit(u *unit, w *writeTx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			// The value only when the runtime made it: another could hold whatever the code
			// had in hand.
			what := fmt.Sprintf("%T", v)
			if re, ok := v.(runtime.Error); ok {
				what = re.Error()
			}
			err = fmt.Errorf("%w (%s)\n%s", errPanicked, what, debug.Stack())
		}
	}()
	return u.fn(w)
}

func (g *groupCommit) exec(ctx context.Context, query string) (sql.Result, error) {
	st, err := g.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx)
}

// stmt returns query prepared on the writer connection, once.
func (g *groupCommit) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := g.stmts[query]; ok {
		return st, nil
	}
	st, err := g.conn.PrepareContext(ctx, g.q(query))
	if err != nil {
		return nil, err
	}
	g.stmts[query] = st
	return st, nil
}
