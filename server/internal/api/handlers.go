package api

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/internal/wire"
)

// decode reads a JSON body into v. An empty body is allowed where every field is optional.
func decode(c *fiber.Ctx, v any, optional bool) error {
	body := c.Body()
	if len(body) == 0 && optional {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return wire.NewError(wire.CodeInvalidRequest, "The request body must be a JSON object with the documented fields.")
	}
	return nil
}

func (h *handlers) createTicket(c *fiber.Ctx) error {
	var req wire.TicketRequest
	if err := decode(c, &req, false); err != nil {
		return err
	}
	t, err := h.MFA.IssueTicket(c.UserContext(), principal(c).App, req)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(t)
}

func (h *handlers) session(c *fiber.Ctx) error {
	s, err := h.MFA.Session(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(s)
}

func (h *handlers) startEnrollment(c *fiber.Ctx) error {
	var req wire.EnrollmentRequest
	if err := decode(c, &req, true); err != nil {
		return err
	}
	e, err := h.MFA.StartEnrollment(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(e)
}

func (h *handlers) code(c *fiber.Ctx) (string, error) {
	var req wire.CodeRequest
	if err := decode(c, &req, false); err != nil {
		return "", err
	}
	if req.Code == "" || len(req.Code) > 64 {
		return "", wire.NewError(wire.CodeInvalidRequest, "Send the code as {\"code\":\"123456\"}.")
	}
	return req.Code, nil
}

func (h *handlers) confirmEnrollment(c *fiber.Ctx) error {
	code, err := h.code(c)
	if err != nil {
		return err
	}
	r, err := h.MFA.ConfirmEnrollment(c.UserContext(), principal(c), c.Params("id"), code)
	if err != nil {
		return err
	}
	return c.JSON(r)
}

func (h *handlers) verifyTOTP(c *fiber.Ctx) error {
	code, err := h.code(c)
	if err != nil {
		return err
	}
	t, err := h.MFA.VerifyTOTP(c.UserContext(), principal(c), code)
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (h *handlers) verifyRecovery(c *fiber.Ctx) error {
	code, err := h.code(c)
	if err != nil {
		return err
	}
	t, err := h.MFA.VerifyRecovery(c.UserContext(), principal(c), code)
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (h *handlers) regenerateRecoveryCodes(c *fiber.Ctx) error {
	r, err := h.MFA.RegenerateRecoveryCodes(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(r)
}

func (h *handlers) factors(c *fiber.Ctx) error {
	f, err := h.MFA.Factors(c.UserContext(), principal(c))
	if err != nil {
		return err
	}
	return c.JSON(f)
}

func (h *handlers) deleteFactor(c *fiber.Ctx) error {
	if err := h.MFA.DeleteFactor(c.UserContext(), principal(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
