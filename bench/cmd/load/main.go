// Command load benchmarks the twofold verifier against its own ceiling.
//
//	go run ./bench/cmd/load -bin bin/twofold -quick
//
// For each run (SQLite; PostgreSQL + Redis with one and with two instances) it first
// measures the ceiling (the same Fiber stack serving a stateless endpoint that only parses
// the JSON, checks the TOTP code and signs an EdDSA JWT), then seeds users straight into a
// fresh store, starts the verifier binary as separate processes, and drives
// POST /v1/totp/verify with valid codes, wrong codes and replays over many keep-alive
// connections: first closed-loop (each connection sends again as soon as it has its
// answer: the peak), then open-loop at -at-peak (default 0.7) of the requests/s the peak
// reached, on a fixed schedule, for the latency of a busy but unsaturated verifier. It
// prints a Markdown table and writes results.json and latency.svg.
//
// The PostgreSQL runs keep the attempt budgets in the Redis of -redis, under a key prefix
// of their own (--redis-prefix twofoldbench:<random>:), and delete those keys afterwards.
//
// Valid codes are limited to one per user per 30-second step, so the number of users
// bounds the valid rate. Unless -users is given, each run seeds ceiling/s × run seconds
// users (twice that with the open-loop drive, which gets users of its own): the verifier
// does strictly more work than the ceiling, so it cannot run out of fresh codes even if
// the run stays inside one step.
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // seeding PostgreSQL
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // seeding SQLite

	"github.com/twofold-dev/twofold/bench/ceiling"
	"github.com/twofold-dev/twofold/bench/load"
	"github.com/twofold-dev/twofold/bench/seed"
)

// childEnv makes this binary serve the ceiling instead of benchmarking; the parent starts
// it that way so the ceiling, like the verifier, is a process of its own.
const childEnv = "TWOFOLD_BENCH_CEILING_ADDR"

const (
	appID  = "bench"
	origin = "http://bench.localhost"
)

// options are the flags.
type options struct {
	Bin      string
	Runs     string
	PG       string
	Redis    string
	Users    int
	MaxUsers int
	Conns    int
	Warmup   time.Duration
	Measure  time.Duration
	Mix      string
	Out      string
	Quiet    bool
	OneIP    bool
	AtPeak   float64
	Rate     float64
	Compare  string
	Pairs    int
	Profile  string
	Log      io.Writer
}

func main() {
	if addr := os.Getenv(childEnv); addr != "" {
		if err := serveCeiling(addr); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	quick := flag.Bool("quick", false, "the short run of `make bench` (5 s windows)")
	flag.StringVar(&o.Bin, "bin", "", "verifier binary (default: build ./server/cmd/twofold into a temp dir)")
	flag.StringVar(&o.Runs, "runs", "sqlite,postgres,postgres-x2", "runs, comma-separated: sqlite, postgres, postgres-x2")
	flag.StringVar(&o.PG, "pg", envOr("TWOFOLD_TEST_PG", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL server (a database on it that the user may CREATE DATABASE from)")
	flag.StringVar(&o.Redis, "redis", envOr("TWOFOLD_TEST_REDIS", "redis://127.0.0.1:6379/0"), "Redis for the PostgreSQL runs' attempt budgets (--redis, under a fresh key prefix per run, deleted after); \"\" runs them on PostgreSQL alone")
	flag.IntVar(&o.Users, "users", 0, "users to seed per run (default: ceiling/s × run seconds, see -max-users)")
	flag.IntVar(&o.MaxUsers, "max-users", 300_000, "cap on the automatic user count")
	flag.IntVar(&o.Conns, "conns", 64, "keep-alive connections")
	flag.DurationVar(&o.Warmup, "warmup", 2*time.Second, "load before the counted window")
	flag.DurationVar(&o.Measure, "duration", 10*time.Second, "counted window of each run")
	flag.StringVar(&o.Mix, "mix", "valid=0.8,wrong=0.1,replay=0.1", "request mix")
	flag.Float64Var(&o.AtPeak, "at-peak", 0.7, "after each closed-loop run, drive the same instances open-loop at this fraction of the requests/s it reached, and report the latency there; 0 skips it")
	flag.Float64Var(&o.Rate, "rate", 0, "drive the open-loop phase at this many requests/s instead of -at-peak × peak")
	flag.BoolVar(&o.OneIP, "one-ip", false, "send everything from 127.0.0.1 instead of one loopback address per connection")
	flag.StringVar(&o.Out, "out", "bench/out", "directory for results.json and latency.svg (compare.json with -compare)")
	flag.StringVar(&o.Compare, "compare", "", "a second verifier binary: run it and -bin (default: this tree, built) in alternating order, -pairs times each, and compare them")
	flag.IntVar(&o.Pairs, "pairs", 3, "with -compare, how many times each build runs")
	flag.StringVar(&o.Profile, "profile", "", "directory to write a CPU profile of each verifier instance to, taken over the closed loop's counted window (RUN-INSTANCE.pprof; read it with go tool pprof -top)")
	flag.Parse()
	if *quick {
		o.Warmup, o.Measure = time.Second, 5*time.Second
	}
	o.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Compare != "" {
		if err := compare(ctx, o, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	load.Table(os.Stdout, res.Runs)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run carries out every run and writes the outputs.
func run(ctx context.Context, o options) (*load.Results, error) {
	mix, err := load.ParseMix(o.Mix)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "twofold-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if o.Bin == "" {
		o.Bin = filepath.Join(tmp, "twofold")
		logf(o, "building the verifier")
		if err := buildVerifier(ctx, o.Bin); err != nil {
			return nil, err
		}
	}
	res := &load.Results{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine()}
	for _, name := range strings.Split(o.Runs, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		r, err := oneRun(ctx, o, mix, name, tmp)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", name, err)
		}
		res.Runs = append(res.Runs, r)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	j, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Out, "results.json"), append(j, '\n'), 0o644); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(o.Out, "latency.svg"))
	if err != nil {
		return nil, err
	}
	load.SVG(f, res.Runs, "POST /v1/totp/verify latency by percentile, "+res.Date[:10])
	if err := f.Close(); err != nil {
		return nil, err
	}
	logf(o, "wrote %s and %s", filepath.Join(o.Out, "results.json"), filepath.Join(o.Out, "latency.svg"))
	return res, nil
}

// compare runs two verifier builds against each other, in the order A B, B A, A B, ...,
// so that a machine growing slower or faster during the comparison weighs on both alike,
// and prints each build's spread and the difference of their means. On a shared VM one
// build's back-to-back runs differ by a fifth; a single pair says little.
func compare(ctx context.Context, o options, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "twofold-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.Bin == "" {
		o.Bin = filepath.Join(tmp, "twofold")
		logf(o, "building the verifier of this tree")
		if err := buildVerifier(ctx, o.Bin); err != nil {
			return err
		}
	}
	bins := [2]string{o.Bin, o.Compare}
	var runs [2][]load.Run
	for i := range max(1, o.Pairs) {
		for k := range 2 {
			b := k ^ i&1 // A B, then B A
			one := o
			one.Bin, one.Out = bins[b], filepath.Join(tmp, fmt.Sprintf("out-%d-%d", i, b))
			logf(o, "pair %d: %s", i+1, bins[b])
			res, err := run(ctx, one)
			if err != nil {
				return fmt.Errorf("%s: %w", bins[b], err)
			}
			runs[b] = append(runs[b], res.Runs...)
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(struct {
		Date   string        `json:"date"`
		Builds [2]string     `json:"builds"`
		Runs   [2][]load.Run `json:"runs"`
	}{time.Now().UTC().Format(time.RFC3339), bins, runs}, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Out, "compare.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	load.CompareTable(out, bins, [2][]load.Summary{load.Summarize(runs[0]), load.Summarize(runs[1])})
	return nil
}

func logf(o options, format string, args ...any) {
	if !o.Quiet {
		fmt.Fprintf(o.Log, "load: "+format+"\n", args...)
	}
}

func buildVerifier(ctx context.Context, out string) error {
	root, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./server/cmd/twofold")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build verifier: %w", err)
	}
	return nil
}

// oneRun measures the ceiling, then the verifier on one backend.
func oneRun(ctx context.Context, o options, mix load.Mix, name, tmp string) (r load.Run, err error) {
	backend, instances := "sqlite", 1
	switch name {
	case "sqlite":
	case "postgres":
		backend = "postgres"
	case "postgres-x2":
		backend, instances = "postgres", 2
	default:
		return load.Run{}, fmt.Errorf("unknown run %q (sqlite, postgres, postgres-x2)", name)
	}
	withRedis := backend == "postgres" && o.Redis != ""
	if withRedis {
		backend += "+redis"
	}
	r = load.Run{Name: name, Backend: backend, Instances: instances, Conns: o.Conns, Seconds: o.Measure.Seconds(), Mix: o.Mix, Redis: withRedis, OneIP: o.OneIP}
	if backend == "postgres" {
		r.Note = `PostgreSQL alone (-redis ""): the attempt budgets are rows in PostgreSQL`
	}

	// The ceiling, right before the verifier, so both see the same machine.
	logf(o, "%s: ceiling", name)
	c, err := measureCeiling(ctx, o)
	if err != nil {
		return r, fmt.Errorf("ceiling: %w", err)
	}
	r.CeilingPerS = c.perS
	r.CeilingCPUMS = c.cpuMS
	r.CeilingLat = c.lat
	r.CeilingP99MS = load.Quantile(c.lat, 0.99)

	openLoop := o.AtPeak > 0 || o.Rate > 0
	users := o.Users
	if users <= 0 {
		users = int(c.perS * (o.Warmup + o.Measure).Seconds())
		if openLoop {
			users *= 2 // the open-loop drive gets users of its own
		}
		users = max(1000, min(users, o.MaxUsers))
	}
	r.Users = users

	dir, err := os.MkdirTemp(tmp, name+"-")
	if err != nil {
		return r, err
	}
	masterKey, masterB64 := seed.NewMasterKey()
	env := append(os.Environ(), "TWOFOLD_MASTER_KEY="+masterB64)
	storeArgs := []string{"--data", dir}
	var dsn string
	var rdb *redis.Client
	if withRedis {
		if !supportsFlag(ctx, o.Bin, "serve", "redis-prefix") {
			return r, fmt.Errorf(`this verifier has no --redis; pass -redis "" to run PostgreSQL alone`)
		}
		if rdb, err = redisClient(ctx, o.Redis); err != nil {
			return r, err
		}
		defer rdb.Close()
		// A prefix of its own per run: nothing carries over from an earlier run or mixes
		// with another deployment on the same Redis, and the keys can be found to delete.
		b := make([]byte, 6)
		rand.Read(b)
		r.RedisPrefix = "twofoldbench:" + hex.EncodeToString(b) + ":"
		// Registered before the instances start, so it runs after they have stopped.
		defer func() {
			n, derr := deletePrefix(rdb, r.RedisPrefix)
			r.RedisKeysDeleted = n
			if derr != nil {
				logf(o, "%s: delete Redis keys %s*: %v", name, r.RedisPrefix, derr)
			} else {
				logf(o, "%s: deleted %d Redis keys %s*", name, n, r.RedisPrefix)
			}
		}()
	}
	if strings.HasPrefix(backend, "postgres") {
		var drop func()
		dsn, drop, err = freshDatabase(ctx, o.PG)
		if err != nil {
			return r, err
		}
		defer drop()
		storeArgs = append(storeArgs, "--store", dsn)
	}

	// apps create migrates the schema and registers the app the tickets belong to.
	cmd := exec.CommandContext(ctx, o.Bin, append([]string{"apps", "create", "--id", appID, "--origin", origin}, storeArgs...)...)
	cmd.Env, cmd.Stderr = env, os.Stderr
	if _, err := cmd.Output(); err != nil {
		return r, fmt.Errorf("apps create: %w", err)
	}

	logf(o, "%s: seeding %d users", name, users)
	t0 := time.Now()
	seeded, err := seedUsers(ctx, backend, dir, dsn, masterKey, users)
	if err != nil {
		return r, err
	}
	logf(o, "%s: seeded in %.1fs", name, time.Since(t0).Seconds())

	serveArgs := append([]string{"serve", "--addr", "127.0.0.1:0"}, storeArgs...)
	// All load comes from 127.0.0.1: lift the per-address budget of failed attempts, or
	// the wrong codes and replays of the mix would turn into 429s within seconds.
	if supportsFlag(ctx, o.Bin, "serve", "ip-budget") {
		serveArgs = append(serveArgs, "--ip-budget", "1000000000")
	} else {
		logf(o, "%s: this verifier has no --ip-budget; wrong codes and replays may be rate limited", name)
	}
	if withRedis {
		serveArgs = append(serveArgs, "--redis", o.Redis, "--redis-prefix", r.RedisPrefix)
	}
	if o.Profile != "" {
		if !supportsFlag(ctx, o.Bin, "serve", "pprof-addr") {
			return r, fmt.Errorf("this verifier has no --pprof-addr to profile it through; leave out -profile")
		}
		serveArgs = append(serveArgs, "--pprof-addr", "127.0.0.1:0")
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for i := range instances {
		p, err := startProc(ctx, o.Bin, serveArgs, env, filepath.Join(dir, fmt.Sprintf("verifier-%d.log", i)))
		if err != nil {
			return r, err
		}
		procs = append(procs, p)
	}
	var targets []string
	for _, p := range procs {
		targets = append(targets, "http://"+p.addr)
	}

	lu := make([]*load.User, len(seeded))
	for i, u := range seeded {
		lu[i] = &load.User{ID: u.ID, Secret: u.Secret, Ticket: u.Ticket}
	}
	closedUsers, openUsers := lu, []*load.User(nil)
	if openLoop {
		closedUsers, openUsers = lu[:len(lu)/2], lu[len(lu)/2:]
	}
	logf(o, "%s: driving %d instance(s) for %s + %s warm-up", name, instances, o.Measure, o.Warmup)
	cpu := newCPUWindow(procs)
	prof := &profiler{o: o, run: name, procs: procs}
	res, err := load.Drive(ctx, load.Config{
		Targets: targets, Origin: origin, Users: closedUsers, Conns: o.Conns,
		Warmup: o.Warmup, Measure: o.Measure, Mix: mix,
		MaxWrongPerUser: 2, MaxReplaysPerUser: 2,
		SpreadSources: !o.OneIP,
		OnWindow:      func(open bool) { cpu.mark(open); prof.mark(open) },
	})
	if perr := prof.wait(); err == nil && perr != nil {
		err = fmt.Errorf("profile: %w", perr)
	}
	if err != nil {
		return r, err
	}
	for _, p := range procs {
		rss, peak, err := load.Memory(p.cmd.Process.Pid)
		if err != nil {
			return r, err
		}
		r.RSSMB, r.PeakRSSMB = max(r.RSSMB, rss), max(r.PeakRSSMB, peak)
	}
	r.VerifyOKPerS = res.PerSecond(res.OK)
	r.RejectPerS = res.PerSecond(res.Reject)
	lat := load.Sort(res.Lat)
	r.Lat = lat
	r.P50MS, r.P99MS, r.P999MS = load.Quantile(lat, 0.5), load.Quantile(lat, 0.99), load.Quantile(lat, 0.999)
	if res.OK > 0 {
		r.CPUMSPerOK = cpu.seconds() * 1000 / float64(res.OK)
	}
	if r.CeilingPerS > 0 {
		r.Ratio = r.VerifyOKPerS / r.CeilingPerS
	}
	r.ServerErrors, r.RateLimited, r.Starved = res.ServerErrors, res.RateLimited, res.Starved
	r.Unexpected = res.ValidRefused + res.BadAccepted + res.RateLimited + res.ServerErrors + res.OtherStatus + res.TransportErrors
	r.ValidCapacity = int64(len(closedUsers)) * stepsTouched(o.Warmup+o.Measure)
	r.ColdMS = float64(res.Cold.Microseconds()) / 1000
	logf(o, "%s: %.0f ok/s, %.0f rejects/s, p99 %.2f ms; sent valid/wrong/replay %d/%d/%d; unexpected %d",
		name, r.VerifyOKPerS, r.RejectPerS, r.P99MS, res.Sent[load.Valid], res.Sent[load.Wrong], res.Sent[load.Replay], r.Unexpected)
	logf(o, "%s: cold start: the slowest of the %d connections' first requests took %.0f ms (not timed in the window)", name, o.Conns, r.ColdMS)
	if r.Unexpected > 0 {
		logf(o, "%s: first unexpected answer: %s", name, res.FirstError)
	}
	if r.ServerErrors > 0 {
		r.Note = strings.TrimPrefix(r.Note+"; "+fmt.Sprintf("%d answers were 5xx (first: %s)", r.ServerErrors, res.FirstError), "; ")
	}
	if openLoop {
		if err := openLoopDrive(ctx, o, &r, res, mix, targets, openUsers, procs); err != nil {
			return r, err
		}
	}
	if res.Starved > 0 {
		msg := fmt.Sprintf("ran out of fresh codes (%d users, one code each per 30 s step): the valid rate was bounded by the users; rerun with more -users", users)
		logf(o, "%s: %s", name, msg)
		r.Note = strings.TrimPrefix(r.Note+"; "+msg, "; ")
	}
	return r, nil
}

// supportsFlag reports whether `bin cmd --flag` is known: an unknown flag is refused with
// "flag provided but not defined" before anything else is checked.
func supportsFlag(ctx context.Context, bin, cmd, flag string) bool {
	out, _ := exec.CommandContext(ctx, bin, cmd, "--"+flag+"=1", "--addr", "not-an-address").CombinedOutput()
	return !strings.Contains(string(out), "flag provided but not defined")
}

// stepsTouched is how many 30 s steps a run of d may cross at most.
func stepsTouched(d time.Duration) int64 { return int64(d/(30*time.Second)) + 2 }

type ceilingResult struct {
	perS, cpuMS float64
	lat         []uint32
}

func measureCeiling(ctx context.Context, o options) (ceilingResult, error) {
	self, err := os.Executable()
	if err != nil {
		return ceilingResult{}, err
	}
	logFile, err := os.CreateTemp("", "twofold-ceiling-*.log")
	if err != nil {
		return ceilingResult{}, err
	}
	defer os.Remove(logFile.Name())
	p, err := startChild(ctx, exec.CommandContext(ctx, self), []string{childEnv + "=127.0.0.1:0"}, logFile)
	if err != nil {
		return ceilingResult{}, err
	}
	defer p.stop()
	secret, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(ceiling.Secret)
	cpu := newCPUWindow([]*proc{p})
	res, err := load.Drive(ctx, load.Config{
		Targets: []string{"http://" + p.addr}, Origin: origin, Conns: o.Conns,
		Users:  []*load.User{{ID: "user", Secret: secret, Ticket: "tkt_ceiling"}},
		Warmup: o.Warmup, Measure: o.Measure, Mix: load.Mix{Valid: 1}, Stateless: true, SpreadSources: !o.OneIP,
		OnWindow: cpu.mark,
	})
	if err != nil {
		return ceilingResult{}, err
	}
	if bad := res.ServerErrors + res.TransportErrors + res.ValidRefused + res.OtherStatus; bad > 0 {
		return ceilingResult{}, fmt.Errorf("%d requests failed: %s", bad, res.FirstError)
	}
	c := ceilingResult{perS: res.PerSecond(res.OK), lat: load.Sort(res.Lat)}
	if res.OK > 0 {
		c.cpuMS = cpu.seconds() * 1000 / float64(res.OK)
	}
	logf(o, "ceiling: %.0f/s, p99 %.2f ms", c.perS, load.Quantile(c.lat, 0.99))
	return c, nil
}

func serveCeiling(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The parent reads the bound address from this line.
	fmt.Fprintf(os.Stderr, "{\"msg\":\"twofold serving\",\"addr\":%q}\n", ln.Addr().String())
	return ceiling.Serve(ln, origin)
}

// proc is a server process this benchmark started.
type proc struct {
	cmd  *exec.Cmd
	addr string
	log  string // its stderr
	done chan error
}

func startProc(ctx context.Context, bin string, args, env []string, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	p, err := startChild(ctx, cmd, nil, f)
	if err != nil {
		return nil, err
	}
	// Ready means the store answers, not only that the port is open.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s never became ready", bin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startChild starts cmd with its stderr in logFile and waits for the JSON log line
// {"msg":"twofold serving","addr":...} that names its bound address.
func startChild(ctx context.Context, cmd *exec.Cmd, extraEnv []string, logFile *os.File) (*proc, error) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stderr = logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, log: logFile.Name(), done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for p.addr == "" {
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("%s exited before serving (%v); its log: %s", cmd.Path, err, tail(logFile.Name()))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		p.addr = loggedAddr(logFile.Name(), "twofold serving")
		if p.addr == "" && time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not log its address; its log: %s", cmd.Path, tail(logFile.Name()))
		}
	}
	return p, nil
}

// loggedAddr is the address of the first JSON log line {"msg":msg,"addr":...} in logPath.
func loggedAddr(logPath, msg string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg && line.Addr != "" {
			return line.Addr
		}
	}
	return ""
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// stop ends the process gracefully and waits for it.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuWindow samples the CPU time of processes when the counted window opens and closes.
type cpuWindow struct {
	procs      []*proc
	start, end float64
}

func newCPUWindow(procs []*proc) *cpuWindow { return &cpuWindow{procs: procs} }

func (w *cpuWindow) mark(open bool) {
	var total float64
	for _, p := range w.procs {
		s, err := load.CPUSeconds(p.cmd.Process.Pid)
		if err == nil {
			total += s
		}
	}
	if open {
		w.start = total
	} else {
		w.end = total
	}
}

func (w *cpuWindow) seconds() float64 { return max(0, w.end-w.start) }

// profiler takes a CPU profile of each instance over the counted window, through the
// --pprof-addr the instance logged, when -profile names a directory.
type profiler struct {
	o     options
	run   string
	procs []*proc
	errs  chan error
}

func (p *profiler) mark(open bool) {
	if p.o.Profile == "" || !open {
		return
	}
	p.errs = make(chan error, len(p.procs))
	secs := int(math.Ceil(p.o.Measure.Seconds()))
	for i, pr := range p.procs {
		path := filepath.Join(p.o.Profile, fmt.Sprintf("%s-%d.pprof", p.run, i))
		go func() { p.errs <- p.fetch(pr, secs, path) }()
	}
}

// wait returns once every profile begun is written.
func (p *profiler) wait() error {
	if p.errs == nil {
		return nil
	}
	var errs []error
	for range p.procs {
		errs = append(errs, <-p.errs)
	}
	return errors.Join(errs...)
}

func (p *profiler) fetch(pr *proc, secs int, path string) error {
	addr := loggedAddr(pr.log, "pprof serving")
	if addr == "" {
		return fmt.Errorf("%s logged no pprof address", pr.cmd.Path)
	}
	res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", addr, res.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	logf(p.o, "wrote %s (go tool pprof -top -cum %s)", path, path)
	return nil
}

func seedUsers(ctx context.Context, backend, dir, dsn string, key [32]byte, n int) ([]seed.User, error) {
	var db *sql.DB
	var err error
	d := seed.SQLite
	if strings.HasPrefix(backend, "postgres") {
		d = seed.Postgres
		db, err = sql.Open("pgx", dsn)
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "twofold.db")+"?_pragma=busy_timeout(15000)&_pragma=journal_mode(WAL)")
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// A prefix of its own per run, so nothing keyed by user or credential (say, in a shared
	// Redis) carries over from an earlier run.
	prefix := make([]byte, 4)
	rand.Read(prefix)
	return seed.Seed(ctx, db, d, seed.Options{AppID: appID, MasterKey: key, Users: n, Prefix: hex.EncodeToString(prefix) + "-"})
}

// freshDatabase creates an empty database on the server of admin and returns its DSN and
// a function that drops it.
func freshDatabase(ctx context.Context, admin string) (string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("-pg must be a postgres:// URL, got %q", admin)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return "", nil, err
	}
	defer db.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "twofold_bench_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s: CREATE DATABASE: %w", u.Redacted(), err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err == nil {
			_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			db.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "load: drop database %s: %v\n", name, err)
		}
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// machine describes where the numbers come from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GB RAM", float64(kb)/1024/1024)
	}
	return fmt.Sprintf("%d cores (%s)%s, %s/%s, %s; load generator on the same cores", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// openLoopDrive drives the instances again, open-loop, at -rate requests/s or at -at-peak
// times the requests/s the closed loop reached, and records the latency there: what a
// verifier that is busy but not saturated answers in.
func openLoopDrive(ctx context.Context, o options, r *load.Run, closed load.Result, mix load.Mix, targets []string, users []*load.User, procs []*proc) error {
	var sent int64
	for _, n := range closed.Sent {
		sent += n
	}
	rate := o.Rate
	if rate <= 0 {
		r.AtPeak = o.AtPeak
		rate = o.AtPeak * closed.PerSecond(sent)
	}
	if rate <= 0 {
		return nil
	}
	r.RatePerS = rate
	logf(o, "%s: open loop at %.0f requests/s for %s + %s warm-up", r.Name, rate, o.Measure, o.Warmup)
	res, err := load.Drive(ctx, load.Config{
		Targets: targets, Origin: origin, Users: users, Conns: o.Conns,
		Warmup: o.Warmup, Measure: o.Measure, Mix: mix, Rate: rate,
		MaxWrongPerUser: 2, MaxReplaysPerUser: 2,
		SpreadSources: !o.OneIP,
	})
	if err != nil {
		return err
	}
	var n int64
	for _, k := range res.Sent {
		n += k
	}
	r.RateSentPerS = res.PerSecond(n)
	r.RateVerifyOKPerS = res.PerSecond(res.OK)
	r.RateLat = load.Sort(res.Lat)
	r.RateP50MS, r.RateP99MS, r.RateP999MS = load.Quantile(r.RateLat, 0.5), load.Quantile(r.RateLat, 0.99), load.Quantile(r.RateLat, 0.999)
	r.RateMaxLagMS = float64(res.MaxLag.Microseconds()) / 1000
	r.RateUnexpected = res.ValidRefused + res.BadAccepted + res.RateLimited + res.ServerErrors + res.OtherStatus + res.TransportErrors
	for _, p := range procs {
		if rss, peak, err := load.Memory(p.cmd.Process.Pid); err == nil {
			r.RSSMB, r.PeakRSSMB = max(r.RSSMB, rss), max(r.PeakRSSMB, peak)
		}
	}
	r.RateWindows = res.Windows
	logf(o, "%s: open loop: %.0f requests/s sent (%.0f ok/s), p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; unexpected %d, skipped %d",
		r.Name, r.RateSentPerS, r.RateVerifyOKPerS, r.RateP50MS, r.RateP99MS, r.RateP999MS, r.RateUnexpected, res.Skipped)
	if len(res.Windows) > 0 {
		slow := slices.MaxFunc(res.Windows, func(a, b load.Window) int { return cmp.Compare(a.P50MS, b.P50MS) })
		logf(o, "%s: open loop: slowest 0.1 s at +%.1f s: p50 %.2f ms, max %.2f ms (every 0.1 s: rate_windows in results.json)",
			r.Name, float64(slow.StartMS)/1000, slow.P50MS, slow.MaxMS)
	}
	if r.RateUnexpected > 0 {
		logf(o, "%s: open loop: first unexpected answer: %s", r.Name, res.FirstError)
	}
	if res.ServerErrors > 0 {
		r.Note = strings.TrimPrefix(r.Note+"; "+fmt.Sprintf("open loop: %d answers were 5xx (first: %s)", res.ServerErrors, res.FirstError), "; ")
	}
	if res.Starved+res.Skipped > 0 {
		r.Note = strings.TrimPrefix(r.Note+"; "+fmt.Sprintf("open loop: %d scheduled requests found no user to send for; rerun with more -users", res.Starved+res.Skipped), "; ")
	}
	return nil
}

// redisClient connects to the Redis of rawURL and checks that it answers.
func redisClient(ctx context.Context, rawURL string) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	c := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf(`Redis at %s does not answer (%v): start one, point -redis (or TWOFOLD_TEST_REDIS) at one, or pass -redis "" to run PostgreSQL alone`, opts.Addr, err)
	}
	return c, nil
}

// deletePrefix deletes every key that starts with prefix and returns how many it deleted.
func deletePrefix(c *redis.Client, prefix string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n int64
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, globEscape(prefix)+"*", 1000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			d, err := c.Unlink(ctx, keys...).Result()
			if err != nil {
				return n, err
			}
			n += d
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// globEscape quotes the characters SCAN MATCH treats as a pattern.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`).Replace(s)
}
