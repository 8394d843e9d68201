package api

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/mfa"
)

const principalKey = "twofold.principal"

var errOrigin = wire.NewError(wire.CodeOriginNotAllowed, "This page is not allowed to use this verifier. Open the app from its real address.")

// credential returns what follows scheme in the Authorization header.
func credential(c *fiber.Ctx, scheme string) (string, bool) {
	v := c.Get(fiber.HeaderAuthorization)
	if len(v) <= len(scheme)+1 || !strings.EqualFold(v[:len(scheme)], scheme) || v[len(scheme)] != ' ' {
		return "", false
	}
	return strings.TrimSpace(v[len(scheme)+1:]), true
}

func (h *handlers) appAuth(c *fiber.Ctx) error {
	key, ok := credential(c, "Bearer")
	if !ok {
		return wire.NewError(wire.CodeInvalidAPIKey, "Send the app's API key as Authorization: Bearer <key>.")
	}
	app, err := h.MFA.AuthenticateApp(c.UserContext(), key)
	if err != nil {
		return err
	}
	c.Locals(principalKey, mfa.Principal{App: app})
	return c.Next()
}

// preflight answers CORS preflights for origins some app lists; the real request is then
// checked against the ticket's own app in ticketAuth.
func (h *handlers) preflight(c *fiber.Ctx) error {
	origin := c.Get(fiber.HeaderOrigin)
	c.Vary(fiber.HeaderOrigin)
	known, err := h.MFA.OriginKnown(c.UserContext(), origin)
	if err != nil {
		return err
	}
	if !known {
		return errOrigin
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
	c.Set(fiber.HeaderAccessControlAllowMethods, "GET, POST, DELETE")
	c.Set(fiber.HeaderAccessControlAllowHeaders, "Authorization, Content-Type")
	c.Set(fiber.HeaderAccessControlMaxAge, "600")
	return c.SendStatus(fiber.StatusNoContent)
}

// ticketAuth authenticates a browser call: a live ticket, sent from one of its app's
// origins. Anything else changes nothing.
func (h *handlers) ticketAuth(c *fiber.Ctx) error {
	origin := c.Get(fiber.HeaderOrigin)
	c.Vary(fiber.HeaderOrigin)
	raw, ok := credential(c, "Ticket")
	if !ok {
		return h.readable(c, wire.NewError(wire.CodeInvalidTicket, "Send the ticket from your app as Authorization: Ticket <ticket>."))
	}
	p, err := h.MFA.Authenticate(c.UserContext(), raw)
	if err != nil {
		return h.readable(c, err)
	}
	allowed := false
	for _, o := range p.App.Origins {
		allowed = allowed || o == origin
	}
	if !allowed || !fetchedByScript(c) {
		h.MFA.OriginRefused(c.UserContext(), h.client(c, p), "request from origin "+strconv.Quote(origin))
		return errOrigin
	}
	c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
	c.Set(fiber.HeaderAccessControlExposeHeaders, "Retry-After, Date")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Locals(principalKey, h.client(c, p))
	return c.Next()
}

// client fills in who is calling: address and user agent.
func (h *handlers) client(c *fiber.Ctx, p mfa.Principal) mfa.Principal {
	p.IP = h.clientIP(c)
	p.UserAgent = c.Get(fiber.HeaderUserAgent)
	if len(p.UserAgent) > 256 {
		p.UserAgent = p.UserAgent[:256]
	}
	return p
}

// clientIP is the peer's address, or, when the peer is a trusted proxy, the client its
// forwarding headers name. Per-address limits and the audit trail see this address.
func (h *handlers) clientIP(c *fiber.Ctx) string {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return h.Proxies.Client(peer, func(name string) []string {
		var values []string
		for _, v := range c.Request().Header.PeekAll(name) {
			values = append(values, string(v))
		}
		return values
	}).String()
}

// fetchedByScript checks the Fetch Metadata a browser adds: browser calls come from the
// SDK's fetch() (mode cors, destination empty), never from a navigation, a form, an <img>
// or a no-cors request that another page could make a browser send. Clients that send no
// Fetch Metadata (older browsers, tests) are judged by Origin alone.
func fetchedByScript(c *fiber.Ctx) bool {
	mode, dest, site := c.Get("Sec-Fetch-Mode"), c.Get("Sec-Fetch-Dest"), c.Get("Sec-Fetch-Site")
	return (mode == "" || mode == "cors") && (dest == "" || dest == "empty") && site != "none"
}

// readable lets a page on any app's origin read why its ticket was refused (an expired
// ticket must not look like a CORS failure to the SDK); the answer carries nothing secret.
func (h *handlers) readable(c *fiber.Ctx, err error) error {
	origin := c.Get(fiber.HeaderOrigin)
	if known, kerr := h.MFA.OriginKnown(c.UserContext(), origin); kerr == nil && known {
		c.Set(fiber.HeaderAccessControlAllowOrigin, origin)
	}
	return err
}

func principal(c *fiber.Ctx) mfa.Principal {
	p, _ := c.Locals(principalKey).(mfa.Principal)
	return p
}
