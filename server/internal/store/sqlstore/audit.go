package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// auditLock is an arbitrary constant naming the PostgreSQL advisory lock that serialises
// chaining across instances.
const auditLock = 0x7466_6175_6474

// chainBatch bounds the records one transaction chains.
const chainBatch = 256

// queues reports whether audit records are queued and chained later rather than chained
// in the transaction that records them: only where transactions run side by side
// (PostgreSQL), which would otherwise all wait on the chain's lock. Where one writer runs
// them in turn (SQLite's group commit), a queue would only add writes to that writer.
func (s *DB) queues() bool { return s.gc == nil }

func (t txn) QueueAudit(ctx context.Context, r store.AuditRecord, notify bool) error {
	if !t.s.queues() {
		err := t.x.inTx(ctx, func(w *writeTx) error {
			head, err := t.s.lockChain(w)
			if err != nil {
				return err
			}
			return head.append(w, &r, notify)
		})
		if err != nil {
			return fmt.Errorf("queue audit: %w", err)
		}
		return nil
	}
	err := t.x.execLater(ctx, `INSERT INTO audit_queue (at, kind, app_id, user_id, factor, ip, user_agent, outcome, detail, notify)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ms(r.At), r.Kind, r.AppID, r.User, r.Factor, r.IP, r.UserAgent, r.Outcome, r.Detail, boolInt(notify))
	if err != nil {
		return fmt.Errorf("queue audit: %w", err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *DB) AppendAudit(ctx context.Context, r store.AuditRecord, notify bool) (store.AuditRecord, error) {
	err := s.inTx(ctx, func(w *writeTx) error {
		head, err := s.lockChain(w)
		if err != nil {
			return err
		}
		// Records queued before r are chained first, so r comes after them.
		for n := chainBatch; s.queues() && n == chainBatch; {
			if n, err = chainQueued(w, &head); err != nil {
				return err
			}
		}
		return head.append(w, &r, notify)
	})
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("append audit: %w", err)
	}
	return r, nil
}

// chain moves every queued record into the chain, oldest first, chainBatch per
// transaction.
func (s *DB) chain(ctx context.Context) error {
	if !s.queues() {
		return nil
	}
	var queued bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_queue)`).Scan(&queued); err != nil || !queued {
		return err
	}
	for n := chainBatch; n == chainBatch; {
		err := s.inTx(ctx, func(w *writeTx) error {
			head, err := s.lockChain(w)
			if err == nil {
				n, err = chainQueued(w, &head)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("chain audit: %w", err)
		}
	}
	return nil
}

// lockChain makes w the only transaction that chains and returns the chain's last record.
// SQLite runs one writer at a time (and, within this process, writes one after another in
// the group commit); PostgreSQL needs the advisory lock, since two transactions could
// otherwise both read the same last record.
func (s *DB) lockChain(w *writeTx) (chainHead, error) {
	if s.d.Name == "postgres" {
		if _, err := w.exec(`SELECT pg_advisory_xact_lock(?)`, auditLock); err != nil {
			return chainHead{}, fmt.Errorf("lock: %w", err)
		}
	}
	var h chainHead
	err := w.queryRow(`SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&h.id, &h.hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return chainHead{}, err
	}
	return h, nil
}

// chainQueued chains up to chainBatch queued records, in the order of their queue
// numbers, and reports how many. It deletes exactly those it read: a record whose
// transaction commits meanwhile (with a lower number, on PostgreSQL) waits for the next.
func chainQueued(w *writeTx, head *chainHead) (int, error) {
	rows, err := w.query(`SELECT seq, at, kind, app_id, user_id, factor, ip, user_agent, outcome, detail, notify <> 0
		FROM audit_queue ORDER BY seq LIMIT ` + strconv.Itoa(chainBatch))
	if err != nil {
		return 0, err
	}
	type queued struct {
		seq    int64
		r      store.AuditRecord
		notify bool
	}
	var batch []queued
	for rows.Next() {
		var q queued
		var at int64
		if err := rows.Scan(&q.seq, &at, &q.r.Kind, &q.r.AppID, &q.r.User, &q.r.Factor, &q.r.IP, &q.r.UserAgent, &q.r.Outcome, &q.r.Detail, &q.notify); err != nil {
			rows.Close()
			return 0, err
		}
		q.r.At = fromMS(at)
		batch = append(batch, q)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	seqs := make([]int64, len(batch))
	for i, q := range batch {
		if err := head.append(w, &q.r, q.notify); err != nil {
			return 0, err
		}
		seqs[i] = q.seq
	}
	// One statement, not one per record: the chain's lock is held meanwhile. Only
	// PostgreSQL queues (queues), so its array parameter serves.
	if _, err := w.exec(`DELETE FROM audit_queue WHERE seq = ANY(?)`, seqs); err != nil {
		return 0, err
	}
	return len(batch), nil
}

// chainHead is the last record of the chain, which the next one hashes in.
type chainHead struct {
	id   int64
	hash []byte
}

// append makes r the record after h, and h r.
func (h *chainHead) append(w *writeTx, r *store.AuditRecord, notify bool) error {
	r.ID, r.PrevHash = h.id+1, h.hash
	if r.PrevHash == nil {
		r.PrevHash = []byte{}
	}
	r.At = fromMS(ms(r.At)) // the precision stored is the precision hashed
	r.Hash = r.Digest()
	// Nothing reads these inserts' results: on PostgreSQL a batch of queued records goes out
	// in one round trip, with the DELETE that ends it, rather than one per record while the
	// chain's lock is held.
	if err := w.execLater(`INSERT INTO audit_log (id, at, kind, app_id, user_id, factor, ip, user_agent, outcome, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, ms(r.At), r.Kind, r.AppID, r.User, r.Factor, r.IP, r.UserAgent, r.Outcome, r.Detail, r.PrevHash, r.Hash); err != nil {
		return err
	}
	if notify && r.AppID != "" {
		if err := w.execLater(`INSERT INTO webhook_deliveries (app_id, audit_id, next_at) SELECT app_id, ?, ? FROM webhooks WHERE app_id = ?`,
			r.ID, ms(r.At), r.AppID); err != nil {
			return fmt.Errorf("queue webhook: %w", err)
		}
	}
	h.id, h.hash = r.ID, r.Hash
	return nil
}

const auditColumns = `id, at, kind, app_id, user_id, factor, ip, user_agent, outcome, detail, prev_hash, hash`

func scanAudit(row interface{ Scan(...any) error }) (store.AuditRecord, error) {
	var r store.AuditRecord
	var at int64
	err := row.Scan(&r.ID, &at, &r.Kind, &r.AppID, &r.User, &r.Factor, &r.IP, &r.UserAgent, &r.Outcome, &r.Detail, &r.PrevHash, &r.Hash)
	r.At = fromMS(at)
	return r, err
}

func (s *DB) AuditRecords(ctx context.Context, f store.AuditFilter, fn func(store.AuditRecord) error) error {
	if err := s.chain(ctx); err != nil {
		return fmt.Errorf("audit records: %w", err)
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.AppID != "" {
		add("app_id = ?", f.AppID)
	}
	if f.User != "" {
		add("user_id = ?", f.User)
	}
	if !f.Since.IsZero() {
		add("at >= ?", ms(f.Since))
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	order := ` ORDER BY id`
	if f.Newest > 0 {
		order = ` ORDER BY id DESC LIMIT ` + strconv.Itoa(f.Newest)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+order), args...)
	if err != nil {
		return fmt.Errorf("audit records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("audit records: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (s *DB) SetAdminApp(ctx context.Context, appID string, scope ...string) error {
	err := s.inTx(ctx, func(w *writeTx) error {
		if err := appExists(w, appID); err != nil {
			return err
		}
		if _, err := w.exec(`INSERT INTO admin_apps (app_id) VALUES (?) ON CONFLICT DO NOTHING`, appID); err != nil {
			return err
		}
		for _, app := range scope {
			if err := appExists(w, app); err != nil {
				return err
			}
			if _, err := w.exec(`INSERT INTO admin_scopes (admin_app_id, app_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, appID, app); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set admin app %s: %w", appID, err)
	}
	return nil
}

func appExists(w *writeTx, id string) error {
	var found string
	if err := w.queryRow(`SELECT id FROM apps WHERE id = ?`, id).Scan(&found); err != nil {
		return fmt.Errorf("app %s: %w", id, notFound(err))
	}
	return nil
}

func (s *DB) IsAdminApp(ctx context.Context, appID string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM admin_apps WHERE app_id = ?`), appID).Scan(&n)
	return n > 0, err
}

func (s *DB) AdminMayReset(ctx context.Context, adminApp, app string) (bool, error) {
	var scoped, listed int
	err := s.queryRow(ctx, `SELECT COUNT(*), COUNT(CASE WHEN app_id = ? THEN 1 END) FROM admin_scopes WHERE admin_app_id = ?`, app, adminApp).Scan(&scoped, &listed)
	return scoped == 0 || listed > 0, err
}

func (s *DB) PutWebhook(ctx context.Context, w store.Webhook) error {
	_, err := s.exec(ctx, `INSERT INTO webhooks (app_id, url, sealed, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (app_id) DO UPDATE SET url = excluded.url, sealed = excluded.sealed, created_at = excluded.created_at`,
		w.AppID, w.URL, w.Sealed, ms(w.CreatedAt))
	if err != nil {
		if _, appErr := s.App(ctx, w.AppID); errors.Is(appErr, store.ErrNotFound) {
			return fmt.Errorf("put webhook: %w", store.ErrNotFound)
		}
		return fmt.Errorf("put webhook: %w", err)
	}
	return nil
}

func (s *DB) Webhook(ctx context.Context, appID string) (store.Webhook, error) {
	w := store.Webhook{AppID: appID}
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT url, sealed, created_at FROM webhooks WHERE app_id = ?`), appID).Scan(&w.URL, &w.Sealed, &created)
	if err != nil {
		return store.Webhook{}, notFound(err)
	}
	w.CreatedAt = fromMS(created)
	return w, nil
}

func (s *DB) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, max int) ([]store.Delivery, error) {
	// The outer condition is checked again on each row as it is updated (PostgreSQL
	// re-reads a row another transaction changed first; SQLite runs writers one at a time),
	// so a delivery claimed meanwhile is skipped rather than claimed twice.
	if err := s.chain(ctx); err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	var out []store.Delivery
	err := s.inTx(ctx, func(w *writeTx) error {
		out = out[:0]
		rows, err := w.query(`UPDATE webhook_deliveries SET claimed_until = ?, attempts = attempts + 1
		WHERE id IN (SELECT id FROM webhook_deliveries WHERE done_at = 0 AND next_at <= ? AND claimed_until <= ? ORDER BY id LIMIT ?)
			AND done_at = 0 AND claimed_until <= ?
		RETURNING id, attempts, app_id, audit_id`, ms(now.Add(lease)), ms(now), ms(now), max, ms(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d store.Delivery
			if err := rows.Scan(&d.ID, &d.Attempts, &d.Webhook.AppID, &d.Record.ID); err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	for i := range out {
		d := &out[i]
		w, err := s.Webhook(ctx, d.Webhook.AppID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		// A webhook removed since leaves Webhook.URL empty; the caller gives the delivery up.
		if err == nil {
			d.Webhook = w
		}
		r, err := scanAudit(s.db.QueryRowContext(ctx, s.q(`SELECT `+auditColumns+` FROM audit_log WHERE id = ?`), d.Record.ID))
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("claim deliveries: %w", err)
		}
		if err == nil {
			d.Record = r
		}
	}
	return out, nil
}

func (s *DB) DeliveryDone(ctx context.Context, id int64, now time.Time) error {
	_, err := s.exec(ctx, `UPDATE webhook_deliveries SET done_at = ?, delivered = 1, claimed_until = 0, last_error = '' WHERE id = ?`, ms(now), id)
	if err != nil {
		return fmt.Errorf("delivery done: %w", err)
	}
	return nil
}

func (s *DB) DeliveryFailed(ctx context.Context, id int64, attempt int, next time.Time, lastError string, giveUp bool) error {
	done := int64(0)
	if giveUp {
		done = ms(next)
	}
	// Only the latest claim's, while not done: a sender whose lease ran out may report after
	// another claimed the delivery again (each claim counts an attempt) or delivered it.
	_, err := s.exec(ctx, `UPDATE webhook_deliveries SET next_at = ?, claimed_until = 0, done_at = ?, last_error = ?
		WHERE id = ? AND attempts = ? AND done_at = 0`, ms(next), done, lastError, id, attempt)
	if err != nil {
		return fmt.Errorf("delivery failed: %w", err)
	}
	return nil
}

func (t txn) ResetUserFactors(ctx context.Context, appID, user string) (store.FactorsRemoved, error) {
	var out store.FactorsRemoved
	// The user first, as every change of a user's factors does, so that none of them can
	// deadlock with it on PostgreSQL. The first statement of each pair counts what was in
	// use.
	steps := []struct {
		query string
		count *int
	}{
		{`DELETE FROM totp_credentials WHERE app_id = ? AND user_id = ? AND confirmed = 1`, &out.TOTP},
		{`DELETE FROM totp_credentials WHERE app_id = ? AND user_id = ?`, nil},
		{`DELETE FROM recovery_codes WHERE app_id = ? AND user_id = ? AND used_at = 0`, &out.RecoveryCodes},
		{`DELETE FROM recovery_codes WHERE app_id = ? AND user_id = ?`, nil},
		{`DELETE FROM passkeys WHERE app_id = ? AND user_id = ?`, &out.Passkeys},
		// A ticket issued before the reset, elevated or not, must not set up the new
		// factors: whoever held it may be who the reset is against.
		{`DELETE FROM tickets WHERE app_id = ? AND user_id = ?`, nil},
	}
	err := t.x.inTx(ctx, func(w *writeTx) error {
		if err := lockUser(w, appID, user); err != nil {
			return err
		}
		for _, st := range steps {
			res, err := w.exec(st.query, appID, user)
			if err != nil {
				return err
			}
			if st.count != nil {
				n, _ := res.RowsAffected()
				*st.count = int(n)
			}
		}
		return nil
	})
	if err != nil {
		return store.FactorsRemoved{}, fmt.Errorf("reset user factors: %w", err)
	}
	return out, nil
}
