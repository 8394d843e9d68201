package main

import (
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	code := m.Run()
	if verifierDir != "" {
		os.RemoveAll(verifierDir)
	}
	os.Exit(code)
}

// verifierDir holds the verifier that the smoke tests share, built by the first that
// needs it; TestMain removes it.
var verifierDir string

var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "twofold-load-test-")
	if err != nil {
		return "", err
	}
	verifierDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "twofold")
	return bin, buildVerifier(ctx, bin)
})

// verifier is the verifier of this tree, built once for all the tests that run it.
func verifier(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the verifier")
	}
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestLoad_SQLiteSmoke runs the whole benchmark briefly against 50 SQLite users, closed
// loop and then open loop at half the rate reached: it must produce a results row with
// successes and open-loop latencies, and no 5xx. It asserts nothing about speed.
func TestLoad_SQLiteSmoke(t *testing.T) {
	bin := verifier(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "out")
	profiles := filepath.Join(t.TempDir(), "profiles")
	res, err := run(ctx, options{
		// No warm-up: with few users the fresh codes (one per user per step) would all be
		// spent before the counted window opens.
		Bin: bin, Runs: "sqlite", Users: 50, Conns: 8, Warmup: 0, Measure: 2 * time.Second,
		Mix: "valid=0.8,wrong=0.1,replay=0.1", AtPeak: 0.5, Out: out, Log: io.Discard, Quiet: true,
		Profile: profiles,
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
		t.Errorf("run %s: %d users, %.0f ok/s, ceiling %.0f/s: want successes against 50 sqlite users and a ceiling", r.Name, r.Users, r.VerifyOKPerS, r.CeilingPerS)
	}
	if r.ServerErrors != 0 {
		t.Errorf("%d answers were 5xx", r.ServerErrors)
	}
	if r.AtPeak != 0.5 || r.RatePerS <= 0 || r.RateSentPerS <= 0 || r.RateP99MS <= 0 {
		t.Errorf("open loop at %v of peak: %.0f/s scheduled, %.0f/s sent, p99 %.2f ms: want a drive at half the closed loop's rate, with latencies",
			r.AtPeak, r.RatePerS, r.RateSentPerS, r.RateP99MS)
	}
	if r.RateUnexpected != 0 {
		t.Errorf("open loop: %d unexpected answers", r.RateUnexpected)
	}
	var timed int
	for _, w := range r.RateWindows {
		timed += w.Requests
	}
	if sent := int(math.Round(r.RateSentPerS * r.Seconds)); len(r.RateWindows) == 0 || timed != sent {
		t.Errorf("open loop: %d windows timing %d requests, want the %d sent", len(r.RateWindows), timed, sent)
	}
	if _, err := os.Stat(filepath.Join(out, "latency.svg")); err != nil {
		t.Error(err)
	}
	// A CPU profile is gzipped protobuf with samples in it.
	if f, err := os.Open(filepath.Join(profiles, "sqlite-0.pprof")); err != nil {
		t.Error(err)
	} else {
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("profile: %v", err)
		}
		if n, err := io.Copy(io.Discard, z); err != nil || n < 1000 {
			t.Errorf("profile: %d bytes unzipped (%v), want a profile of the window", n, err)
		}
	}
}

// TestLoad_PostgresRedisSmoke: a PostgreSQL run uses Redis by default, under a key prefix
// of its own, and leaves no key behind. Skipped when PostgreSQL or Redis is unreachable.
func TestLoad_PostgresRedisSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the verifier")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := envOr("TWOFOLD_TEST_PG", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	rurl := envOr("TWOFOLD_TEST_REDIS", "redis://127.0.0.1:6379/0")
	rdb, err := redisClient(ctx, rurl)
	if err != nil {
		t.Skip(err)
	}
	defer rdb.Close()
	if db, err := sql.Open("pgx", pg); err != nil || db.PingContext(ctx) != nil {
		t.Skipf("PostgreSQL at %s is unreachable", pg)
	} else {
		db.Close()
	}
	dir := t.TempDir()
	res, err := run(ctx, options{
		Bin: verifier(t), Runs: "postgres", PG: pg, Redis: rurl, Users: 1000, Conns: 8, Warmup: 0, Measure: 2 * time.Second,
		Mix: "valid=0.8,wrong=0.1,replay=0.1", Out: filepath.Join(dir, "out"), Log: io.Discard, Quiet: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Runs[0]
	if r.Backend != "postgres+redis" || !r.Redis || r.RedisPrefix == "" || r.VerifyOKPerS <= 0 || r.ServerErrors != 0 {
		t.Fatalf("run on %s (redis %v, prefix %q): %.0f ok/s, %d 5xx, note %q: want successes on PostgreSQL + Redis, no 5xx",
			r.Backend, r.Redis, r.RedisPrefix, r.VerifyOKPerS, r.ServerErrors, r.Note)
	}
	if r.RedisKeysDeleted == 0 {
		t.Errorf("no Redis keys under %s were deleted: did the verifier keep its budgets elsewhere?", r.RedisPrefix)
	}
	if left, err := rdb.Keys(ctx, globEscape(r.RedisPrefix)+"*").Result(); err != nil || len(left) > 0 {
		t.Errorf("keys left under %s: %v (%v)", r.RedisPrefix, left, err)
	}
}

// TestLoad_CompareSmoke compares two builds (here the same binary under two names) twice
// each, in the order A B B A: compare.json holds each build's two runs, and the table a row
// per build and the change. It asserts nothing about speed.
func TestLoad_CompareSmoke(t *testing.T) {
	a := verifier(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	b := filepath.Join(dir, "b")
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var table, log strings.Builder
	err := compare(ctx, options{
		Bin: a, Compare: b, Pairs: 2, Runs: "sqlite", Users: 50, Conns: 8, Measure: time.Second,
		Mix: "valid=0.8,wrong=0.1,replay=0.1", Out: out, Log: &log,
	}, &table)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(log.String(), "\n") {
		if _, bin, ok := strings.Cut(line, "load: pair "); ok {
			order = append(order, bin)
		}
	}
	if want := []string{"1: " + a, "1: " + b, "2: " + b, "2: " + a}; !slices.Equal(order, want) {
		t.Errorf("ran %q, want %q: alternating, so drift weighs on both", order, want)
	}
	raw, err := os.ReadFile(filepath.Join(out, "compare.json"))
	if err != nil {
		t.Fatal(err)
	}
	var written struct {
		Builds [2]string     `json:"builds"`
		Runs   [2][]load.Run `json:"runs"`
	}
	if err := json.Unmarshal(raw, &written); err != nil {
		t.Fatal(err)
	}
	if written.Builds != [2]string{a, b} || len(written.Runs[0]) != 2 || len(written.Runs[1]) != 2 {
		t.Fatalf("compare.json: builds %v with %d and %d runs, want %v with 2 each", written.Builds, len(written.Runs[0]), len(written.Runs[1]), [2]string{a, b})
	}
	for k, runs := range written.Runs {
		for _, r := range runs {
			if r.Name != "sqlite" || r.VerifyOKPerS <= 0 || r.ServerErrors != 0 {
				t.Errorf("build %d: run %s, %.0f ok/s, %d 5xx: want successes on sqlite", k, r.Name, r.VerifyOKPerS, r.ServerErrors)
			}
		}
	}
	for _, want := range []string{"| sqlite | " + a + " | 2 |", "| sqlite | " + b + " | 2 |", "| sqlite | second against first |"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}
