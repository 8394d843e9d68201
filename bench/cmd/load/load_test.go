package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/bench/load"
)

// TestMain lets the test binary stand in for the ceiling child, as the real binary does.
func TestMain(m *testing.M) {
	if addr := os.Getenv(childEnv); addr != "" {
		if err := serveCeiling(addr); err != nil {
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// TestLoad_SQLiteSmoke runs the whole benchmark briefly against 50 SQLite users: it must
// produce a results row with successes, and no 5xx. It asserts nothing about speed.
func TestLoad_SQLiteSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the verifier")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "twofold")
	if err := buildVerifier(ctx, bin); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := run(ctx, options{
		Bin: bin, Runs: "sqlite", Users: 50, Conns: 8, Warmup: 200 * time.Millisecond, Measure: time.Second,
		Mix: "valid=0.8,wrong=0.1,replay=0.1", Out: out, Log: io.Discard, Quiet: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var written load.Results
	if err := json.Unmarshal(b, &written); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if len(written.Runs) != 1 || len(res.Runs) != 1 {
		t.Fatalf("want one run, got %d written and %d returned", len(written.Runs), len(res.Runs))
	}
	r := written.Runs[0]
	if r.Name != "sqlite" || r.Users != 50 || r.VerifyOKPerS <= 0 || r.CeilingPerS <= 0 {
		t.Errorf("run row %+v: want successes against 50 sqlite users and a ceiling", r)
	}
	if r.ServerErrors != 0 {
		t.Errorf("%d answers were 5xx", r.ServerErrors)
	}
	if _, err := os.Stat(filepath.Join(out, "latency.svg")); err != nil {
		t.Error(err)
	}
}
