package api

import (
	"bytes"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/mfa"
)

// AdminTokenHeader carries the admin's own fresh second-factor token on admin calls.
const AdminTokenHeader = "Twofold-Admin-Token"

// registerAdmin adds /metrics and the admin API. The admin API exists only when Tokens is
// set (it checks the admin's token); /metrics only when Metrics is.
func (h *handlers) registerAdmin(app *fiber.App, v1 fiber.Router) {
	if h.Metrics != nil {
		app.Get("/metrics", h.metrics)
	}
	if h.Tokens != nil {
		v1.Post("/admin/users/:user/reset", h.resetUser)
	}
}

// countRequests counts every answer by route pattern and status; it runs outside common,
// so it sees the status of error answers too.
func (h *handlers) countRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	h.Metrics.Request(c.Route().Path, c.Response().StatusCode())
	h.Metrics.RequestDuration(c.Route().Path, metricMethod(c.Method()), time.Since(start))
	return err
}

// metricMethod names a request's method in metrics: a fixed string (Fiber's own may be
// a view of a reused buffer), and "other" for anything unusual, so a client cannot grow
// the series without bound.
func metricMethod(m string) string {
	switch m {
	case fiber.MethodGet:
		return "GET"
	case fiber.MethodHead:
		return "HEAD"
	case fiber.MethodPost:
		return "POST"
	case fiber.MethodPut:
		return "PUT"
	case fiber.MethodDelete:
		return "DELETE"
	case fiber.MethodOptions:
		return "OPTIONS"
	case fiber.MethodPatch:
		return "PATCH"
	}
	return "other"
}

func (h *handlers) metrics(c *fiber.Ctx) error {
	var b bytes.Buffer
	if err := h.Metrics.WritePrometheus(&b); err != nil {
		return err
	}
	for _, g := range h.Gauges {
		if err := g(&b); err != nil {
			return err
		}
	}
	c.Set(fiber.HeaderContentType, audit.ContentType)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(b.Bytes())
}

// authorizeAdmin needs both an admin app's API key and that admin's fresh second factor,
// for an action on app forApp.
func (h *handlers) authorizeAdmin(c *fiber.Ctx, forApp string) (mfa.Admin, error) {
	key, ok := credential(c, "Bearer")
	if !ok {
		return mfa.Admin{}, wire.NewError(wire.CodeInvalidAPIKey, "Send the admin app's API key as Authorization: Bearer <key>.")
	}
	admin, err := h.MFA.AuthorizeAdmin(c.UserContext(), key, c.Get(AdminTokenHeader), h.Tokens, forApp)
	admin.IP = h.clientIP(c)
	return admin, err
}

// ResetRequest is the body of POST /v1/admin/users/{user}/reset. App may be given as the
// query parameter app instead.
type ResetRequest struct {
	Reason string `json:"reason"`
	App    string `json:"app"`
}

func decodeReset(body []byte, queryApp string) (ResetRequest, error) {
	var r ResetRequest
	if err := decode(body, &r, false); err != nil {
		return r, err
	}
	switch {
	case r.App == "":
		r.App = queryApp
	case queryApp != "" && queryApp != r.App:
		return r, wire.NewError(wire.CodeInvalidRequest, "The app in the query and the app in the body differ; send one.")
	}
	return r, checkFields(
		wire.CheckText("app", r.App, true),
		wire.CheckText("reason", r.Reason, true),
	)
}

// resetUser checks the request before the admin's credentials. The reset itself spends
// the admin's token (one action per sign-in), in its transaction: a request refused or a
// reset that failed costs the admin no new sign-in.
func (h *handlers) resetUser(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	req, err := decodeReset(c.Body(), c.Query("app"))
	if err != nil {
		return err
	}
	user, err := pathParam(c, "user")
	if err != nil {
		return err
	}
	admin, err := h.authorizeAdmin(c, req.App)
	if err != nil {
		return err
	}
	if err := h.MFA.ResetUser(c.UserContext(), req.App, user, req.Reason, admin); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"reset": true, "app": req.App, "user": user})
}

// pathParam is a URL-decoded path parameter that passes the same checks as a user id.
func pathParam(c *fiber.Ctx, name string) (string, error) {
	v, err := url.PathUnescape(c.Params(name))
	if err != nil {
		return "", wire.NewError(wire.CodeInvalidRequest, "The "+name+" in the path is not correctly URL-encoded.")
	}
	if msg := wire.CheckText(name, v, true); msg != "" {
		return "", wire.NewError(wire.CodeInvalidRequest, msg)
	}
	return v, nil
}
