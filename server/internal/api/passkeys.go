package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/internal/wire"
)

func (h *handlers) beginPasskeyRegistration(c *fiber.Ctx) error {
	opts, err := h.MFA.BeginPasskeyRegistration(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(opts)
}

// finishPasskeyRegistration takes the credential exactly as the browser's toJSON() gives
// it; a label for the new passkey may come as ?label=.
func (h *handlers) finishPasskeyRegistration(c *fiber.Ctx) error {
	label := c.Query("label")
	if msg := wire.CheckText("label", label, false); msg != "" {
		return wire.NewError(wire.CodeInvalidRequest, msg)
	}
	r, err := h.MFA.FinishPasskeyRegistration(c.UserContext(), principal(c), c.Body(), label)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(r)
}

func (h *handlers) beginPasskeyLogin(c *fiber.Ctx) error {
	req, err := decodeAssertionStart(c.Body())
	if err != nil {
		return err
	}
	opts, err := h.MFA.BeginPasskeyLogin(c.UserContext(), principal(c), req.Discoverable)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(opts)
}

func (h *handlers) finishPasskeyLogin(c *fiber.Ctx) error {
	t, err := h.MFA.FinishPasskeyLogin(c.UserContext(), principal(c), c.Body())
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (h *handlers) setUserPolicy(c *fiber.Ctx) error {
	req, err := decodePolicy(c.Body())
	if err != nil {
		return err
	}
	user, err := pathParam(c, "user")
	if err != nil {
		return err
	}
	if err := h.MFA.SetUserPolicy(c.UserContext(), principal(c).App, user, req.Policy); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// userEvents lists a user's recent security events for the app's account page.
func (h *handlers) userEvents(c *fiber.Ctx) error {
	user, err := pathParam(c, "user")
	if err != nil {
		return err
	}
	ev, err := h.MFA.Events(c.UserContext(), principal(c).App, user, c.QueryInt("limit", 20))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(ev)
}
