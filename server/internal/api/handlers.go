package api

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/internal/wire"
)

// decode reads a JSON object body into v. An empty body is allowed where every field is
// optional. It is the one place request bodies are parsed; its callers are fuzzed.
//
// It parses with the JSON v2 library (encoding/json/v2 in waiting), which refuses a name
// given twice and matches names only as spelled, and refuses a body that a case-blind
// reader (encoding/json, many proxies and log pipelines) would read otherwise: with
// {"user":"alice","User":"mallory"} they see mallory where the verifier would see alice.
func decode(body []byte, v any, optional bool) error {
	if len(body) == 0 && optional {
		return nil
	}
	// Invalid UTF-8 would let two different byte strings read as one user id; the decoder
	// refuses it too, but this says plainly what is wrong.
	if !utf8.Valid(body) {
		return wire.NewError(wire.CodeInvalidRequest, "The request body must be UTF-8 encoded JSON.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return wire.NewError(wire.CodeInvalidRequest, "The request body must be a JSON object with the documented fields.")
	}
	folded := reflect.New(reflect.TypeOf(v).Elem())
	if err := json.Unmarshal(body, folded.Interface(), json.MatchCaseInsensitiveNames(true)); err != nil ||
		!reflect.DeepEqual(reflect.ValueOf(v).Elem().Interface(), folded.Elem().Interface()) {
		return wire.NewError(wire.CodeInvalidRequest, "Field names are case-sensitive and each may appear once: send the documented names, in lower case.")
	}
	return nil
}

func decodeTicket(body []byte) (wire.TicketRequest, error) {
	var r wire.TicketRequest
	if err := decode(body, &r, false); err != nil {
		return r, err
	}
	return r, checkFields(wire.CheckUser(r.User), wire.CheckText("nonce", r.Nonce, false))
}

func decodeEnrollment(body []byte) (wire.EnrollmentRequest, error) {
	var r wire.EnrollmentRequest
	if err := decode(body, &r, true); err != nil {
		return r, err
	}
	return r, checkFields(wire.CheckText("label", r.Label, false), wire.CheckText("replaces", r.Replaces, false))
}

type assertionStart struct {
	Discoverable bool `json:"discoverable"`
}

func decodeAssertionStart(body []byte) (assertionStart, error) {
	var r assertionStart
	return r, decode(body, &r, true)
}

func decodePolicy(body []byte) (wire.PolicyRequest, error) {
	var r wire.PolicyRequest
	return r, decode(body, &r, false)
}

type refusal struct {
	PageOrigin string   `json:"page_origin"`
	Reason     string   `json:"reason"`
	Ancestors  []string `json:"ancestors"`
}

func decodeRefusal(body []byte) (refusal, error) {
	var r refusal
	if err := decode(body, &r, false); err != nil {
		return r, err
	}
	problems := []string{wire.CheckText("page_origin", r.PageOrigin, true), wire.CheckText("reason", r.Reason, true)}
	if len(r.Ancestors) > 16 {
		problems = append(problems, "ancestors: at most 16.")
	}
	for _, a := range r.Ancestors {
		problems = append(problems, wire.CheckText("ancestors", a, true))
	}
	return r, checkFields(problems...)
}

// checkFields turns the first problem found into an invalid_request.
func checkFields(problems ...string) error {
	for _, p := range problems {
		if p != "" {
			return wire.NewError(wire.CodeInvalidRequest, p)
		}
	}
	return nil
}

func decodeCode(body []byte) (string, error) {
	var r wire.CodeRequest
	if err := decode(body, &r, false); err != nil {
		return "", err
	}
	if r.Code == "" || len(r.Code) > 64 {
		return "", wire.NewError(wire.CodeInvalidRequest, "Send the code as {\"code\":\"123456\"}.")
	}
	return r.Code, nil
}

func (h *handlers) createTicket(c *fiber.Ctx) error {
	req, err := decodeTicket(c.Body())
	if err != nil {
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
	req, err := decodeEnrollment(c.Body())
	if err != nil {
		return err
	}
	e, err := h.MFA.StartEnrollment(c.UserContext(), principal(c), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(e)
}

func (h *handlers) confirmEnrollment(c *fiber.Ctx) error {
	code, err := decodeCode(c.Body())
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
	code, err := decodeCode(c.Body())
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
	code, err := decodeCode(c.Body())
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

// originRefusal is what the SDK reports when its guard refused the page it runs in: a page
// framed by another origin, or one a proxy serves from a look-alike origin while rewriting
// the Origin header (which the verifier cannot see for itself).
func (h *handlers) originRefusal(c *fiber.Ctx) error {
	req, err := decodeRefusal(c.Body())
	if err != nil {
		return err
	}
	detail := req.Reason + ": page " + strconv.Quote(req.PageOrigin)
	if len(req.Ancestors) > 0 {
		detail += " framed by " + strconv.Quote(strings.Join(req.Ancestors, " < "))
	}
	if len(detail) > 512 {
		detail = detail[:512]
	}
	h.MFA.OriginRefused(c.UserContext(), principal(c), detail)
	return c.SendStatus(fiber.StatusNoContent)
}
