package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// backoffLadder is the SQL for the blocked_until an attempt sets, given the attempt's number
// in the expression n: each rung is a constant from the policy, so the statement stays one
// atomic upsert in both dialects.
func backoffLadder(b store.Backoff, n string) string {
	var s strings.Builder
	s.WriteString("CASE")
	for i := 1; i <= b.LockAfter; i++ {
		d := b.Delay(i)
		if i > b.Free && d == b.Max {
			break
		}
		fmt.Fprintf(&s, " WHEN %s <= %d THEN %d", n, i, d.Milliseconds())
	}
	fmt.Fprintf(&s, " ELSE %d END", b.Max.Milliseconds())
	return s.String()
}

// reserve runs an attempt's upsert, which returns no row when it refuses, and then reads
// the row to say why. A success can delete the row between the two statements
// (ResetAttempts); the attempt is then made again, against a fresh row.
func (t txn) reserve(ctx context.Context, upsert string, args []any, read, key string, dest ...any) (allowed bool, err error) {
	for {
		err := t.x.writeRow(ctx, upsert, args, dest...)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		if err := t.x.queryRow(ctx, read, key).Scan(dest...); !errors.Is(err, sql.ErrNoRows) {
			return false, err
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// backoffUpserts memoises backoffUpsert: a policy's statement is the same for every
// attempt, and building it took a dozen allocations each time.
var backoffUpserts sync.Map // store.Backoff → string

// backoffUpsert is ReserveBackoff's statement for policy b.
func backoffUpsert(b store.Backoff) string {
	if q, ok := backoffUpserts.Load(b); ok {
		return q.(string)
	}
	ladder := backoffLadder(b, "attempts.count + 1")
	q := `INSERT INTO attempts (key, count, blocked_until) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET count = attempts.count + 1,
			blocked_until = CASE WHEN (` + ladder + `) > 0 THEN CAST(? AS BIGINT) + (` + ladder + `) ELSE 0 END
		WHERE attempts.blocked_until <= ? AND attempts.count < ` + strconv.Itoa(b.LockAfter) + `
		RETURNING count, blocked_until`
	backoffUpserts.Store(b, q)
	return q
}

func (t txn) ReserveBackoff(ctx context.Context, key string, now time.Time, b store.Backoff) (store.Decision, error) {
	var firstBlock int64
	if d := b.Delay(1); d > 0 {
		firstBlock = ms(now.Add(d))
	}
	var count int
	var blocked int64
	allowed, err := t.reserve(ctx, backoffUpsert(b), []any{key, firstBlock, ms(now), ms(now)},
		`SELECT count, blocked_until FROM attempts WHERE key = ?`, key, &count, &blocked)
	if err != nil {
		return store.Decision{}, fmt.Errorf("reserve attempt: %w", err)
	}
	if allowed {
		return store.Decision{Allowed: true, Count: count}, nil
	}
	return backoffRefusal(count, blocked, now, b), nil
}

// backoffRefusal is a back-off budget's answer to an attempt it does not allow, given the
// key's count and when its block ends: locked at LockAfter, else wait.
func backoffRefusal(count int, blocked int64, now time.Time, b store.Backoff) store.Decision {
	if count >= b.LockAfter {
		return store.Decision{Count: count, Locked: true}
	}
	return store.Decision{Count: count, RetryAfter: fromMS(blocked).Sub(now)}
}

func (t txn) ReserveWindow(ctx context.Context, key string, now time.Time, w store.Window) (store.Decision, error) {
	period, at := w.Period.Milliseconds(), ms(now)
	var count int
	var start int64
	allowed, err := t.reserve(ctx, `INSERT INTO attempts (key, count, window_start) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN attempts.window_start + ? <= ? THEN 1 ELSE attempts.count + 1 END,
			window_start = CASE WHEN attempts.window_start + ? <= ? THEN ? ELSE attempts.window_start END
		WHERE attempts.window_start + ? <= ? OR attempts.count < ?
		RETURNING count, window_start`, []any{key, at, period, at, period, at, at, period, at, w.Limit},
		`SELECT count, window_start FROM attempts WHERE key = ?`, key, &count, &start)
	if err != nil {
		return store.Decision{}, fmt.Errorf("reserve window: %w", err)
	}
	if allowed {
		return store.Decision{Allowed: true, Count: count}, nil
	}
	return windowRefusal(count, start, period, at), nil
}

// windowRefusal is a full window's answer: count attempts in the window that started at
// start (ms), period ms long, asked at ms at.
func windowRefusal(count int, start, period, at int64) store.Decision {
	return store.Decision{Count: count, RetryAfter: time.Duration(start+period-at) * time.Millisecond}
}

func (t txn) ResetAttempts(ctx context.Context, key string) error {
	if err := t.x.execLater(ctx, `DELETE FROM attempts WHERE key = ?`, key); err != nil {
		return fmt.Errorf("reset attempts: %w", err)
	}
	return nil
}

func (t txn) RefundAttempt(ctx context.Context, key string) error {
	if err := t.x.execLater(ctx, `UPDATE attempts SET count = count - 1 WHERE key = ? AND count > 0`, key); err != nil {
		return fmt.Errorf("refund attempt: %w", err)
	}
	return nil
}

// CheckPair is the decision of ReserveWindow on windowKey and then ReserveBackoff on
// backoffKey, without counting either attempt: the caller counts it (by reserving) only if
// the code it lets through fails. A transaction that runs alone may do this, as nothing can
// count an attempt between its read and its commit, and a success then writes nothing to
// the budgets. An empty windowKey has no window.
func (t serialTxn) CheckPair(ctx context.Context, windowKey string, w store.Window, backoffKey string, b store.Backoff, now time.Time) (window, backoff store.Decision, err error) {
	var wCount, bCount int
	var wStart, bBlocked int64
	// One row always: a budget without a row is one that never counted an attempt.
	err = t.x.queryRow(ctx, `SELECT COALESCE(w.count, 0), COALESCE(w.window_start, 0), COALESCE(b.count, 0), COALESCE(b.blocked_until, 0)
		FROM (SELECT 1) AS one
		LEFT JOIN attempts w ON w.key = ?
		LEFT JOIN attempts b ON b.key = ?`, windowKey, backoffKey).Scan(&wCount, &wStart, &bCount, &bBlocked)
	if err != nil {
		return window, backoff, fmt.Errorf("check attempts: %w", err)
	}
	// The conditions are those of the upserts' WHERE clauses, and the counts what they return.
	at := ms(now)
	switch period := w.Period.Milliseconds(); {
	case windowKey == "" || wStart+period <= at:
		window = store.Decision{Allowed: true, Count: 1}
	case wCount < w.Limit:
		window = store.Decision{Allowed: true, Count: wCount + 1}
	default:
		return windowRefusal(wCount, wStart, period, at), backoff, nil
	}
	if bBlocked <= at && bCount < b.LockAfter {
		return window, store.Decision{Allowed: true, Count: bCount + 1}, nil
	}
	return window, backoffRefusal(bCount, bBlocked, now, b), nil
}
