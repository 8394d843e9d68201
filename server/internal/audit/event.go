// Package audit records security events: append-only, hash-chained, with no code or secret
// in them, and tells apps about the ones a person should hear of.
package audit

import (
	"context"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Kind names a security event.
type Kind string

// The events twofold records.
const (
	EnrollmentStarted Kind = "enrollment_started"
	FactorAdded       Kind = "factor_added"
	Verified          Kind = "verified"
	Failed            Kind = "failed"
	ReplayBlocked     Kind = "replay_blocked"
	RateLimited       Kind = "rate_limited"
	Locked            Kind = "locked"
	RecoveryUsed      Kind = "recovery_used"
	CodesRegenerated  Kind = "codes_regenerated"
	FactorRemoved     Kind = "factor_removed"
	AdminReset        Kind = "admin_reset"
	// AdminRefused: an admin who passed their own second factor was refused an action
	// (a reset of another admin, a sign-in used twice), a sign that a support account may
	// be in the wrong hands. It is recorded under the admin app and the admin.
	AdminRefused  Kind = "admin_refused"
	OriginRefused Kind = "origin_refused"
	// CredentialStuffing: one address failed for many users; FailureBurst: many failures
	// for one user (package anomaly raises both).
	CredentialStuffing Kind = "credential_stuffing"
	FailureBurst       Kind = "failure_burst"
)

// Event is one security event. Detail is a short reason for people reading the trail; it
// never holds a code, a secret or a ticket.
type Event struct {
	At        time.Time `json:"at"`
	Kind      Kind      `json:"kind"`
	AppID     string    `json:"app,omitempty"`
	User      string    `json:"user,omitempty"`
	Factor    string    `json:"factor,omitempty"` // factor id, or "recovery"
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Outcome   string    `json:"outcome"` // "ok" or "refused"
	Detail    string    `json:"detail,omitempty"`
}

// Recorder takes events. Record must not block a request for long; an error means the
// event was not stored. It appends through to: the store, or the transaction that makes
// what the event tells of durable, so the event is recorded if and only if that commits.
type Recorder interface {
	Record(ctx context.Context, to Appender, e Event) error
}

// Appender records to the audit trail: a store.Store, or a store.Tx.
type Appender interface {
	QueueAudit(ctx context.Context, r store.AuditRecord, notify bool) error
}
