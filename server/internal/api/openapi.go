package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/twofold-dev/twofold/internal/wire"
)

// The OpenAPI 3.1 document of this API, served at /openapi.json. Request and response
// schemas are derived from the internal/wire types the handlers encode, so a field added
// there is documented at once; the route list is checked against the app in
// openapi_test.go, so a route cannot be added without its entry.

type schema = map[string]any

// schemaOf describes the JSON encoding/json makes of t.
func schemaOf(t reflect.Type) schema {
	if t == reflect.TypeOf(time.Time{}) {
		return schema{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		s["type"] = []any{s["type"], "null"}
		return s
	case reflect.String:
		return schema{"type": "string"}
	case reflect.Bool:
		return schema{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return schema{"type": "integer"}
	case reflect.Slice:
		return schema{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return schema{"type": "object"}
	case reflect.Struct:
		props := schema{}
		var required []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
				// encoding/json lifts an untagged embedded struct's fields.
				inner := schemaOf(f.Type)
				for k, v := range inner["properties"].(schema) {
					props[k] = v
				}
				if r, ok := inner["required"].([]string); ok {
					required = append(required, r...)
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schemaOf(f.Type)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
		}
		s := schema{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			sort.Strings(required)
			s["required"] = required
		}
		return s
	}
	return schema{}
}

func ref(name string) schema { return schema{"$ref": "#/components/schemas/" + name} }

// op describes one operation: who calls it, what it takes and answers, and which errors.
type op struct {
	summary string
	auth    string // "app", "ticket", "admin" or ""
	body    string // request schema name, "" for none
	status  int
	result  string // response schema name, "" for no body
	errors  []int
	params  []string
	noStore bool
}

var errSchema = "Error"

func (o op) build() schema {
	s := schema{"summary": o.summary}
	var params []any
	for _, p := range o.params {
		params = append(params, schema{"name": p, "in": "path", "required": true, "schema": schema{"type": "string"}})
	}
	if o.auth == "ticket" {
		params = append(params, schema{"name": "Origin", "in": "header", "required": true, "schema": schema{"type": "string"},
			"description": "One of the app's origins; anything else is 403 origin_not_allowed."})
	}
	if o.auth == "admin" {
		params = append(params, schema{"name": AdminTokenHeader, "in": "header", "required": true, "schema": schema{"type": "string"},
			"description": "The admin's own fresh second-factor token from the admin app."})
	}
	if len(params) > 0 {
		s["parameters"] = params
	}
	switch o.auth {
	case "app", "admin":
		s["security"] = []any{schema{"apiKey": []any{}}}
	case "ticket":
		s["security"] = []any{schema{"ticket": []any{}}}
	}
	if o.body != "" {
		s["requestBody"] = schema{"required": true, "content": schema{"application/json": schema{"schema": ref(o.body)}}}
	}
	res := schema{}
	ok := schema{"description": http.StatusText(o.status)}
	if o.result != "" {
		ok["content"] = schema{"application/json": schema{"schema": ref(o.result)}}
	}
	if o.noStore {
		ok["headers"] = schema{"Cache-Control": schema{"schema": schema{"type": "string", "const": "no-store"}}}
	}
	res[itoa(o.status)] = ok
	errs := o.errors
	if o.body != "" { // the body limit answers before the handler
		errs = append(slices.Clone(errs), fiber.StatusRequestEntityTooLarge)
	}
	for _, st := range errs {
		e := schema{"description": http.StatusText(st), "content": schema{"application/json": schema{"schema": ref(errSchema)}}}
		if st == fiber.StatusTooManyRequests {
			e["headers"] = schema{"Retry-After": schema{"schema": schema{"type": "integer"}}}
		}
		res[itoa(st)] = e
	}
	s["responses"] = res
	return s
}

// browserErrors are what every ticket-authenticated call may answer besides its own.
var browserErrors = []int{400, 401, 403, 500}

// operations is every route: path (OpenAPI template) → method → operation.
func operations() map[string]map[string]op {
	b := func(o op) op {
		o.auth, o.noStore = "ticket", true
		o.errors = append(append([]int{}, browserErrors...), o.errors...)
		return o
	}
	return map[string]map[string]op{
		"/healthz":                          {"get": {summary: "Liveness.", status: 200, result: "Status"}},
		"/readyz":                           {"get": {summary: "Readiness: 503 while a backing store is unreachable; 200 with status \"warning\" when the verifier's clock looks off.", status: 200, result: "Readiness", errors: []int{503}}},
		"/.well-known/jwks.json":            {"get": {summary: "Every key that may have signed a live token.", status: 200, result: "JWKS"}},
		"/.well-known/openid-configuration": {"get": {summary: "Issuer metadata.", status: 200, result: "Discovery"}},
		"/openapi.json":                     {"get": {summary: "This document.", status: 200, result: "OpenAPI"}},
		"/metrics":                          {"get": {summary: "Prometheus text format (bind it privately).", status: 200}},
		"/v1/tickets":                       {"post": {summary: "A ticket naming one user of the calling app, for its page.", auth: "app", body: "TicketRequest", status: 201, result: "TicketResponse", errors: []int{400, 401, 500}, noStore: true}},
		"/v1/users/{user}/policy":           {"put": {summary: "Set a user's factor policy (e.g. passkey_only).", auth: "app", body: "PolicyRequest", status: 204, errors: []int{400, 401, 404, 500}, params: []string{"user"}}},
		"/v1/users/{user}/events":           {"get": {summary: "A user's newest security events (?limit=, at most 100), newest first.", auth: "app", status: 200, result: "EventList", errors: []int{400, 401, 500}, params: []string{"user"}, noStore: true}},
		"/v1/session":                       {"get": b(op{summary: "The ticket's user, factors, server time and the app's origins.", status: 200, result: "Session"})},
		"/v1/totp/enrollments":              {"post": b(op{summary: "Start enrolling an authenticator app: the secret and its QR code.", body: "EnrollmentRequest", status: 201, result: "Enrollment", errors: []int{404, 409}})},
		"/v1/totp/enrollments/{id}/confirm": {"post": b(op{summary: "Confirm an enrollment with its first code; the first one brings recovery codes.", body: "CodeRequest", status: 200, result: "Confirmation", errors: []int{404, 409, 423, 429}, params: []string{"id"}})},
		"/v1/totp/verify":                   {"post": b(op{summary: "Check a TOTP code; a token when it is right.", body: "CodeRequest", status: 200, result: "Token", errors: []int{404, 409, 423, 429, 503}})},
		"/v1/recovery/verify":               {"post": b(op{summary: "Use a recovery code once.", body: "CodeRequest", status: 200, result: "Token", errors: []int{404, 423, 429, 503}})},
		"/v1/recovery/codes":                {"post": b(op{summary: "Replace the recovery codes (elevated ticket).", status: 200, result: "RecoveryCodes", errors: []int{404}})},
		"/v1/factors":                       {"get": b(op{summary: "The user's factors.", status: 200, result: "FactorList"})},
		"/v1/factors/{id}":                  {"delete": b(op{summary: "Remove a factor (elevated ticket).", status: 204, errors: []int{404, 409}, params: []string{"id"}})},
		"/v1/origin-refusals":               {"post": b(op{summary: "The SDK reports a page its origin guard refused.", body: "OriginRefusal", status: 204})},
		"/v1/webauthn/registrations":        {"post": b(op{summary: "Passkey creation options (elevated ticket).", status: 200, result: "PublicKeyOptions"})},
		"/v1/webauthn/registrations/finish": {"post": b(op{summary: "Register the credential as the browser's toJSON() gives it; ?label= names it.", body: "WebAuthnCredential", status: 201, result: "PasskeyRegistered"})},
		"/v1/webauthn/assertions":           {"post": b(op{summary: "Passkey request options.", body: "AssertionStart", status: 200, result: "PublicKeyOptions", errors: []int{404}})},
		"/v1/webauthn/assertions/finish":    {"post": b(op{summary: "Check the assertion; a token when it is right.", body: "WebAuthnCredential", status: 200, result: "Token", errors: []int{429}})},
		"/v1/admin/users/{user}/reset":      {"post": {summary: "Support reset: remove a user's authenticators and recovery codes, lift their limits.", auth: "admin", body: "ResetRequest", status: 200, result: "ResetResult", errors: []int{400, 401, 403, 404, 500}, params: []string{"user"}, noStore: true}},
	}
}

func schemas() schema {
	open := schema{"type": "object"}
	return schema{
		"Error":             schemaOf(reflect.TypeOf(wire.Error{})),
		"TicketRequest":     schemaOf(reflect.TypeOf(wire.TicketRequest{})),
		"TicketResponse":    schemaOf(reflect.TypeOf(wire.TicketResponse{})),
		"PolicyRequest":     schemaOf(reflect.TypeOf(wire.PolicyRequest{})),
		"EventList":         schemaOf(reflect.TypeOf(wire.EventList{})),
		"Session":           schemaOf(reflect.TypeOf(wire.Session{})),
		"EnrollmentRequest": schemaOf(reflect.TypeOf(wire.EnrollmentRequest{})),
		"Enrollment":        schemaOf(reflect.TypeOf(wire.Enrollment{})),
		"CodeRequest":       schemaOf(reflect.TypeOf(wire.CodeRequest{})),
		"Confirmation":      schemaOf(reflect.TypeOf(wire.Confirmation{})),
		"Token":             schemaOf(reflect.TypeOf(wire.Token{})),
		"RecoveryCodes":     schemaOf(reflect.TypeOf(wire.RecoveryCodes{})),
		"FactorList":        schemaOf(reflect.TypeOf(wire.FactorList{})),
		"OriginRefusal":     schemaOf(reflect.TypeOf(refusal{})),
		"AssertionStart":    schemaOf(reflect.TypeOf(assertionStart{})),
		"PasskeyRegistered": schemaOf(reflect.TypeOf(wire.PasskeyRegistered{})),
		"ResetRequest":      schemaOf(reflect.TypeOf(ResetRequest{})),
		"ResetResult": schema{"type": "object", "required": []string{"reset", "app", "user"}, "additionalProperties": false, "properties": schema{
			"reset": schema{"type": "boolean"}, "app": schema{"type": "string"}, "user": schema{"type": "string"}}},
		"Status":             schema{"type": "object", "required": []string{"status"}, "properties": schema{"status": schema{"type": "string"}}},
		"Readiness":          schema{"type": "object", "required": []string{"status", "checks"}, "properties": schema{"status": schema{"enum": []string{"ok", "warning", "unavailable"}}, "checks": open, "warnings": open}},
		"JWKS":               schema{"type": "object", "required": []string{"keys"}, "properties": schema{"keys": schema{"type": "array", "items": open}}},
		"Discovery":          schema{"type": "object", "required": []string{"issuer", "jwks_uri", "id_token_signing_alg_values_supported"}},
		"OpenAPI":            open,
		"PublicKeyOptions":   schema{"type": "object", "required": []string{"publicKey"}, "properties": schema{"publicKey": open}},
		"WebAuthnCredential": schema{"type": "object", "description": "PublicKeyCredential.toJSON()"},
	}
}

// OpenAPI returns the document.
func OpenAPI() []byte {
	paths := schema{}
	for p, methods := range operations() {
		item := schema{}
		for m, o := range methods {
			item[m] = o.build()
		}
		paths[p] = item
	}
	doc := schema{
		"openapi": "3.1.0",
		"info": schema{"title": "twofold verifier", "version": "1",
			"description": "Self-hosted second factor: tickets for apps, TOTP and passkeys for browsers, JWTs for backends. Every error is {\"error\",\"message\"}."},
		"paths": paths,
		"components": schema{
			"schemas": schemas(),
			"securitySchemes": schema{
				"apiKey": schema{"type": "http", "scheme": "bearer", "description": "The app's API key."},
				"ticket": schema{"type": "apiKey", "in": "header", "name": "Authorization", "description": "Ticket <ticket>"},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // unreachable: maps of strings, slices and bools
	}
	return b
}

var openAPIDoc = OpenAPI()

func (h *handlers) openapi(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(openAPIDoc)
}
