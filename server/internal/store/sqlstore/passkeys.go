package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

func (s *DB) UserHandle(ctx context.Context, appID, user string, candidate []byte) ([]byte, error) {
	// Read first: every passkey ceremony asks, and only a user's first needs the write
	// (on SQLite a durable commit of its own, even when it inserts nothing).
	const read = `SELECT handle FROM webauthn_users WHERE app_id = ? AND user_id = ?`
	var h []byte
	err := s.queryRow(ctx, read, appID, user).Scan(&h)
	if !errors.Is(err, sql.ErrNoRows) {
		return h, err
	}
	if _, err := s.exec(ctx, `INSERT INTO webauthn_users (app_id, user_id, handle) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, appID, user, candidate); err != nil {
		return nil, fmt.Errorf("user handle: %w", err)
	}
	err = s.queryRow(ctx, read, appID, user).Scan(&h)
	return h, notFound(err)
}

func (s *DB) UserOfHandle(ctx context.Context, appID string, handle []byte) (string, error) {
	var u string
	err := s.queryRow(ctx, `SELECT user_id FROM webauthn_users WHERE app_id = ? AND handle = ?`, appID, handle).Scan(&u)
	return u, notFound(err)
}

const passkeyColumns = `id, app_id, user_id, label, data, sign_count, aaguid, transports, backup_eligible, backup_state, created_at, last_used_at`

func scanPasskey(row interface{ Scan(...any) error }) (store.Passkey, error) {
	var p store.Passkey
	var be, bs int
	var created, used int64
	err := row.Scan(&p.ID, &p.AppID, &p.User, &p.Label, &p.Data, &p.SignCount, &p.AAGUID, &p.Transports, &be, &bs, &created, &used)
	p.BackupEligible, p.BackupState = be == 1, bs == 1
	p.CreatedAt, p.LastUsedAt = fromMS(created), fromMS(used)
	return p, err
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (t txn) AddPasskey(ctx context.Context, p store.Passkey) error {
	res, err := t.x.exec(ctx, `INSERT INTO passkeys (`+passkeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		p.ID, p.AppID, p.User, p.Label, p.Data, p.SignCount, p.AAGUID, p.Transports, bit(p.BackupEligible), bit(p.BackupState), ms(p.CreatedAt), ms(p.LastUsedAt))
	if err != nil {
		return fmt.Errorf("add passkey: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrConflict
	}
	return nil
}

func (s *DB) Passkey(ctx context.Context, appID, id string) (store.Passkey, error) {
	p, err := scanPasskey(s.queryRow(ctx, `SELECT `+passkeyColumns+` FROM passkeys WHERE app_id = ? AND id = ?`, appID, id))
	return p, notFound(err)
}

func (s *DB) PasskeysOfUser(ctx context.Context, appID, user string) ([]store.Passkey, error) {
	rows, err := s.query(ctx, `SELECT `+passkeyColumns+` FROM passkeys WHERE app_id = ? AND user_id = ? ORDER BY created_at, id`, appID, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (t txn) UsePasskey(ctx context.Context, id string, oldCount, newCount int64, data []byte, now time.Time) (bool, error) {
	res, err := t.x.exec(ctx, `UPDATE passkeys SET sign_count = ?, data = ?, last_used_at = ? WHERE id = ? AND sign_count = ?`, newCount, data, ms(now), id, oldCount)
	if err != nil {
		return false, fmt.Errorf("use passkey: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t txn) DeletePasskey(ctx context.Context, appID, user, id string) error {
	res, err := t.x.exec(ctx, `DELETE FROM passkeys WHERE app_id = ? AND user_id = ? AND id = ?`, appID, user, id)
	if err != nil {
		return fmt.Errorf("delete passkey: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t txn) LockFactors(ctx context.Context, appID, user string) (totps, passkeys int, err error) {
	err = t.x.inTx(ctx, func(w *writeTx) error {
		if err := lockUser(w, appID, user); err != nil {
			return err
		}
		// A statement of its own after the lock: it sees what the user's last holder wrote.
		return w.queryRow(`SELECT (SELECT COUNT(*) FROM totp_credentials WHERE app_id = ? AND user_id = ? AND confirmed = 1),
			(SELECT COUNT(*) FROM passkeys WHERE app_id = ? AND user_id = ?)`, appID, user, appID, user).Scan(&totps, &passkeys)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("lock factors: %w", err)
	}
	return totps, passkeys, nil
}

func (t txn) HoldTicket(ctx context.Context, appID, user string, hash []byte) (store.Ticket, error) {
	var ts ticketScan
	err := t.x.inTx(ctx, func(w *writeTx) error {
		if err := lockUser(w, appID, user); err != nil {
			return err
		}
		// A statement of its own after the lock: it sees what the user's last holder wrote.
		return w.queryRow(`SELECT `+ticketColumns+` FROM tickets WHERE hash = ? AND app_id = ? AND user_id = ?`, hash, appID, user).Scan(ts.dest()...)
	})
	if err != nil {
		return store.Ticket{}, fmt.Errorf("hold ticket: %w", notFound(err))
	}
	return ts.done(hash), nil
}

// ceremoniesPerTicket bounds the ceremonies one ticket keeps open. A page needs one or two
// (an autofill prompt beside a button's); without a bound, anyone holding a ticket could
// add rows as fast as they can ask until the sweep.
const ceremoniesPerTicket = 8

func (s *DB) PutCeremony(ctx context.Context, c store.Ceremony) error {
	err := s.inTx(ctx, func(w *writeTx) error {
		if _, err := w.exec(`INSERT INTO ceremonies (challenge, kind, app_id, user_id, ticket_hash, session, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.Challenge, c.Kind, c.AppID, c.User, c.TicketHash, c.Session, ms(c.ExpiresAt)); err != nil {
			return err
		}
		_, err := w.exec(`DELETE FROM ceremonies WHERE ticket_hash = ? AND challenge NOT IN
			(SELECT challenge FROM ceremonies WHERE ticket_hash = ? ORDER BY expires_at DESC, challenge LIMIT ?)`,
			c.TicketHash, c.TicketHash, ceremoniesPerTicket)
		return err
	})
	if err != nil {
		return fmt.Errorf("put ceremony: %w", err)
	}
	return nil
}

const ceremonyColumns = `kind, app_id, user_id, ticket_hash, session, expires_at`

func (s *DB) Ceremony(ctx context.Context, challenge string) (store.Ceremony, error) {
	return scanCeremony(challenge, s.queryRow(ctx, `SELECT `+ceremonyColumns+` FROM ceremonies WHERE challenge = ?`, challenge).Scan)
}

func (t txn) TakeCeremony(ctx context.Context, challenge string, now time.Time) (store.Ceremony, error) {
	c, err := scanCeremony(challenge, func(dest ...any) error {
		return t.x.writeRow(ctx, `DELETE FROM ceremonies WHERE challenge = ? RETURNING `+ceremonyColumns, []any{challenge}, dest...)
	})
	if err == nil && !now.Before(c.ExpiresAt) {
		return store.Ceremony{}, store.ErrNotFound
	}
	return c, err
}

func scanCeremony(challenge string, scan func(dest ...any) error) (store.Ceremony, error) {
	c := store.Ceremony{Challenge: challenge}
	var expires int64
	if err := scan(&c.Kind, &c.AppID, &c.User, &c.TicketHash, &c.Session, &expires); err != nil {
		return store.Ceremony{}, notFound(err)
	}
	c.ExpiresAt = fromMS(expires)
	return c, nil
}

func (s *DB) UserPolicy(ctx context.Context, appID, user string) (string, error) {
	var p string
	err := s.queryRow(ctx, `SELECT policy FROM user_policies WHERE app_id = ? AND user_id = ?`, appID, user).Scan(&p)
	if err != nil && notFound(err) == store.ErrNotFound {
		return "", nil
	}
	return p, err
}

func (s *DB) SetUserPolicy(ctx context.Context, appID, user, policy string) error {
	if _, err := s.exec(ctx, `INSERT INTO user_policies (app_id, user_id, policy) VALUES (?, ?, ?) ON CONFLICT (app_id, user_id) DO UPDATE SET policy = excluded.policy`, appID, user, policy); err != nil {
		return fmt.Errorf("set user policy: %w", err)
	}
	return nil
}

func (t txn) DeleteTOTPsOfUser(ctx context.Context, appID, user string) ([]string, error) {
	var confirmed []string
	err := t.x.inTx(ctx, func(w *writeTx) error {
		rows, err := w.query(`DELETE FROM totp_credentials WHERE app_id = ? AND user_id = ? RETURNING id, confirmed`, appID, user)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var c int
			if err := rows.Scan(&id, &c); err != nil {
				rows.Close()
				return err
			}
			if c == 1 {
				confirmed = append(confirmed, id)
			}
		}
		return errors.Join(rows.Err(), rows.Close())
	})
	if err != nil {
		return nil, fmt.Errorf("delete totp credentials: %w", err)
	}
	slices.Sort(confirmed)
	return confirmed, nil
}
