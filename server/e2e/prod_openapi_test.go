package e2e

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Real answers have the shape /openapi.json gives them: every required field present,
// no field it does not list.
func TestOpenAPI_RealAnswersMatchTheDocumentedShapes(t *testing.T) {
	v := startVerifier(t)
	var doc map[string]any
	if r := v.call("GET", "/openapi.json", "", "", nil); r.Status != 200 || json.Unmarshal(r.Raw, &doc) != nil {
		t.Fatalf("GET /openapi.json: %d", r.Status)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	shape := func(path, method string, status int) map[string]any {
		op, _ := doc["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
		res, _ := op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
		content, _ := res["content"].(map[string]any)["application/json"].(map[string]any)
		sch, _ := content["schema"].(map[string]any)
		if ref, ok := sch["$ref"].(string); ok {
			sch, _ = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		}
		if sch == nil {
			t.Fatalf("%s %s %d is not documented", method, path, status)
		}
		return sch
	}
	check := func(path, method string, r reply) {
		t.Helper()
		sch := shape(path, method, r.Status)
		props, _ := sch["properties"].(map[string]any)
		for _, k := range sch["required"].([]any) {
			if _, ok := r.Body[k.(string)]; !ok {
				t.Errorf("%s %s %d: required %q missing from %s", method, path, r.Status, k, r.Raw)
			}
		}
		if sch["additionalProperties"] == false {
			var extra []string
			for k := range r.Body {
				if _, ok := props[k]; !ok {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Errorf("%s %s %d: fields %v are not documented", method, path, r.Status, extra)
			}
		}
	}
	check("/v1/tickets", "post", v.call("POST", "/v1/tickets", "Bearer "+v.APIKey, "", wire.TicketRequest{User: "oa"}))
	check("/v1/tickets", "post", v.call("POST", "/v1/tickets", "Bearer nope", "", wire.TicketRequest{User: "oa"}))
	b := v.ticket("oa")
	check("/v1/session", "get", b.call("GET", "/v1/session", nil))
	en := b.call("POST", "/v1/totp/enrollments", nil)
	check("/v1/totp/enrollments", "post", en)
	check("/v1/totp/enrollments/{id}/confirm", "post", b.call("POST", "/v1/totp/enrollments/"+en.str("id")+"/confirm", wire.CodeRequest{Code: code(t, en.str("secret"), v.Clock.Now())}))
	check("/v1/totp/verify", "post", b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: "000000"}))
	check("/v1/totp/verify", "post", b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: code(t, en.str("secret"), v.Clock.Now().Add(30*time.Second))}))
	check("/v1/factors", "get", b.call("GET", "/v1/factors", nil))
	check("/v1/recovery/codes", "post", b.call("POST", "/v1/recovery/codes", nil))
	check("/readyz", "get", v.call("GET", "/readyz", "", "", nil))
	check("/healthz", "get", v.call("GET", "/healthz", "", "", nil))
	// Answers that come before the handler's own: a body over the limit, a passkey login
	// for a user with no passkey.
	check("/v1/totp/verify", "post", b.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: strings.Repeat("1", 1<<20)}))
	check("/v1/webauthn/assertions", "post", v.ticket("oa-nopasskey").call("POST", "/v1/webauthn/assertions", nil))
}
