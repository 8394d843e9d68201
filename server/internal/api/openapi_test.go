package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/twofold-dev/twofold/server/internal/audit"
)

type noTokens struct{}

func (noTokens) Verify(context.Context, string, string) (map[string]any, error) { return nil, nil }

// documented reads the served document's paths: OpenAPI path → set of lower-case methods.
func documented(t *testing.T) map[string]map[string]bool {
	t.Helper()
	app := New(Deps{Metrics: audit.NewMetrics(), Tokens: noTokens{}})
	res, err := app.Test(httptest.NewRequest("GET", "/openapi.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || res.StatusCode != 200 || doc.OpenAPI != "3.1.0" {
		t.Fatalf("GET /openapi.json: %d %v %.200s", res.StatusCode, err, raw)
	}
	out := map[string]map[string]bool{}
	for p, item := range doc.Paths {
		out[p] = map[string]bool{}
		for m := range item {
			out[p][m] = true
		}
	}
	return out
}

var fiberParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestOpenAPI_EveryRouteDocumented_EveryDocumentedRouteExists fails when a route is added
// without its entry, or an entry outlives its route. Fiber's automatic HEAD twins of GET
// routes and the CORS preflight on /v1/* (answered for any path) are not API operations.
func TestOpenAPI_EveryRouteDocumented_EveryDocumentedRouteExists(t *testing.T) {
	doc := documented(t)
	app := New(Deps{Metrics: audit.NewMetrics(), Tokens: noTokens{}})
	registered := map[string]map[string]bool{}
	for _, r := range app.GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "OPTIONS" || strings.Contains(r.Path, "*") {
			continue
		}
		p := fiberParam.ReplaceAllString(r.Path, "{$1}")
		m := strings.ToLower(r.Method)
		if registered[p] == nil {
			registered[p] = map[string]bool{}
		}
		registered[p][m] = true
		if !doc[p][m] {
			t.Errorf("route %s %s is not in /openapi.json", r.Method, p)
		}
	}
	for p, methods := range doc {
		for m := range methods {
			if !registered[p][m] {
				t.Errorf("/openapi.json documents %s %s, which is no route", strings.ToUpper(m), p)
			}
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d routes seen: the route walk is broken", len(registered))
	}
}

// Every operation declares its success and its errors, each error with the one error
// schema, and every $ref resolves.
func TestOpenAPI_EveryOperationHasResponsesAndRefsResolve(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	raw := string(OpenAPI())
	for _, m := range regexp.MustCompile(`"\$ref": "#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(raw, -1) {
		if schemas[m[1]] == nil {
			t.Errorf("$ref to missing schema %s", m[1])
		}
	}
	for p, item := range doc["paths"].(map[string]any) {
		for m, o := range item.(map[string]any) {
			res, _ := o.(map[string]any)["responses"].(map[string]any)
			hasSuccess := false
			for code, r := range res {
				if code[0] == '2' {
					hasSuccess = true
					continue
				}
				if !strings.Contains(mustMarshal(r), "#/components/schemas/Error") {
					t.Errorf("%s %s: error %s does not use the Error schema", m, p, code)
				}
			}
			if !hasSuccess {
				t.Errorf("%s %s: no success response", m, p)
			}
		}
	}
	// The error schema is the wire error: error and message required.
	req := schemas["Error"].(map[string]any)["required"]
	if mustMarshal(req) != `["error","message"]` {
		t.Errorf("Error.required = %s", mustMarshal(req))
	}
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
