package store

import (
	"context"
	"time"
)

// Passkey is one WebAuthn credential of a user. Data is the relying-party library's
// credential record; the columns beside it are what the verifier queries and shows.
type Passkey struct {
	ID             string // base64url credential id
	AppID          string
	User           string
	Label          string
	Data           []byte
	SignCount      int64
	AAGUID         []byte
	Transports     string // comma-separated
	BackupEligible bool
	BackupState    bool
	CreatedAt      time.Time
	LastUsedAt     time.Time
}

// Ceremony is a WebAuthn challenge waiting for its answer. It is keyed by the challenge,
// which the browser's answer carries, and taken exactly once.
type Ceremony struct {
	Challenge  string
	Kind       string // "registration" or "assertion"
	AppID      string
	User       string
	TicketHash []byte
	Session    []byte
	ExpiresAt  time.Time
}

// Policies of an app or a user toward TOTP once passkeys exist.
const (
	PolicyTOTPFallback = "totp_fallback"
	PolicyPasskeyOnly  = "passkey_only"
)

// PasskeyStore keeps passkeys, their ceremonies and the user handles WebAuthn needs.
type PasskeyStore interface {
	// UserHandle returns the user's WebAuthn handle, storing candidate as it when the user
	// has none yet (the first writer wins between instances).
	UserHandle(ctx context.Context, appID, user string, candidate []byte) ([]byte, error)
	// UserOfHandle finds the user a handle belongs to; ErrNotFound if none.
	UserOfHandle(ctx context.Context, appID string, handle []byte) (string, error)

	Passkey(ctx context.Context, appID, id string) (Passkey, error)
	PasskeysOfUser(ctx context.Context, appID, user string) ([]Passkey, error)

	// PutCeremony stores c. A ticket keeps its newest eight ceremonies: putting a ninth
	// drops the oldest.
	PutCeremony(ctx context.Context, c Ceremony) error
	// Ceremony returns the ceremony of a challenge without taking it, expired or not;
	// ErrNotFound when it is unknown or taken.
	Ceremony(ctx context.Context, challenge string) (Ceremony, error)

	// UserPolicy is the user's own policy, "" when the app's applies.
	UserPolicy(ctx context.Context, appID, user string) (string, error)
	SetUserPolicy(ctx context.Context, appID, user, policy string) error
}
