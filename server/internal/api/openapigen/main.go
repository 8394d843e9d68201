// Command openapigen writes the OpenAPI document GET /openapi.json serves to
// docs/openapi.json, so the repository holds the same document the server answers with:
//
//	go run ./server/internal/api/openapigen [-o docs/openapi.json]
//
// api's TestOpenAPI_CommittedFile_IsWhatTheServerServes fails when the two differ.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/twofold-dev/twofold/server/internal/api"
)

func main() {
	out := flag.String("o", "docs/openapi.json", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, append(api.OpenAPI(), '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}
