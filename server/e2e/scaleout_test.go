package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/passkey/passkeytest"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
)

// Scale-out: several `twofold serve` processes on one PostgreSQL database and one Redis, as
// behind a load balancer. Each test gets a fresh database (pgtest.NewDatabase) and its own
// Redis key prefix (--redis-prefix), so runs never see each other's data.

// sharedIssuer is the public name every instance signs as, as behind a load balancer.
const sharedIssuer = "http://twofold.test"

// cluster is n verifier processes sharing a database, a Redis and the master key.
type cluster struct {
	t     *testing.T
	procs []*process
	// vs[i] talks to instance i with the harness's helpers (enroll, ticket, call).
	vs     []*verifier
	apiKey string
	dsn    string
}

// startCluster starts n instances on a fresh database and the Redis at redisURL under
// prefix. The master key reaches every process (and the CLI) through TWOFOLD_MASTER_KEY.
func startCluster(t *testing.T, n int, redisURL, prefix string, extra ...string) *cluster {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv("TWOFOLD_MASTER_KEY", base64.StdEncoding.EncodeToString(key))
	t.Setenv("TWOFOLD_MASTER_KEY_PREVIOUS", "")

	var app wire.AppCreated
	if err := json.Unmarshal(runCLI(t, "apps", "create", "--store", dsn, "--id", "shop", "--origin", origin), &app); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, apiKey: app.APIKey, dsn: dsn, procs: make([]*process, n)}
	args := append([]string{"--store", dsn, "--redis", redisURL, "--redis-prefix", prefix, "--issuer", sharedIssuer, "--data", t.TempDir()}, extra...)
	// Started together, as a rollout would: they race for the first signing key.
	errs := make(chan error, n)
	for i := range n {
		go func() {
			p, err := launch(t, nil, "http", append([]string{"--addr", "127.0.0.1:0"}, args...)...)
			c.procs[i] = p
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range c.procs {
		c.vs = append(c.vs, &verifier{t: t, URL: p.URL, APIKey: app.APIKey, Clock: &clock{}})
	}
	return c
}

// outcome is one answer, or the transport error in its place.
type outcome struct {
	instance int
	status   int
	code     string // the API error code; "" on success
	err      error
}

// submit posts a TOTP code with a ticket to one URL. Safe from any goroutine: a dead
// instance is an outcome, not a test failure.
func submit(url, ticket, code string) outcome {
	req, _ := http.NewRequest("POST", url+"/v1/totp/verify", strings.NewReader(`{"code":"`+code+`"}`))
	req.Header.Set("Authorization", "Ticket "+ticket)
	req.Header.Set("Origin", origin)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer res.Body.Close()
	var body wire.Error
	raw, _ := io.ReadAll(res.Body)
	json.Unmarshal(raw, &body)
	return outcome{status: res.StatusCode, code: body.Code}
}

// concurrently submits codes[i] to instance i%len(c.vs), all released together.
func (c *cluster) concurrently(ticket string, codes []string) []outcome {
	out := make([]outcome, len(codes))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, code := range codes {
		wg.Go(func() {
			<-start
			inst := i % len(c.vs)
			out[i] = submit(c.vs[inst].URL, ticket, code)
			out[i].instance = inst
		})
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts outcomes by "status code".
func tally(out []outcome) map[string]int {
	m := map[string]int{}
	for _, o := range out {
		if o.err != nil {
			m["error"]++
			continue
		}
		m[fmt.Sprintf("%d %s", o.status, o.code)]++
	}
	return m
}

// nextCode is the code of the step after now: the enrollment consumed the current one.
func nextCode(t *testing.T, secret string) string {
	return code(t, secret, time.Now().Add(30*time.Second))
}

func TestScaleOut_SameCodeOnThreeInstances_ExactlyOneSuccess(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	c := startCluster(t, 3, url, prefix)
	e := c.vs[0].enroll("alice")
	code := nextCode(t, e.Secret)
	codes := make([]string, 60)
	for i := range codes {
		codes[i] = code
	}
	out := c.concurrently(e.ticket, codes)
	got := tally(out)
	if got["200 "] != 1 {
		t.Fatalf("60 concurrent submissions of one code over 3 instances: %v, want exactly one 200", got)
	}
	for k, n := range got {
		// The losers either lost the compare-and-set or were not weighed at all (the factor's
		// budget is shared, so only five get past it before the winner resets it).
		if k != "200 " && k != "409 code_already_used" && k != "429 rate_limited" {
			t.Errorf("%d answers %q; want only 200, 409 code_already_used, 429 rate_limited", n, k)
		}
	}
	t.Logf("answers: %v", got)
}

func TestScaleOut_WrongGuessesOnThreeInstances_WeighedAtMostFiveTimes(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	c := startCluster(t, 3, url, prefix)
	e := c.vs[1].enroll("bob")
	wrong := wrongCode(t, e.Secret, time.Now())
	codes := make([]string, 100)
	for i := range codes {
		codes[i] = wrong
	}
	got := tally(c.concurrently(e.ticket, codes))
	weighed := got["401 invalid_code"]
	if weighed < 1 || weighed > 5 || weighed+got["429 rate_limited"] != 100 {
		t.Fatalf("100 parallel wrong guesses over 3 instances: %v; want 1 to 5 weighed (401), the rest 429", got)
	}
	// The budget is shared, so the right code is now refused everywhere too.
	for i, v := range c.vs {
		if o := submit(v.URL, e.ticket, nextCode(t, e.Secret)); o.status != 429 {
			t.Errorf("instance %d: the right code after the budget ran out: %+v, want 429", i, o)
		}
	}
	// And it lives in Redis, not in the database.
	db, err := sql.Open("pgx", c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM attempts").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d attempt budgets in PostgreSQL; with --redis they belong in Redis", rows)
	}
	t.Logf("answers: %v", got)
}

func TestScaleOut_ThreeInstances_SameJWKS_TokensCrossValidate(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	c := startCluster(t, 3, url, prefix)
	sameJWKS := func() int {
		var jwks [][]byte
		for i, v := range c.vs {
			r := v.call("GET", "/.well-known/jwks.json", "", "", nil)
			if r.Status != 200 {
				t.Fatalf("instance %d JWKS: %d %s", i, r.Status, r.Raw)
			}
			jwks = append(jwks, r.Raw)
		}
		for i := 1; i < len(jwks); i++ {
			if !bytes.Equal(jwks[0], jwks[i]) {
				t.Fatalf("instance %d publishes another JWKS:\n%s\ninstance 0:\n%s", i, jwks[i], jwks[0])
			}
		}
		var set struct{ Keys []any }
		json.Unmarshal(jwks[0], &set)
		return len(set.Keys)
	}
	// Fetched before the first token too, as a backend starting early would: no instance
	// may then keep serving the set from before the first key.
	sameJWKS()
	// A token from each instance validates against the JWKS of each other one.
	for i, v := range c.vs {
		tok := v.enroll(fmt.Sprintf("user%d", i)).Token
		for j, w := range c.vs {
			if i == j {
				continue
			}
			payload := joseVerifyAt(t, w.URL+"/.well-known/jwks.json", sharedIssuer, "shop", tok)
			if payload["sub"] != fmt.Sprintf("user%d", i) {
				t.Errorf("token of instance %d checked against instance %d: sub %v", i, j, payload["sub"])
			}
		}
	}
	if n := sameJWKS(); n != 1 {
		t.Errorf("JWKS has %d keys after three instances raced for the first one, want 1", n)
	}
}

// joseVerifyAt is flow_test.go's joseVerify against any JWKS URL and issuer.
func joseVerifyAt(t *testing.T, jwksURL, issuer, audience, token string) map[string]any {
	t.Helper()
	script, _ := filepath.Abs("../../sdk-js/test/verify-jwt.mjs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "../node_modules/jose")); err != nil {
		t.Fatalf("npm's jose is not installed (run `make test`, which installs sdk-js/node_modules): %v", err)
	}
	out, err := exec.Command("node", script, jwksURL, issuer, audience, token).CombinedOutput()
	if err != nil {
		t.Fatalf("jose refused the token against %s: %v\n%s", jwksURL, err, out)
	}
	var res struct{ Payload map[string]any }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("jose output %q: %v", out, err)
	}
	return res.Payload
}

// kill -9 of one instance while codes are being verified on all three: the two others go
// on, every success a client was told of stays (the code is used), and no code is accepted
// twice.
func TestScaleOut_KillOneInstanceMidLoad_OthersGoOn_NothingAcknowledgedLost(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	c := startCluster(t, 3, url, prefix, "--ip-budget", "100000")
	const users, before = 40, 5
	type user struct {
		e         enrolled
		code      string
		out       []outcome
		afterKill bool // the load reached this user after instance 2 was gone
	}
	us := make([]*user, users)
	for i := range us {
		e := c.vs[i%3].enroll(fmt.Sprintf("u%02d", i))
		us[i] = &user{e: e, code: nextCode(t, e.Secret)}
	}
	// Acknowledged by the instance about to die.
	for _, u := range us[:before] {
		o := submit(c.vs[2].URL, u.e.ticket, u.code)
		o.instance = 2
		if o.status != 200 {
			t.Fatalf("before the kill: %+v", o)
		}
		u.out = append(u.out, o)
	}
	// The load: each remaining user sends their code to all three at once, a user every
	// 3 ms; instance 2 is killed once half of them are under way, requests in flight, and
	// the other half starts once it is gone (however long a loaded machine takes to reap it).
	var wg sync.WaitGroup
	var launched atomic.Int32
	killed := make(chan struct{})
	go func() {
		for launched.Load() < (users-before)/2 {
			time.Sleep(time.Millisecond)
		}
		p := c.procs[2]
		p.cmd.Process.Signal(syscall.SIGKILL)
		err := <-p.done
		p.done <- err // for the cleanup's wait
		close(killed)
	}()
	for j, u := range us[before:] {
		if j == (users-before)/2 {
			<-killed
		}
		select {
		case <-killed:
			u.afterKill = true
		default:
		}
		wg.Go(func() { u.out = append(u.out, c.concurrently(u.e.ticket, []string{u.code, u.code, u.code})...) })
		launched.Add(1)
		time.Sleep(3 * time.Millisecond)
	}
	wg.Wait()
	<-killed

	accepted, cut := 0, 0
	for i, u := range us {
		wins := 0
		for _, o := range u.out {
			switch {
			case o.err != nil && o.instance != 2:
				t.Errorf("user %d: surviving instance %d failed: %v", i, o.instance, o.err)
			case o.err != nil && !u.afterKill:
				cut++
			case o.err == nil && o.status >= 500:
				t.Errorf("user %d: instance %d answered %d %s", i, o.instance, o.status, o.code)
			case o.status == 200:
				wins++
			}
		}
		if wins > 1 {
			t.Errorf("user %d: one code accepted %d times: %v", i, wins, tally(u.out))
		}
		if u.afterKill && wins != 1 {
			// Started after the kill: the two live instances decide, one of them says yes.
			t.Errorf("user %d (after the kill): %v, want exactly one 200 from the instances left", i, tally(u.out))
		}
		if wins == 1 {
			accepted++
			// Acknowledged means kept: the code stays used on the instances left.
			if o := submit(c.vs[i%2].URL, u.e.ticket, u.code); o.status != 409 || o.code != wire.CodeCodeAlreadyUsed {
				t.Errorf("user %d: an acknowledged code submitted again: %+v, want 409 code_already_used", i, o)
			}
		}
	}
	after := 0
	for _, u := range us {
		if u.afterKill {
			after++
		}
	}
	if after == 0 {
		t.Error("the load ended before the kill: nothing shows that the others go on")
	}
	t.Logf("%d users verified after the kill; %d of %d codes acknowledged; %d requests to instance 2 lost to the kill", after, accepted, users, cut)
}

// redisServer is a Redis of the test's own, on a free port, without persistence.
type redisServer struct {
	t     *testing.T
	port  int
	dir   string
	extra []string // more redis-server arguments
	cmd   *exec.Cmd
	done  chan error
}

func startRedisServer(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "\n*** redis-server IS NOT INSTALLED: this test starts and stops a Redis of its own.\n*** Install redis-server (apt-get install redis-server)."
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s\n*** CI=true: a missing redis-server fails the run.", msg)
		}
		t.Skipf("%s\n*** SKIPPING this test (with CI=true it would fail).", msg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &redisServer{t: t, port: port, dir: t.TempDir(), extra: extra}
	r.start()
	t.Cleanup(func() {
		if r.cmd != nil {
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	args := []string{"--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir}
	r.cmd = exec.Command("redis-server", append(args, r.extra...)...)
	var out bytes.Buffer
	r.cmd.Stdout, r.cmd.Stderr = &out, &out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second); err == nil {
			conn.SetDeadline(time.Now().Add(time.Second))
			conn.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(line, "+PONG") {
				return
			}
		}
		select {
		case err := <-r.done:
			r.t.Fatalf("redis-server exited: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.t.Fatalf("redis-server on port %d did not answer within 10s\n%s", r.port, out.String())
}

func (r *redisServer) stop() {
	r.t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// readyz answers an instance's /readyz: its status and the reason of each check.
func readyz(v *verifier) (int, map[string]string) {
	res, err := client.Get(v.URL + "/readyz")
	if err != nil {
		return 0, map[string]string{"transport": err.Error()}
	}
	defer res.Body.Close()
	var body struct{ Checks map[string]string }
	json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body.Checks
}

// With Redis gone no code is weighed (there is no budget to weigh it against): every
// verification answers 503 unavailable and /readyz says Redis is missing. Both come back
// without a restart when Redis does.
func TestScaleOut_RedisStopped_FailsClosed_RecoversWhenBack(t *testing.T) {
	rs := startRedisServer(t)
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "twofoldtest:" + hex.EncodeToString(b) + ":" // a Redis of its own, emptied on exit
	c := startCluster(t, 3, rs.URL(), prefix)
	alice, bob := c.vs[0].enroll("alice"), c.vs[1].enroll("bob")
	if o := submit(c.vs[2].URL, alice.ticket, nextCode(t, alice.Secret)); o.status != 200 {
		t.Fatalf("with Redis up: %+v", o)
	}
	for i, v := range c.vs {
		if st, checks := readyz(v); st != 200 || checks["redis"] != "ok" {
			t.Fatalf("instance %d /readyz with Redis up: %d %v", i, st, checks)
		}
	}

	rs.stop()
	bobCode := nextCode(t, bob.Secret)
	for i, v := range c.vs {
		for _, code := range []string{bobCode, wrongCode(t, bob.Secret, time.Now())} {
			o := submit(v.URL, bob.ticket, code)
			if o.status != 503 || o.code != wire.CodeUnavailable {
				t.Errorf("instance %d, Redis down: %+v, want 503 unavailable", i, o)
			}
		}
		st, checks := readyz(v)
		if st != 503 || !strings.Contains(checks["redis"], fmt.Sprint(rs.port)) || checks["store"] != "ok" {
			t.Errorf("instance %d /readyz with Redis down: %d %v, want 503 naming Redis at port %d", i, st, checks, rs.port)
		}
	}
	// What the person is told says what to do.
	r := c.vs[0].call("POST", "/v1/totp/verify", "Ticket "+bob.ticket, origin, wire.CodeRequest{Code: bobCode})
	if msg := r.str("message"); !strings.Contains(msg, "Try again") {
		t.Errorf("message %q does not tell the person what to do", msg)
	}

	down := time.Now()
	rs.start()
	for i, v := range c.vs {
		for {
			st, checks := readyz(v)
			if st == 200 {
				break
			}
			if time.Since(down) > 20*time.Second {
				t.Fatalf("instance %d /readyz still %d %v 20s after Redis came back", i, st, checks)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("ready again %v after Redis restarted", time.Since(down).Round(time.Millisecond))
	// The refused code was never weighed, so it still works, on any instance.
	if o := submit(c.vs[2].URL, bob.ticket, bobCode); o.status != 200 {
		t.Fatalf("bob's code after Redis came back: %+v, want 200", o)
	}
}

func TestServe_RedisNotARedisURL_OneLineAndExit2(t *testing.T) {
	out, err := exec.Command(binary, "serve", "--data", t.TempDir(), "--redis", "http://127.0.0.1:6379").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || bytes.Count(out, []byte("\n")) != 1 || !bytes.Contains(out, []byte("--redis")) {
		t.Fatalf("exit %v, output %q; want exit 2 and one line naming --redis", err, out)
	}
}

// Ceremony state is in PostgreSQL: a passkey registration begun on one instance finishes on
// another, and its answer cannot be replayed on the third.
func TestScaleOut_PasskeyRegistrationBegunOnOneInstance_FinishesOnAnother(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	c := startCluster(t, 3, url, prefix)
	b, _ := c.vs[0].elevated("gwen")
	opts := b.call("POST", "/v1/webauthn/registrations", nil)
	if opts.Status != 200 {
		t.Fatalf("begin on instance 0: %d %s", opts.Status, opts.Raw)
	}
	a := passkeytest.New(origin, "localhost")
	cred, err := a.Create(opts.Raw)
	if err != nil {
		t.Fatal(err)
	}
	on := func(i int) browser { return browser{v: c.vs[i], ticket: b.ticket, origin: origin} }
	if r := on(1).call("POST", "/v1/webauthn/registrations/finish", cred); r.Status != 201 {
		t.Fatalf("finish on instance 1: %d %s", r.Status, r.Raw)
	}
	if r := on(2).call("POST", "/v1/webauthn/registrations/finish", cred); r.Status != 400 || r.errCode() != wire.CodeChallengeExpired {
		t.Fatalf("the same answer on instance 2: %d %s", r.Status, r.Raw)
	}
	lb := c.vs[2].ticket("gwen")
	if r := lb.call("POST", "/v1/webauthn/assertions/finish", c.vs[2].assertion(lb, a)); r.Status != 200 {
		t.Fatalf("login on instance 2: %d %s", r.Status, r.Raw)
	}
}
