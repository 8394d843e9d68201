// Package seed enrolls many users straight into a twofold database, in a few multi-row
// INSERTs inside one transaction, so a benchmark can start with 100,000 users in seconds
// instead of driving 100,000 enrollments over HTTP.
//
// It writes exactly what the verifier writes: confirmed TOTP credentials whose secrets are
// sealed the way server/internal/seal seals them (AES-256-GCM envelope, AAD from
// store.Sealed.AAD) and tickets stored as the SHA-256 of the ticket. bench/ cannot import
// server/internal, so the two formats are mirrored here; TestSeed_VerifierOpensWhatSeedWrote
// in server/internal/hotpath fails if they ever drift apart.
package seed

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dialect names the SQL flavour of the target database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// User is one enrolled user with a live ticket.
type User struct {
	ID     string
	Secret []byte // raw TOTP secret, 20 bytes
	Ticket string // the raw ticket a browser would hold
}

// Options says what to seed.
type Options struct {
	AppID string
	// MasterKey is the verifier's primary master key (TWOFOLD_MASTER_KEY, decoded).
	MasterKey [32]byte
	Users     int
	// Prefix makes user and credential ids unique when seeding into one database twice.
	Prefix string
	// TicketTTL is how long the tickets live; the API caps it at 10 minutes.
	TicketTTL time.Duration
	Now       time.Time
	// Batch is the number of rows per INSERT; 0 means 500.
	Batch int
}

// Seed inserts opts.Users confirmed TOTP credentials and one ticket per user into db,
// whose schema the verifier has already migrated (e.g. by `twofold apps create`). The app
// must exist. Everything commits in one transaction.
func Seed(ctx context.Context, db *sql.DB, d Dialect, opts Options) ([]User, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.TicketTTL <= 0 || opts.TicketTTL > 10*time.Minute {
		opts.TicketTTL = 10 * time.Minute
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	sealer, err := NewSealer(opts.MasterKey)
	if err != nil {
		return nil, err
	}
	nowMS := opts.Now.UnixMilli()
	enrolled := opts.Now.Add(-time.Hour)
	// Confirmed an hour ago: the last accepted step lies well behind every code we send.
	lastStep := enrolled.Unix() / 30

	users := make([]User, opts.Users)
	creds := make([][]any, 0, opts.Batch)
	tickets := make([][]any, 0, opts.Batch)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	defer tx.Rollback()
	flush := func() error {
		if err := insert(ctx, tx, d, "totp_credentials", credColumns, creds); err != nil {
			return err
		}
		if err := insert(ctx, tx, d, "tickets", ticketColumns, tickets); err != nil {
			return err
		}
		creds, tickets = creds[:0], tickets[:0]
		return nil
	}
	for i := range users {
		u := &users[i]
		u.ID = opts.Prefix + "user" + strconv.Itoa(i)
		u.Secret = make([]byte, 20)
		rand.Read(u.Secret)
		credID := "totp_" + opts.Prefix + "bench" + strconv.Itoa(i)
		sealed, err := sealer.Seal(u.Secret, TOTPAAD(credID, opts.AppID, u.ID))
		if err != nil {
			return nil, err
		}
		creds = append(creds, []any{credID, opts.AppID, u.ID, "Authenticator app", sealed, "SHA1", 6, 30,
			lastStep, 1, 0, enrolled.UnixMilli(), enrolled.UnixMilli()})
		u.Ticket = NewTicket()
		tickets = append(tickets, []any{TicketHash(u.Ticket), opts.AppID, u.ID, "", nowMS, opts.Now.Add(opts.TicketTTL).UnixMilli(), 0})
		if len(creds) == opts.Batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if len(creds) > 0 {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("seed: commit: %w", err)
	}
	return users, nil
}

var (
	credColumns   = []string{"id", "app_id", "user_id", "label", "sealed", "algorithm", "digits", "period", "last_step", "confirmed", "expires_at", "created_at", "last_used_at"}
	ticketColumns = []string{"hash", "app_id", "user_id", "nonce", "created_at", "expires_at", "elevated_at"}
)

func insert(ctx context.Context, tx *sql.Tx, d Dialect, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	args := make([]any, 0, len(rows)*len(cols))
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			if d == Postgres {
				b.WriteString("$" + strconv.Itoa(len(args)+1))
			} else {
				b.WriteByte('?')
			}
			args = append(args, r[j])
		}
		b.WriteByte(')')
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("seed %s: %w", table, err)
	}
	return nil
}

// Sealer seals values the way the verifier's master keyring does.
type Sealer struct {
	id   [8]byte
	aead cipher.AEAD
}

// NewSealer returns a sealer under key.
func NewSealer(key [32]byte) (*Sealer, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte("twofold-master-key-id"))
	h.Write(key[:])
	return &Sealer{id: [8]byte(h.Sum(nil)), aead: gcm}, nil
}

// Seal returns the envelope version(1) | key id(8) | nonce(12) | ciphertext+tag.
func (s *Sealer) Seal(plain, aad []byte) ([]byte, error) {
	const head = 1 + 8 + 12
	out := make([]byte, head, head+len(plain)+s.aead.Overhead())
	out[0] = 1
	copy(out[1:9], s.id[:])
	if _, err := rand.Read(out[9:head]); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out[9:head], plain, aad), nil
}

// TOTPAAD is store.Sealed{Kind: "totp", ...}.AAD().
func TOTPAAD(credID, appID, user string) []byte {
	return []byte("totp:" + credID + ":" + appID + ":" + user)
}

// NewTicket returns a fresh ticket in the verifier's format: "tkt_" and 256 random bits.
func NewTicket() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "tkt_" + base64.RawURLEncoding.EncodeToString(b)
}

// TicketHash is what the store keeps of a ticket.
func TicketHash(ticket string) []byte {
	h := sha256.Sum256([]byte(ticket))
	return h[:]
}

// NewMasterKey returns a random master key and its TWOFOLD_MASTER_KEY form.
func NewMasterKey() ([32]byte, string) {
	var k [32]byte
	rand.Read(k[:])
	return k, base64.StdEncoding.EncodeToString(k[:])
}
