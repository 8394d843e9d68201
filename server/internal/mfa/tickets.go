package mfa

import (
	"context"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/store"
)

const ticketPrefix = "tkt_"

// Principal is who a browser call acts for: one user of one app, through one ticket, from
// one client.
type Principal struct {
	App    store.App
	Ticket store.Ticket
	// Account is the user's TOTP credentials and policy as they were when the request
	// arrived, read with the ticket.
	Account   store.Account
	IP        string
	UserAgent string
}

// Elevated reports whether a second factor already passed with this ticket.
func (p Principal) Elevated() bool { return !p.Ticket.ElevatedAt.IsZero() }

// IssueTicket lets the app's browser act for user. Only the ticket's hash is stored; the
// ticket itself (256 random bits) is unguessable, so it cannot be forged or altered.
func (s *Service) IssueTicket(ctx context.Context, app store.App, req wire.TicketRequest) (wire.TicketResponse, error) {
	if msg := wire.CheckUser(req.User); msg != "" {
		return wire.TicketResponse{}, invalidRequest(msg)
	}
	if msg := wire.CheckText("nonce", req.Nonce, false); msg != "" {
		return wire.TicketResponse{}, invalidRequest(msg)
	}
	now := s.now()
	raw := ticketPrefix + randomToken(32)
	t := store.Ticket{Hash: hash(raw), AppID: app.ID, User: req.User, Nonce: req.Nonce, CreatedAt: now, ExpiresAt: now.Add(s.cfg.TicketTTL)}
	if err := s.st.CreateTicket(ctx, t); err != nil {
		return wire.TicketResponse{}, fault("issue ticket", err)
	}
	return wire.TicketResponse{Ticket: raw, ExpiresAt: t.ExpiresAt.Truncate(time.Second)}, nil
}

// Authenticate turns a presented ticket into the Principal it grants.
func (s *Service) Authenticate(ctx context.Context, raw string) (Principal, error) {
	if !strings.HasPrefix(raw, ticketPrefix) || len(raw) > 128 {
		return Principal{}, errInvalidTicket
	}
	t, acct, err := s.st.TicketAccount(ctx, hash(raw))
	if isNotFound(err) {
		return Principal{}, errInvalidTicket
	}
	if err != nil {
		return Principal{}, fault("authenticate ticket", err)
	}
	if !s.now().Before(t.ExpiresAt) {
		return Principal{}, errInvalidTicket
	}
	app, err := s.app(ctx, t.AppID)
	if err != nil {
		return Principal{}, fault("authenticate ticket", err)
	}
	return Principal{App: app, Ticket: t, Account: acct}, nil
}

// appTTL bounds how long an app row is served from memory. Apps are only ever created,
// never changed in place, so this saves a read per request at no risk of staleness beyond
// it.
const appTTL = 30 * time.Second

type cachedApp struct {
	app store.App
	at  time.Time
}

// app reads an app, from memory when it was read within appTTL.
func (s *Service) app(ctx context.Context, id string) (store.App, error) {
	now := s.now()
	if c, ok := s.apps.Load(id); ok && now.Sub(c.(cachedApp).at) < appTTL {
		return c.(cachedApp).app, nil
	}
	a, err := s.st.App(ctx, id)
	if err != nil {
		return store.App{}, err
	}
	s.apps.Store(strings.Clone(id), cachedApp{app: a, at: now})
	return a, nil
}

// Session describes the user behind a ticket.
func (s *Service) Session(ctx context.Context, p Principal) (wire.Session, error) {
	left, err := s.st.RecoveryCodesLeft(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return wire.Session{}, fault("session", err)
	}
	passkeys, err := s.st.PasskeysOfUser(ctx, p.App.ID, p.Ticket.User)
	if err != nil {
		return wire.Session{}, fault("session", err)
	}
	return wire.Session{
		User:         p.Ticket.User,
		Factors:      wire.Factors{TOTP: len(p.Account.TOTPs) > 0, Passkeys: len(passkeys), RecoveryCodesRemaining: left},
		ServerTime:   s.now().Truncate(time.Millisecond),
		Elevated:     p.Elevated(),
		Origins:      p.App.Origins,
		RecoveryUsed: p.Ticket.ElevatedBy == AMRRecovery,
	}, nil
}
