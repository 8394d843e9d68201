// Package store defines what twofold remembers and the one interface every backend (SQLite,
// PostgreSQL) implements with the same semantics. Compare-and-set operations are the only
// way state that guards against replay changes, so concurrent requests on any number of
// verifier instances see one winner.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: already exists")
	// ErrWithdrawn: a signing key was withdrawn (it may have leaked); nothing it signed is
	// to be trusted.
	ErrWithdrawn = errors.New("store: signing key withdrawn")
)

// App is a relying application: its backend holds the API key, its pages live on Origins.
type App struct {
	ID         string
	Name       string
	Origins    []string
	APIKeyHash []byte
	// SigningAlg is the JWT algorithm of this app's tokens: EdDSA, ES256 or RS256.
	SigningAlg string
	CreatedAt  time.Time
	// RPID is the WebAuthn relying party id; empty means the host of the first origin.
	RPID string
	// PasskeyPolicy is PolicyTOTPFallback (the default) or PolicyPasskeyOnly.
	PasskeyPolicy string
	// UserVerification is the WebAuthn requirement: "required" (the default), "preferred".
	UserVerification string
	// Attestation is "none" (the default) or "direct"; with "direct", only authenticators
	// whose attested AAGUID is in AAGUIDs (lower-case hex, no dashes) may register.
	Attestation string
	AAGUIDs     []string
}

// Ticket lets one browser act for one user of one app for a short time. Only its hash is
// stored, so a copy of the database grants nothing.
type Ticket struct {
	Hash      []byte
	AppID     string
	User      string
	Nonce     string
	CreatedAt time.Time
	ExpiresAt time.Time
	// ElevatedAt is set once a second factor passed with this ticket; zero before.
	ElevatedAt time.Time
	// ElevatedBy is the amr of that first factor ("otp", "rec", ...).
	ElevatedBy string
}

// Account is what a request with a ticket usually needs to know of its user.
type Account struct {
	TOTPs  []TOTPCredential // confirmed, oldest first, as TOTPsOfUser lists them
	Policy string           // the user's own passkey policy, "" when the app's applies
}

// TOTPCredential is one authenticator app of one user. Until Confirmed it is a pending
// enrollment that dies at ExpiresAt.
type TOTPCredential struct {
	ID        string
	AppID     string
	User      string
	Label     string
	Sealed    []byte // the secret, sealed with the master key and bound to ID, AppID, User
	Algorithm string // SHA1, SHA256, SHA512
	Digits    int
	Period    int // seconds
	// LastStep is the last accepted time step; no code of a step at or before it is ever
	// accepted again. -1 before any acceptance.
	LastStep   int64
	Confirmed  bool
	ExpiresAt  time.Time // pending enrollments only
	CreatedAt  time.Time
	LastUsedAt time.Time
	// Replaces names the credential this pending one takes over from once confirmed, so a
	// new phone replaces the old in one step.
	Replaces string
	Drift
}

// Drift is what a credential remembers of its phone's clock: Steps is the offset its
// verification window is centred on, LastOffset the offset of the last accepted code.
type Drift struct {
	Steps      int
	LastOffset int
}

// SigningKey is a token signing key. The active key of an algorithm has a zero RetiredAt;
// retired keys stay published until every token they signed has expired.
type SigningKey struct {
	KID       string
	Alg       string
	Sealed    []byte    // PKCS#8 private key, sealed and bound to KID
	CreatedAt time.Time // when it starts signing; it is published from when it is stored
	RetiredAt time.Time
}

// Withdrawn reports whether the key was withdrawn (WithdrawSigningKey): its private key is
// erased, and it vouches for nothing it signed.
func (k SigningKey) Withdrawn() bool { return len(k.Sealed) == 0 }

// Sealed names one sealed value so master-key rotation can re-seal it without knowing what
// it is. Kind is "totp", "signing_key", "secret" or "webhook".
type Sealed struct {
	Kind  string
	ID    string
	AppID string // totp only
	User  string // totp only
	Blob  []byte
}

// AAD is the associated data a value is sealed with: it binds the value to its row, so a
// sealed value moved to another row, user or kind no longer opens. Everything that seals a
// stored value uses this one scheme.
func (s Sealed) AAD() []byte {
	if s.Kind == "totp" {
		return []byte("totp:" + s.ID + ":" + s.AppID + ":" + s.User)
	}
	return []byte(s.Kind + ":" + s.ID)
}

// InstanceRetention is how long Sweep keeps the record of a verifier not heard from: one
// that crashed never deletes its own. A serving verifier refreshes its record every few
// seconds and counts as running only while it did so within about a minute (package
// serve), so a day removes no live one, and one that was only paused (PutInstance is an
// upsert) puts its record back with its next refresh.
const InstanceRetention = 24 * time.Hour

// Instance is a serving verifier as it last said: the master keys it holds, how it learns
// new ones, and where it keeps attempt budgets.
type Instance struct {
	ID, Host string
	KeyIDs   []string // hex, the primary first
	// Follows is how it learns a key added after it started: "" not at all (its keys came
	// from its environment), "command" (it runs its --master-key-command again), or
	// "file HOST:PATH" (it reads that key file again).
	Follows string
	// Budgets is where it keeps attempt budgets: "" in the store, or "redis PREFIX".
	Budgets string
	SeenAt  time.Time
}

// Swept counts what one Sweep deleted.
type Swept struct {
	Tickets, Enrollments, Ceremonies, UsedTokens int
	Allowances, Instances, Deliveries, Hints     int
}

// Store is everything twofold keeps. Every method is safe for concurrent use by many
// goroutines and many processes sharing one database.
type Store interface {
	// Ping reports whether the backing database answers.
	Ping(ctx context.Context) error
	Close() error

	CreateApp(ctx context.Context, a App) error // ErrConflict if the ID exists
	App(ctx context.Context, id string) (App, error)
	// OriginKnown reports whether any app lists origin; CORS preflights carry no ticket.
	OriginKnown(ctx context.Context, origin string) (bool, error)

	CreateTicket(ctx context.Context, t Ticket) error
	Ticket(ctx context.Context, hash []byte) (Ticket, error)
	// TicketAccount is Ticket with its user's Account, in one read: a verification makes
	// one read of the store before its write instead of three.
	TicketAccount(ctx context.Context, hash []byte) (Ticket, Account, error)

	// CreateTOTP stores c. A user keeps their newest eight pending enrollments: creating a
	// ninth drops the oldest.
	CreateTOTP(ctx context.Context, c TOTPCredential) error
	TOTP(ctx context.Context, id string) (TOTPCredential, error)
	// TOTPsOfUser lists the user's confirmed credentials.
	TOTPsOfUser(ctx context.Context, appID, user string) ([]TOTPCredential, error)

	RecoveryCodesLeft(ctx context.Context, appID, user string) (int, error)

	// AddSigningKey stores a new active key for its algorithm and retires the one it
	// replaces as of the new key's CreatedAt, which may lie ahead (a key is published
	// before it signs). With replace false it fails with ErrConflict when an active key
	// exists, so instances starting together agree on one.
	AddSigningKey(ctx context.Context, k SigningKey, replace bool) error
	// SigningKeys lists keys still active or retired after retiredAfter.
	SigningKeys(ctx context.Context, retiredAfter time.Time) ([]SigningKey, error)
	// WithdrawSigningKey takes a key out of use at once: it is retired 1 ms after the Unix epoch,
	// so SigningKeys with any later retiredAfter no longer lists it, and its sealed private
	// key is erased (Sealed empty), so no one who can write to the database can put it back
	// in use. SigningKeys from the zero time still lists it, as a tombstone. ErrNotFound when
	// there is no such key.
	WithdrawSigningKey(ctx context.Context, kid string) error

	// Secret returns a named sealed value; PutSecret stores it unless the name exists, and
	// returns whichever value is stored.
	Secret(ctx context.Context, name string) ([]byte, error)
	PutSecret(ctx context.Context, name string, sealed []byte) ([]byte, error)

	// SealedValues lists every sealed value; ReplaceSealed swaps one for a re-sealed copy if
	// it still holds old (a compare-and-set, so a concurrent change is never overwritten).
	SealedValues(ctx context.Context) ([]Sealed, error)
	ReplaceSealed(ctx context.Context, kind, id string, old, new []byte) (bool, error)

	// PutInstance records (or refreshes) a serving verifier; DeleteInstance forgets it as it
	// stops; Instances lists those seen at or after since.
	PutInstance(ctx context.Context, in Instance) error
	DeleteInstance(ctx context.Context, id string) error
	Instances(ctx context.Context, since time.Time) ([]Instance, error)

	// Sweep deletes tickets, pending enrollments, ceremonies, spent-token marks, first-factor
	// allowances and clock-hint marks that expired before now, the records of verifiers not
	// seen within InstanceRetention, and webhook deliveries finished (sent or given up) more
	// than DeliveryRetention ago, never one still due, backing off or claimed; it reports how
	// many of each.
	Sweep(ctx context.Context, now time.Time) (Swept, error)

	// Atomically runs fn as one transaction: what fn does through its Tx commits when fn
	// returns nil and is undone when it returns an error. On SQLite fn runs on the one
	// writer connection, among the group commit's other writes, so it must not wait on
	// anything but its Tx.
	Atomically(ctx context.Context, fn func(Tx) error) error
	Tx
	PasskeyStore
	AuditStore
}

// Tx is what one transaction can do: the writes of one attempt at a second factor, so
// that its reservation, its outcome and its audit record are durable together or not at
// all, and the writes that add or remove a factor, which commit with their audit records.
// The Store itself is a Tx whose every call is a transaction of its own.
type Tx interface {
	AttemptStore
	// AdvanceTOTP is the replay guard: it sets the credential's last step to step (and its
	// drift) only if the stored step is lower and HintTOTPStep never marked step, durably,
	// and reports whether it did.
	AdvanceTOTP(ctx context.Context, id string, step int64, now time.Time, d Drift) (bool, error)
	// HintTOTPStep marks step of the credential as one whose code an ahead clock hint told
	// someone about: AdvanceTOTP refuses it from then on, so a guess that hit a later step
	// cannot sign in when that step comes. Marking a step twice is fine; the mark may be
	// swept once until has passed, when the step can no longer be accepted anyway.
	HintTOTPStep(ctx context.Context, id string, step int64, until time.Time) error
	// UsePasskey records a login: the sign count and record move on only if the stored count
	// is still oldCount, so two logins can never both take one count.
	UsePasskey(ctx context.Context, id string, oldCount, newCount int64, data []byte, now time.Time) (bool, error)
	// TakeCeremony removes and returns the ceremony of a challenge; ErrNotFound when it is
	// unknown, already taken or expired.
	TakeCeremony(ctx context.Context, challenge string, now time.Time) (Ceremony, error)
	// ReplaceRecoveryCodes gives the user a new set; the old one stops working at once.
	ReplaceRecoveryCodes(ctx context.Context, appID, user string, hashes [][]byte, now time.Time) error
	AddPasskey(ctx context.Context, p Passkey) error // ErrConflict if the id exists
	// DeleteTOTPsOfUser destroys every authenticator-app secret of the user, pending ones
	// too, and returns the ids of the confirmed ones, in order.
	DeleteTOTPsOfUser(ctx context.Context, appID, user string) ([]string, error)
	// ResetUserFactors removes every TOTP credential (pending ones too), recovery code,
	// passkey and ticket of the user, atomically.
	ResetUserFactors(ctx context.Context, appID, user string) (FactorsRemoved, error)
	// LockFactors counts the user's second factors (confirmed authenticator apps and
	// passkeys) and keeps any other transaction from changing the user's factors until this
	// one ends, so that two removals at once cannot both find another factor left.
	LockFactors(ctx context.Context, appID, user string) (totps, passkeys int, err error)
	// HoldTicket holds the user's factors until the transaction ends, as LockFactors does,
	// and reads the user's ticket with this hash as it stands then: since the request that
	// presents it began, a reset may have removed it (ErrNotFound), or a change of factors
	// through another ticket may have ended its elevation.
	HoldTicket(ctx context.Context, appID, user string, hash []byte) (Ticket, error)
	// DeleteTOTP removes a confirmed credential of the user; ErrNotFound if there is none.
	DeleteTOTP(ctx context.Context, appID, user, id string) error
	// DeletePasskey removes a passkey of the user; ErrNotFound if there is none.
	DeletePasskey(ctx context.Context, appID, user, id string) error
	// ConfirmTOTP turns a pending, unexpired enrollment into a credential whose last accepted
	// step is step, and, when recoveryHashes is not empty and the user has no other
	// confirmed credential, gives the user that set of recovery codes in place of any old
	// one. All of it happens atomically, and confirmations of one user's enrollments one
	// after the other: it holds the user's credentials until the transaction ends.
	// ErrNotFound when there is no such pending enrollment (unknown, expired or already
	// confirmed). installed says whether the set was given.
	ConfirmTOTP(ctx context.Context, id string, step int64, now time.Time, recoveryHashes [][]byte) (installed bool, err error)
	// ConsumeRecoveryCode marks the user's unused code with this hash used; false if none.
	ConsumeRecoveryCode(ctx context.Context, appID, user string, hash []byte, now time.Time) (bool, error)
	// ElevateTicket records that a second factor (amr by) passed; it keeps the first.
	ElevateTicket(ctx context.Context, hash []byte, at time.Time, by string) error
	// EndElevations makes every elevated ticket of the user but the one whose hash is
	// except (nil for none) pass a second factor again.
	EndElevations(ctx context.Context, appID, user string, except []byte) error
	// ClaimOnce records key as used until until; false if it already was: a token that
	// authorises one action cannot authorise a second. Inside a transaction the claim
	// commits with the action, so an action that fails leaves its token unused; a second
	// claim of the key waits for the first transaction to end, and wins only if it failed.
	ClaimOnce(ctx context.Context, key string, until time.Time) (bool, error)
	// AllowFirstFactor lets the user of an admin app set up a first factor through a ticket
	// until until (the operator's leave, given by a reset on the host), in place of any
	// allowance before. TakeFirstFactorAllowance uses up an allowance still good at now;
	// false if there is none.
	AllowFirstFactor(ctx context.Context, appID, user string, until time.Time) error
	TakeFirstFactorAllowance(ctx context.Context, appID, user string, now time.Time) (bool, error)
	// QueueAudit records r for the audit trail, to be chained (given its ID, PrevHash and
	// Hash) in the order queued records committed, by the next AppendAudit, AuditRecords
	// or ClaimDeliveries. A transaction that queues a record takes no lock that every
	// other one needs: on PostgreSQL, chaining in each transaction held one lock across
	// every commit, and that lock was all verifications' limit.
	QueueAudit(ctx context.Context, r AuditRecord, notify bool) error
}
