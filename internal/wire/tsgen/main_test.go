package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestWireTS_MatchesGoTypes fails when sdk-js/src/wire.ts is not what the Go types of
// internal/wire generate, so a change on one side cannot ship without the other.
func TestWireTS_MatchesGoTypes(t *testing.T) {
	want, err := Generate("..")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "..", "sdk-js", "src", "wire.ts")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with internal/wire: run `go run ./internal/wire/tsgen` from the module root and commit the result", path)
	}
}

func TestGenerate_TypesTheSDKRelyOn(t *testing.T) {
	src, err := Generate("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"export interface Session {", "  origins: string[];", "  server_time: string /* RFC 3339 */;",
		"export interface Confirmation extends Token {", "export interface ErrorBody {", "  retry_after?: number;",
		`export const CodeOriginNotAllowed = "origin_not_allowed";`, "export type ErrorCode =",
	} {
		if !bytes.Contains(src, []byte(s)) {
			t.Errorf("generated wire.ts lacks %q", s)
		}
	}
}
