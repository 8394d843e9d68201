package api

import (
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/twofold-dev/twofold/server/internal/audit"
)

// committedOpenAPI is the document in the repository, relative to this package.
const committedOpenAPI = "../../../docs/openapi.json"

// TestOpenAPI_CommittedFile_IsWhatTheServerServes fails when docs/openapi.json is stale:
// a route, schema or wire field changed without the file being regenerated.
func TestOpenAPI_CommittedFile_IsWhatTheServerServes(t *testing.T) {
	committed, err := os.ReadFile(committedOpenAPI)
	if err != nil {
		t.Fatalf("%v; write it with: go run ./server/internal/api/openapigen", err)
	}
	app := New(Deps{Metrics: audit.NewMetrics(), Tokens: noTokens{}})
	res, err := app.Test(httptest.NewRequest("GET", "/openapi.json", nil))
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(res.Body)
	for _, tc := range []struct {
		name string
		doc  []byte
	}{
		{"served at /openapi.json", served},
		{"api.OpenAPI()", OpenAPI()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Equal(bytes.TrimSpace(committed), bytes.TrimSpace(tc.doc)) {
				t.Errorf("docs/openapi.json differs from the document %s (first difference at byte %d); "+
					"regenerate it with: go run ./server/internal/api/openapigen", tc.name, firstDiff(committed, tc.doc))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
