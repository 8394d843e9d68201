// Package mfa is the second-factor domain: tickets, TOTP enrollment and verification with
// replay blocking, recovery codes and step-up. It knows no HTTP; it returns values and
// *wire.Error for everything a person did wrong, and plain wrapped errors for faults.
package mfa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/limit"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/tokens"
)

// Sealer seals secrets at rest; aad binds a sealed value to the row it belongs to.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(envelope, aad []byte) ([]byte, error)
}

// Signer issues the JWT a backend receives after a second factor passed.
type Signer interface {
	Issue(ctx context.Context, c tokens.Claims) (token string, expiresIn int, err error)
}

// Config holds the policy knobs; zero values mean the defaults in withDefaults.
type Config struct {
	// TicketTTL is how long a ticket lives; API.md caps it at 10 minutes.
	TicketTTL time.Duration
	// EnrollmentTTL is how long a pending enrollment waits for its first code.
	EnrollmentTTL time.Duration
	// Skew is how many 30-second steps either side of now a code may come from.
	Skew int
	// ClockHintSteps is how far off a code may be and still be recognised as a clock
	// problem rather than a wrong code.
	ClockHintSteps int
	Now            func() time.Time
	Logger         *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.TicketTTL <= 0 || c.TicketTTL > 10*time.Minute {
		c.TicketTTL = 10 * time.Minute
	}
	if c.EnrollmentTTL <= 0 {
		c.EnrollmentTTL = 10 * time.Minute
	}
	if c.Skew <= 0 {
		c.Skew = 1
	}
	if c.ClockHintSteps <= 0 {
		c.ClockHintSteps = 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Deps are the services the domain uses. Limiter defaults to limit.DefaultPolicy on the
// store; Audit defaults to recording nothing.
type Deps struct {
	Store   store.Store
	Sealer  Sealer
	Signer  Signer
	Limiter *limit.Limiter
	Audit   audit.Recorder
	// Clock, when set, hears the step offset of every accepted code (clockcheck).
	Clock StepObserver
}

// StepObserver takes the step offset of an accepted code: +1 means the phone is a step
// ahead of this verifier.
type StepObserver interface{ ObserveStep(offset int) }

// Service carries out the second-factor ceremonies.
type Service struct {
	st     store.Store
	sealer Sealer
	signer Signer
	limits *limit.Limiter
	rec    audit.Recorder
	clock  StepObserver
	cfg    Config

	pepperMu sync.Mutex
	pepper   []byte
	apps     sync.Map // app id → cachedApp
	rps      sync.Map // app settings → *passkey.RP
}

// New returns a Service on d.
func New(d Deps, cfg Config) *Service {
	if d.Limiter == nil {
		d.Limiter = limit.New(d.Store, limit.DefaultPolicy())
	}
	if d.Audit == nil {
		d.Audit = discard{}
	}
	return &Service{st: d.Store, sealer: d.Sealer, signer: d.Signer, limits: d.Limiter, rec: d.Audit, clock: d.Clock, cfg: cfg.withDefaults()}
}

type discard struct{}

func (discard) Record(context.Context, audit.Appender, audit.Event) error { return nil }

// record stores a security event. A failure to record is logged, not returned: outside a
// transaction, the person in front of the screen should not pay for a broken audit sink.
func (s *Service) record(ctx context.Context, p Principal, kind audit.Kind, factor string, ok bool, detail string) {
	s.unrecorded(ctx, s.recordIn(ctx, s.st, p, kind, factor, ok, detail))
}

// recordIn records a security event within a transaction, which then commits the event
// with what it tells of or neither: a failure to record undoes the transaction.
func (s *Service) recordIn(ctx context.Context, to audit.Appender, p Principal, kind audit.Kind, factor string, ok bool, detail string) error {
	outcome := "refused"
	if ok {
		outcome = "ok"
	}
	return s.rec.Record(ctx, to, audit.Event{
		At: s.now(), Kind: kind, AppID: p.App.ID, User: p.Ticket.User, Factor: factor,
		IP: p.IP, UserAgent: p.UserAgent, Outcome: outcome, Detail: detail,
	})
}

// stillElevated holds the user's factors in tx and checks that p's ticket still stands
// elevated. The request checked p.Elevated() when it began; a support reset (which removes
// the ticket) or a change of factors through another ticket may have ended that since, and
// whoever holds the ticket may be who the reset is against.
func (s *Service) stillElevated(ctx context.Context, tx store.Tx, p Principal) error {
	t, err := tx.HoldTicket(ctx, p.App.ID, p.Ticket.User, p.Ticket.Hash)
	switch {
	case isNotFound(err):
		return errInvalidTicket
	case err != nil:
		return err
	case t.ElevatedAt.IsZero():
		return errStepUp
	}
	return nil
}

// factorsChanged ends the elevation of the user's other tickets, in the transaction that
// changes the user's factors: whoever passed the old ones on another ticket (a stolen
// phone, say) must pass the new ones before changing anything again, or that ticket would
// outlive the phone's replacement and take the account back.
func (s *Service) factorsChanged(ctx context.Context, tx store.Tx, p Principal) error {
	return tx.EndElevations(ctx, p.App.ID, p.Ticket.User, p.Ticket.Hash)
}

// unrecorded logs an event that could not be stored.
func (s *Service) unrecorded(ctx context.Context, err error) {
	if err != nil {
		s.cfg.Logger.ErrorContext(ctx, "audit record failed", "err", err)
	}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Errors a person can act on. Each is a fresh value at its use site so a message can carry
// detail; errors.Is compares codes.
var (
	errInvalidTicket   = wire.NewError(wire.CodeInvalidTicket, "This sign-in link has expired or is not valid. Go back to the app and sign in again.")
	errInvalidAPIKey   = wire.NewError(wire.CodeInvalidAPIKey, "The API key is missing or not valid.")
	errResetLocksLeft  = wire.NewError(wire.CodeUnavailable, "The user's factors are reset, but the locks on their attempts (kept in Redis) could not be lifted. Reset the user again once Redis answers.")
	errStepUp          = wire.NewError(wire.CodeStepUpRequired, "Confirm it's you with your current second factor first.")
	errInvalidCode     = wire.NewError(wire.CodeInvalidCode, "That code is not right. Check your authenticator app and type the current code.")
	errCodeUsed        = wire.NewError(wire.CodeCodeAlreadyUsed, "That code was already used. Wait for your authenticator app to show a new code.")
	errNoEnrollment    = wire.NewError(wire.CodeNotFound, "This setup has expired or was already finished. Start the setup again.")
	errNoAuthenticator = wire.NewError(wire.CodeNotFound, "No authenticator app is set up for this account yet.")
)

func invalidRequest(msg string) *wire.Error { return wire.NewError(wire.CodeInvalidRequest, msg) }

// isNotFound folds the store's sentinel for callers that turn it into an API error.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// fault wraps op's failure for the log. An answer for the person (a *wire.Error) that a
// transaction returned, say a ticket whose elevation ended meanwhile, goes out as it is.
func fault(op string, err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	return fmt.Errorf("mfa: %s: %w", op, err)
}
