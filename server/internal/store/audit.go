package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// AuditRecord is one entry of the append-only audit trail. Hash chains it to the record
// before it, so an edited, deleted or reordered record shows when the chain is walked.
type AuditRecord struct {
	ID        int64 // 1, 2, 3, ... with no gaps
	At        time.Time
	Kind      string
	AppID     string
	User      string
	Factor    string
	IP        string
	UserAgent string
	Outcome   string
	Detail    string
	PrevHash  []byte // Hash of record ID-1; empty for the first record
	Hash      []byte // Digest of this record
}

// Digest is SHA-256 over a canonical encoding of every field but Hash: a version tag, then
// each field length-prefixed (integers as 8 big-endian bytes, times as Unix milliseconds,
// the precision every backend keeps). It is the one definition of a record's hash; the
// store computes it on append and `twofold audit verify` recomputes it.
func (r AuditRecord) Digest() []byte {
	h := sha256.New()
	put := func(b []byte) {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	putInt := func(v int64) { put(binary.BigEndian.AppendUint64(nil, uint64(v))) }
	put([]byte("twofold-audit-v1"))
	putInt(r.ID)
	putInt(r.At.UnixMilli())
	for _, s := range []string{r.Kind, r.AppID, r.User, r.Factor, r.IP, r.UserAgent, r.Outcome, r.Detail} {
		put([]byte(s))
	}
	put(r.PrevHash)
	return h.Sum(nil)
}

// AuditFilter selects records; zero fields select everything.
type AuditFilter struct {
	AppID   string
	User    string
	Since   time.Time // records at or after
	AfterID int64     // records with a higher ID
	// Newest, when above 0, selects only the newest that many records, newest first.
	Newest int
}

// Webhook is where an app hears about the events a person should know of. The signing
// secret is sealed with the master key (kind "webhook", bound to the app id).
type Webhook struct {
	AppID     string
	URL       string
	Sealed    []byte
	CreatedAt time.Time
}

// DeliveryRetention is how long Sweep keeps a webhook delivery after it was sent or given
// up. Nothing reads a finished one; it stays a while for whoever looks into the database
// after a complaint that an event never arrived.
const DeliveryRetention = 7 * 24 * time.Hour

// Delivery is one queued webhook call: the audit record it tells of and where it goes.
type Delivery struct {
	ID       int64
	Attempts int // including the one this claim starts
	Webhook  Webhook
	Record   AuditRecord
}

// FactorsRemoved counts what ResetUserFactors deleted.
type FactorsRemoved struct {
	TOTP          int
	RecoveryCodes int
	Passkeys      int
}

// AuditStore keeps the audit trail, the webhook outbox, admin apps and the support reset.
type AuditStore interface {
	// AppendAudit chains every queued record (QueueAudit), then appends r as the next
	// record of the chain and returns it with ID, PrevHash and Hash set. Chaining is
	// serialised across every process sharing the database, so the chain stays one line.
	// When notify is set and a record's app has a webhook, a delivery is queued in the
	// transaction that chains it: the event is told if and only if it is recorded.
	AppendAudit(ctx context.Context, r AuditRecord, notify bool) (AuditRecord, error)
	// AuditRecords chains every queued record, then calls fn with each selected record in
	// ID order until fn returns an error.
	AuditRecords(ctx context.Context, f AuditFilter, fn func(AuditRecord) error) error

	// SetAdminApp lets an app's key call the admin API and limits it to resetting the users
	// of the scope's apps, added to any it was scoped to before; an admin app never scoped
	// may reset the users of every ordinary app. It is one transaction: ErrNotFound, and
	// nothing changed, unless appID and every app of the scope exist, so a failure never
	// leaves an unscoped admin behind. IsAdminApp reports the mark; AdminMayReset answers
	// by the scope alone.
	SetAdminApp(ctx context.Context, appID string, scope ...string) error
	IsAdminApp(ctx context.Context, appID string) (bool, error)
	AdminMayReset(ctx context.Context, adminApp, app string) (bool, error)
	// FirstFactorAllowed reports whether the user holds an allowance to set up a first
	// factor (Tx.AllowFirstFactor) still good at now.
	FirstFactorAllowed(ctx context.Context, appID, user string, now time.Time) (bool, error)

	// PutWebhook sets (or replaces) an app's webhook; Webhook returns it or ErrNotFound.
	PutWebhook(ctx context.Context, w Webhook) error
	Webhook(ctx context.Context, appID string) (Webhook, error)

	// ClaimDeliveries chains every queued record, then takes up to max deliveries that are
	// due at now and not claimed by anyone else, and holds them until now+lease. A claim is
	// one conditional UPDATE, so instances polling together never take the same delivery;
	// one that dies mid-call loses its claim when the lease runs out and another instance
	// sends it again.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, max int) ([]Delivery, error)
	// DeliveryDone marks a delivery sent.
	DeliveryDone(ctx context.Context, id int64, now time.Time) error
	// DeliveryFailed releases the claim of attempt (the Attempts it was claimed with): the
	// delivery is due again at next, or, with giveUp, never again. lastError says why (no
	// secret, no body). The report of a claim whose lease ran out, claimed again since or
	// delivered, changes nothing.
	DeliveryFailed(ctx context.Context, id int64, attempt int, next time.Time, lastError string, giveUp bool) error
}
