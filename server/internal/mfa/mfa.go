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

// Service carries out the second-factor ceremonies.
type Service struct {
	st     store.Store
	sealer Sealer
	signer Signer
	cfg    Config

	pepperMu sync.Mutex
	pepper   []byte
}

// New returns a Service over the given store, sealer and signer.
func New(st store.Store, sealer Sealer, signer Signer, cfg Config) *Service {
	return &Service{st: st, sealer: sealer, signer: signer, cfg: cfg.withDefaults()}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Errors a person can act on. Each is a fresh value at its use site so a message can carry
// detail; errors.Is compares codes.
var (
	errInvalidTicket   = wire.NewError(wire.CodeInvalidTicket, "This sign-in link has expired or is not valid. Go back to the app and sign in again.")
	errInvalidAPIKey   = wire.NewError(wire.CodeInvalidAPIKey, "The API key is missing or not valid.")
	errStepUp          = wire.NewError(wire.CodeStepUpRequired, "Confirm it's you with your current second factor first.")
	errInvalidCode     = wire.NewError(wire.CodeInvalidCode, "That code is not right. Check your authenticator app and type the current code.")
	errCodeUsed        = wire.NewError(wire.CodeCodeAlreadyUsed, "That code was already used. Wait for your authenticator app to show a new code.")
	errNoEnrollment    = wire.NewError(wire.CodeNotFound, "This setup has expired or was already finished. Start the setup again.")
	errNoAuthenticator = wire.NewError(wire.CodeNotFound, "No authenticator app is set up for this account yet.")
)

func invalidRequest(msg string) *wire.Error { return wire.NewError(wire.CodeInvalidRequest, msg) }

// isNotFound folds the store's sentinel for callers that turn it into an API error.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func fault(op string, err error) error { return fmt.Errorf("mfa: %s: %w", op, err) }
