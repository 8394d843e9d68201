// Package sqlstore implements store.Store once, in SQL that SQLite and PostgreSQL both
// speak, over database/sql. Each backend package supplies the driver, its migrations and a
// Dialect; the semantics cannot drift because the statements are the same.
package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Dialect is what differs between backends.
type Dialect struct {
	Name string
	// Placeholders rewrites the `?` placeholders of a statement for the driver.
	Placeholders func(string) string
	// Migrations holds NNNN_name.sql files applied in order, each once.
	Migrations fs.FS
	// LockMigrations serialises migrations between processes starting together; it runs
	// inside the migration transaction.
	LockMigrations func(ctx context.Context, tx *sql.Tx) error
}

// DollarPlaceholders turns `?` into `$1`, `$2`, ... for PostgreSQL.
func DollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// DB is a store.Store on a SQL database.
type DB struct {
	db    *sql.DB
	d     Dialect
	stmts sync.Map // query → *sql.Stmt
}

var _ store.Store = (*DB)(nil)

// New runs pending migrations and returns the store.
func New(ctx context.Context, db *sql.DB, d Dialect) (*DB, error) {
	s := &DB{db: db, d: d}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// SQL exposes the handle for backend-specific tooling (bulk seeding, tests).
func (s *DB) SQL() *sql.DB { return s.db }

func (s *DB) q(query string) string {
	if s.d.Placeholders == nil {
		return query
	}
	return s.d.Placeholders(query)
}

// prepared returns the statement for query, prepared once: SQLite would otherwise parse
// every statement of every request again, a third of a verification's CPU.
func (s *DB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (s *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is QueryRowContext on a prepared statement; a preparation error surfaces from
// Scan, as database/sql's own QueryRow does.
func (s *DB) queryRow(ctx context.Context, query string, args ...any) row {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

type row interface{ Scan(...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (s *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(s.d.Migrations, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", s.d.Name, err)
	}
	defer tx.Rollback()
	if s.d.LockMigrations != nil {
		if err := s.d.LockMigrations(ctx, tx); err != nil {
			return fmt.Errorf("migrate %s: lock: %w", s.d.Name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate %s: %w", s.d.Name, err)
	}
	for _, name := range names {
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate %s: bad file name %q", s.d.Name, name)
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
			return fmt.Errorf("migrate %s: %w", s.d.Name, err)
		}
		if n > 0 {
			continue
		}
		body, err := fs.ReadFile(s.d.Migrations, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("migrate %s: %s: %w", s.d.Name, name, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), version, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migrate %s: %w", s.d.Name, err)
		}
	}
	return tx.Commit()
}

// Times are stored as Unix milliseconds, 0 meaning unset, so both dialects store the same.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

func (s *DB) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
func (s *DB) Close() error {
	s.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

func (s *DB) CreateApp(ctx context.Context, a store.App) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if a.PasskeyPolicy == "" {
		a.PasskeyPolicy = store.PolicyTOTPFallback
	}
	a.UserVerification = cmp.Or(a.UserVerification, "required")
	a.Attestation = cmp.Or(a.Attestation, "none")
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO apps (id, name, api_key_hash, signing_alg, created_at, rp_id, passkey_policy, user_verification, attestation, aaguids)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		a.ID, a.Name, a.APIKeyHash, a.SigningAlg, ms(a.CreatedAt), a.RPID, a.PasskeyPolicy, a.UserVerification, a.Attestation, strings.Join(a.AAGUIDs, ","))
	if err != nil {
		return fmt.Errorf("create app: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrConflict
	}
	for _, o := range a.Origins {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO app_origins (app_id, origin) VALUES (?, ?) ON CONFLICT DO NOTHING`), a.ID, o); err != nil {
			return fmt.Errorf("create app: %w", err)
		}
	}
	return tx.Commit()
}

func (s *DB) App(ctx context.Context, id string) (store.App, error) {
	a := store.App{ID: id}
	var created int64
	var aaguids string
	err := s.queryRow(ctx, `SELECT name, api_key_hash, signing_alg, created_at, rp_id, passkey_policy, user_verification, attestation, aaguids FROM apps WHERE id = ?`, id).
		Scan(&a.Name, &a.APIKeyHash, &a.SigningAlg, &created, &a.RPID, &a.PasskeyPolicy, &a.UserVerification, &a.Attestation, &aaguids)
	if err != nil {
		return store.App{}, notFound(err)
	}
	if aaguids != "" {
		a.AAGUIDs = strings.Split(aaguids, ",")
	}
	a.CreatedAt = fromMS(created)
	rows, err := s.query(ctx, `SELECT origin FROM app_origins WHERE app_id = ? ORDER BY origin`, id)
	if err != nil {
		return store.App{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var o string
		if err := rows.Scan(&o); err != nil {
			return store.App{}, err
		}
		a.Origins = append(a.Origins, o)
	}
	return a, rows.Err()
}

func (s *DB) OriginKnown(ctx context.Context, origin string) (bool, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM app_origins WHERE origin = ?`, origin).Scan(&n)
	return n > 0, err
}

func (s *DB) CreateTicket(ctx context.Context, t store.Ticket) error {
	_, err := s.exec(ctx, `INSERT INTO tickets (hash, app_id, user_id, nonce, created_at, expires_at, elevated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.Hash, t.AppID, t.User, t.Nonce, ms(t.CreatedAt), ms(t.ExpiresAt), ms(t.ElevatedAt))
	if err != nil {
		return fmt.Errorf("create ticket: %w", err)
	}
	return nil
}

func (s *DB) Ticket(ctx context.Context, hash []byte) (store.Ticket, error) {
	t := store.Ticket{Hash: hash}
	var created, expires, elevated int64
	err := s.queryRow(ctx, `SELECT app_id, user_id, nonce, created_at, expires_at, elevated_at, elevated_by FROM tickets WHERE hash = ?`, hash).
		Scan(&t.AppID, &t.User, &t.Nonce, &created, &expires, &elevated, &t.ElevatedBy)
	if err != nil {
		return store.Ticket{}, notFound(err)
	}
	t.CreatedAt, t.ExpiresAt, t.ElevatedAt = fromMS(created), fromMS(expires), fromMS(elevated)
	return t, nil
}

func (s *DB) ElevateTicket(ctx context.Context, hash []byte, at time.Time, by string) error {
	_, err := s.exec(ctx, `UPDATE tickets SET elevated_at = ?, elevated_by = ? WHERE hash = ? AND elevated_at = 0`, ms(at), by, hash)
	return err
}

const totpColumns = `id, app_id, user_id, label, sealed, algorithm, digits, period, last_step, confirmed, expires_at, created_at, last_used_at, drift, last_offset, replaces`

func scanTOTP(row interface{ Scan(...any) error }) (store.TOTPCredential, error) {
	var c store.TOTPCredential
	var confirmed int
	var expires, created, used int64
	err := row.Scan(&c.ID, &c.AppID, &c.User, &c.Label, &c.Sealed, &c.Algorithm, &c.Digits, &c.Period, &c.LastStep, &confirmed, &expires, &created, &used, &c.Steps, &c.LastOffset, &c.Replaces)
	c.Confirmed = confirmed == 1
	c.ExpiresAt, c.CreatedAt, c.LastUsedAt = fromMS(expires), fromMS(created), fromMS(used)
	return c, err
}

func (s *DB) CreateTOTP(ctx context.Context, c store.TOTPCredential) error {
	confirmed := 0
	if c.Confirmed {
		confirmed = 1
	}
	_, err := s.exec(ctx, `INSERT INTO totp_credentials (`+totpColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.AppID, c.User, c.Label, c.Sealed, c.Algorithm, c.Digits, c.Period, c.LastStep, confirmed, ms(c.ExpiresAt), ms(c.CreatedAt), ms(c.LastUsedAt), c.Steps, c.LastOffset, c.Replaces)
	if err != nil {
		return fmt.Errorf("create totp credential: %w", err)
	}
	return nil
}

func (s *DB) TOTP(ctx context.Context, id string) (store.TOTPCredential, error) {
	c, err := scanTOTP(s.queryRow(ctx, `SELECT `+totpColumns+` FROM totp_credentials WHERE id = ?`, id))
	return c, notFound(err)
}

func (s *DB) TOTPsOfUser(ctx context.Context, appID, user string) ([]store.TOTPCredential, error) {
	rows, err := s.query(ctx, `SELECT `+totpColumns+` FROM totp_credentials WHERE app_id = ? AND user_id = ? AND confirmed = 1 ORDER BY created_at, id`, appID, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.TOTPCredential
	for rows.Next() {
		c, err := scanTOTP(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *DB) ConfirmTOTP(ctx context.Context, id string, step int64, now time.Time, recoveryHashes [][]byte, replaces string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Lock every credential row of the user first, so confirmations of two enrollments of one
	// user run one after the other. Otherwise, on PostgreSQL, neither DELETE below sees the
	// codes the other is inserting and the user keeps both sets.
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE totp_credentials SET label = label
		WHERE (app_id, user_id) = (SELECT app_id, user_id FROM totp_credentials WHERE id = ?)`), id); err != nil {
		return fmt.Errorf("confirm totp: %w", err)
	}
	var appID, user string
	err = tx.QueryRowContext(ctx, s.q(`UPDATE totp_credentials SET confirmed = 1, last_step = ?, expires_at = 0, last_used_at = ?
		WHERE id = ? AND confirmed = 0 AND expires_at > ? RETURNING app_id, user_id`), step, ms(now), id, ms(now)).Scan(&appID, &user)
	if err != nil {
		return fmt.Errorf("confirm totp: %w", notFound(err))
	}
	if replaces != "" && replaces != id {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM totp_credentials WHERE id = ? AND app_id = ? AND user_id = ?`), replaces, appID, user); err != nil {
			return fmt.Errorf("confirm totp: %w", err)
		}
	}
	if len(recoveryHashes) > 0 {
		if err := s.replaceCodes(ctx, tx, appID, user, recoveryHashes, now); err != nil {
			return fmt.Errorf("confirm totp: %w", err)
		}
	}
	return tx.Commit()
}

func (s *DB) replaceCodes(ctx context.Context, tx *sql.Tx, appID, user string, hashes [][]byte, now time.Time) error {
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM recovery_codes WHERE app_id = ? AND user_id = ?`), appID, user); err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO recovery_codes (app_id, user_id, hash, created_at) VALUES (?, ?, ?, ?)`), appID, user, h, ms(now)); err != nil {
			return err
		}
	}
	return nil
}

func (s *DB) ReplaceRecoveryCodes(ctx context.Context, appID, user string, hashes [][]byte, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.replaceCodes(ctx, tx, appID, user, hashes, now); err != nil {
		return fmt.Errorf("replace recovery codes: %w", err)
	}
	return tx.Commit()
}

func (s *DB) DeleteTOTP(ctx context.Context, appID, user, id string) error {
	res, err := s.exec(ctx, `DELETE FROM totp_credentials WHERE id = ? AND app_id = ? AND user_id = ? AND confirmed = 1`, id, appID, user)
	if err != nil {
		return fmt.Errorf("delete totp: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (s *DB) AdvanceTOTP(ctx context.Context, id string, step int64, now time.Time, d store.Drift) (bool, error) {
	res, err := s.exec(ctx, `UPDATE totp_credentials SET last_step = ?, last_used_at = ?, drift = ?, last_offset = ? WHERE id = ? AND confirmed = 1 AND last_step < ?`, step, ms(now), d.Steps, d.LastOffset, id, step)
	if err != nil {
		return false, fmt.Errorf("advance totp: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *DB) ConsumeRecoveryCode(ctx context.Context, appID, user string, hash []byte, now time.Time) (bool, error) {
	res, err := s.exec(ctx, `UPDATE recovery_codes SET used_at = ? WHERE app_id = ? AND user_id = ? AND hash = ? AND used_at = 0`, ms(now), appID, user, hash)
	if err != nil {
		return false, fmt.Errorf("consume recovery code: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *DB) RecoveryCodesLeft(ctx context.Context, appID, user string) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE app_id = ? AND user_id = ? AND used_at = 0`, appID, user).Scan(&n)
	return n, err
}

func (s *DB) AddSigningKey(ctx context.Context, k store.SigningKey, replace bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if replace {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE signing_keys SET retired_at = ? WHERE alg = ? AND retired_at = 0`), ms(k.CreatedAt), k.Alg); err != nil {
			return fmt.Errorf("add signing key: %w", err)
		}
	}
	// The partial unique index on active keys makes a second active key of one algorithm a
	// conflict, so instances that generate a first key together keep exactly one.
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO signing_keys (kid, alg, sealed, created_at, retired_at) VALUES (?, ?, ?, ?, 0) ON CONFLICT DO NOTHING`),
		k.KID, k.Alg, k.Sealed, ms(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("add signing key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return store.ErrConflict
	}
	return tx.Commit()
}

func (s *DB) SigningKeys(ctx context.Context, retiredAfter time.Time) ([]store.SigningKey, error) {
	rows, err := s.query(ctx, `SELECT kid, alg, sealed, created_at, retired_at FROM signing_keys WHERE retired_at = 0 OR retired_at > ? ORDER BY created_at, kid`, ms(retiredAfter))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var created, retired int64
		if err := rows.Scan(&k.KID, &k.Alg, &k.Sealed, &created, &retired); err != nil {
			return nil, err
		}
		k.CreatedAt, k.RetiredAt = fromMS(created), fromMS(retired)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *DB) Secret(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, `SELECT sealed FROM secrets WHERE name = ?`, name).Scan(&v)
	return v, notFound(err)
}

func (s *DB) PutSecret(ctx context.Context, name string, sealed []byte) ([]byte, error) {
	if _, err := s.exec(ctx, `INSERT INTO secrets (name, sealed) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, sealed); err != nil {
		return nil, fmt.Errorf("put secret: %w", err)
	}
	return s.Secret(ctx, name)
}

// sealedTables maps a store.Sealed kind to where it lives.
var sealedTables = map[string]struct{ table, id, owner string }{
	"totp":        {"totp_credentials", "id", "app_id, user_id"},
	"signing_key": {"signing_keys", "kid", "'', ''"},
	"secret":      {"secrets", "name", "'', ''"},
	"webhook":     {"webhooks", "app_id", "'', ''"},
}

func (s *DB) SealedValues(ctx context.Context) ([]store.Sealed, error) {
	var out []store.Sealed
	for _, kind := range []string{"totp", "signing_key", "secret", "webhook"} {
		t := sealedTables[kind]
		rows, err := s.db.QueryContext(ctx, `SELECT `+t.id+`, `+t.owner+`, sealed FROM `+t.table)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			v := store.Sealed{Kind: kind}
			if err := rows.Scan(&v.ID, &v.AppID, &v.User, &v.Blob); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *DB) ReplaceSealed(ctx context.Context, kind, id string, old, new []byte) (bool, error) {
	t, ok := sealedTables[kind]
	if !ok {
		return false, fmt.Errorf("replace sealed: unknown kind %q", kind)
	}
	res, err := s.exec(ctx, `UPDATE `+t.table+` SET sealed = ? WHERE `+t.id+` = ? AND sealed = ?`, new, id, old)
	if err != nil {
		return false, fmt.Errorf("replace sealed: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *DB) Sweep(ctx context.Context, now time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM tickets WHERE expires_at < ?`, ms(now)); err != nil {
		return fmt.Errorf("sweep tickets: %w", err)
	}
	if _, err := s.exec(ctx, `DELETE FROM totp_credentials WHERE confirmed = 0 AND expires_at < ?`, ms(now)); err != nil {
		return fmt.Errorf("sweep enrollments: %w", err)
	}
	if _, err := s.exec(ctx, `DELETE FROM ceremonies WHERE expires_at < ?`, ms(now)); err != nil {
		return fmt.Errorf("sweep ceremonies: %w", err)
	}
	return nil
}
