// Package api is twofold's HTTP surface on Fiber (the only importer of Fiber): routes,
// ticket and origin checks, CORS, and the one table that maps error codes to statuses.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/clientip"
	"github.com/twofold-dev/twofold/server/internal/mfa"
)

// KeySet publishes the token verification keys.
type KeySet interface {
	JWKS(ctx context.Context) ([]byte, error)
	Discovery() []byte
}

// Check is one readiness probe of a backing service.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Warning is an advisory readiness check: a non-empty answer makes /readyz say
// "warning" (still 200: the verifier works, but an operator should look).
type Warning struct {
	Name  string
	Check func() string
}

// Deps is what the routes need.
type Deps struct {
	MFA    *mfa.Service
	Keys   KeySet
	Ready  []Check
	Logger *slog.Logger
	// Metrics, when set, counts requests and is served at /metrics; Tokens, when set,
	// verifies admins' tokens and enables the admin API (admin.go).
	Metrics *audit.Metrics
	Tokens  mfa.TokenVerifier
	// Proxies are the proxies whose forwarding headers name the client; nil trusts none.
	Proxies *clientip.Resolver
	// Warnings are shown by /readyz; Gauges write more metric families on /metrics.
	Warnings []Warning
	Gauges   []func(io.Writer) error
}

// BodyLimit bounds every request body; the largest legitimate one (a WebAuthn response)
// is a few kilobytes.
const BodyLimit = 64 << 10

// New builds the Fiber app with every route.
func New(d Deps) *fiber.App {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	h := &handlers{Deps: d}
	app := fiber.New(fiber.Config{
		AppName:   "twofold",
		BodyLimit: BodyLimit,
		// Fiber's strings otherwise alias fasthttp's reused buffers: one kept past the
		// request (a cache key, a log field) would change under our feet.
		Immutable: true,
		// One spelling per route, so a proxy rule that keeps /metrics or /v1/admin from the
		// internet is not stepped around by /METRICS or /metrics/.
		CaseSensitive:         true,
		StrictRouting:         true,
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		DisableStartupMessage: true,
		ErrorHandler:          h.fail,
	})
	app.Use(h.countRequests)
	app.Use(h.common)
	app.Use(h.recoverPanic)

	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", h.readyz)
	app.Get("/.well-known/jwks.json", h.jwks)
	app.Get("/.well-known/openid-configuration", h.discovery)
	app.Get("/openapi.json", h.openapi)

	v1 := app.Group("/v1")
	v1.Post("/tickets", h.appAuth, h.createTicket)
	v1.Put("/users/:user/policy", h.appAuth, h.setUserPolicy)
	v1.Get("/users/:user/events", h.appAuth, h.userEvents)

	// Browser calls: preflights for any /v1 path, then each route behind ticket and origin.
	v1.Options("/*", h.preflight)
	browser := func(method, path string, handler fiber.Handler) {
		v1.Add(method, path, h.ticketAuth, handler)
	}
	browser(fiber.MethodGet, "/session", h.session)
	browser(fiber.MethodPost, "/totp/enrollments", h.startEnrollment)
	browser(fiber.MethodPost, "/totp/enrollments/:id/confirm", h.confirmEnrollment)
	browser(fiber.MethodPost, "/totp/verify", h.verifyTOTP)
	browser(fiber.MethodPost, "/recovery/verify", h.verifyRecovery)
	browser(fiber.MethodPost, "/recovery/codes", h.regenerateRecoveryCodes)
	browser(fiber.MethodGet, "/factors", h.factors)
	browser(fiber.MethodDelete, "/factors/:id", h.deleteFactor)
	browser(fiber.MethodPost, "/origin-refusals", h.originRefusal)
	browser(fiber.MethodPost, "/webauthn/registrations", h.beginPasskeyRegistration)
	browser(fiber.MethodPost, "/webauthn/registrations/finish", h.finishPasskeyRegistration)
	browser(fiber.MethodPost, "/webauthn/assertions", h.beginPasskeyLogin)
	browser(fiber.MethodPost, "/webauthn/assertions/finish", h.finishPasskeyLogin)
	h.registerAdmin(app, v1)

	app.Use(func(c *fiber.Ctx) error {
		return wire.NewError(wire.CodeNotFound, "There is no "+c.Method()+" "+c.Path()+" here.")
	})
	return app
}

type handlers struct{ Deps }

// status is the one table from error code to HTTP status.
var status = map[string]int{
	wire.CodeInvalidRequest:   fiber.StatusBadRequest,
	wire.CodeInvalidTicket:    fiber.StatusUnauthorized,
	wire.CodeInvalidAPIKey:    fiber.StatusUnauthorized,
	wire.CodeInvalidCode:      fiber.StatusUnauthorized,
	wire.CodeOriginNotAllowed: fiber.StatusForbidden,
	wire.CodeStepUpRequired:   fiber.StatusForbidden,
	wire.CodeNotFound:         fiber.StatusNotFound,
	wire.CodeCodeAlreadyUsed:  fiber.StatusConflict,
	wire.CodeConflict:         fiber.StatusConflict,
	wire.CodeRateLimited:      fiber.StatusTooManyRequests,
	wire.CodeFactorLocked:     fiber.StatusLocked,
	wire.CodeLastFactor:       fiber.StatusConflict,
	wire.CodeInvalidPasskey:   fiber.StatusUnauthorized,
	wire.CodeChallengeExpired: fiber.StatusBadRequest,
	wire.CodePasskeyRequired:  fiber.StatusForbidden,
	wire.CodeOperatorRequired: fiber.StatusForbidden,
	wire.CodeUnavailable:      fiber.StatusServiceUnavailable,
	wire.CodeInternal:         fiber.StatusInternalServerError,
}

// fail writes every error as {"error","message"}; faults are logged and hidden.
func (h *handlers) fail(c *fiber.Ctx, err error) error {
	var we *wire.Error
	var fe *fiber.Error
	st := fiber.StatusInternalServerError
	switch {
	case errors.As(err, &we):
		if s, ok := status[we.Code]; ok {
			st = s
		}
	case errors.As(err, &fe) && fe.Code == fiber.StatusRequestEntityTooLarge:
		st, we = fe.Code, wire.NewError(wire.CodeInvalidRequest, "The request body is too large.")
	case errors.As(err, &fe) && fe.Code < 500:
		st, we = fe.Code, wire.NewError(wire.CodeInvalidRequest, fe.Message)
	default:
		h.Logger.ErrorContext(c.UserContext(), "request failed", "method", c.Method(), "route", c.Route().Path, "err", err)
		we = wire.NewError(wire.CodeInternal, "Something went wrong on our side. Try again in a moment.")
	}
	if we.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, itoa(we.RetryAfter))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(st).JSON(we)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// common sets the headers every answer carries and logs the request.
func (h *handlers) common(c *fiber.Ctx) error {
	start := time.Now()
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	if c.Context().IsTLS() {
		c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
	}
	err := c.Next()
	if err != nil {
		err = h.fail(c, err)
	}
	h.Logger.LogAttrs(c.UserContext(), slog.LevelInfo, "request",
		slog.String("method", c.Method()), slog.String("route", c.Route().Path),
		slog.Int("status", c.Response().StatusCode()), slog.Duration("took", time.Since(start)))
	return err
}

// recoverPanic turns a panic in a handler into a 500 for that request alone; without it, one
// would end the process and every user's sign-in with it. Fiber's middleware/recover would
// hand the panic's value on as the error, which fail logs: here the stack is logged, and
// the value only when the runtime made it, since another could hold whatever the code had
// in hand.
func (h *handlers) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		what := fmt.Sprintf("%T", v)
		if re, ok := v.(runtime.Error); ok {
			what = re.Error()
		}
		h.Logger.ErrorContext(c.UserContext(), "handler panicked", "method", c.Method(), "route", c.Route().Path,
			"panic", what, "stack", string(debug.Stack()))
		err = wire.NewError(wire.CodeInternal, "Something went wrong on our side. Try again in a moment.")
	}()
	return c.Next()
}

func (h *handlers) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	checks := fiber.Map{}
	ok := true
	for _, ch := range h.Ready {
		if err := ch.Ping(ctx); err != nil {
			checks[ch.Name] = err.Error()
			ok = false
			continue
		}
		checks[ch.Name] = "ok"
	}
	if !ok {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "checks": checks})
	}
	warnings := fiber.Map{}
	for _, w := range h.Warnings {
		if msg := w.Check(); msg != "" {
			warnings[w.Name] = msg
		}
	}
	if len(warnings) > 0 {
		return c.JSON(fiber.Map{"status": "warning", "checks": checks, "warnings": warnings})
	}
	return c.JSON(fiber.Map{"status": "ok", "checks": checks})
}

func (h *handlers) jwks(c *fiber.Ctx) error {
	b, err := h.Keys.JWKS(c.UserContext())
	if err != nil {
		return err
	}
	// Short enough that a rotated key shows up before tokens it signs reach backends.
	c.Set(fiber.HeaderCacheControl, "public, max-age=60")
	c.Set(fiber.HeaderContentType, "application/jwk-set+json")
	return c.Send(b)
}

func (h *handlers) discovery(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(h.Keys.Discovery())
}
