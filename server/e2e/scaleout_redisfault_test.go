package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
)

// redisCutter is a TCP proxy in front of a Redis that the test can cut after a given
// number of further scripts (EVALSHA), as a Redis that stops answering in the middle of a
// verification: its reservation answered, what follows not.
type redisCutter struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	armed bool
	left  int // scripts still let through once armed
	cut   bool
	conns []net.Conn
}

func newRedisCutter(t *testing.T, target string) *redisCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &redisCutter{t: t, ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.conns {
			c.Close()
		}
	})
	go r.serve()
	return r
}

// Addr is the proxy's host:port.
func (r *redisCutter) Addr() string { return r.ln.Addr().String() }

// cutAfter lets n more scripts through, then closes every connection and refuses new ones.
func (r *redisCutter) cutAfter(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed, r.left = true, n
}

func (r *redisCutter) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		cut := r.cut
		r.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", r.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		go io.Copy(c, s)
		go r.forward(c, s)
	}
}

// forward copies client c's commands to Redis s until a script that is past the budget.
func (r *redisCutter) forward(c, s net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			scripts := bytes.Count(bytes.ToLower(buf[:n]), []byte("evalsha"))
			r.mu.Lock()
			if r.armed && scripts > 0 {
				if r.left < scripts {
					r.cut = true
					for _, x := range r.conns {
						x.Close()
					}
				}
				r.left -= scripts
			}
			cut := r.cut
			r.mu.Unlock()
			if cut {
				return
			}
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			s.Close()
			return
		}
	}
}

// Redis answers a verification's reservation, then stops answering before the attempt is
// given back. The sign-in had already committed (the code, or recovery code, is used and
// the ticket elevated): the person gets the token they earned, not a 503 telling them to
// try again with a code that will now be refused. Before, a TOTP code was answered 503 and
// then 409, and a recovery code was burnt with nothing to show for it.
func TestScaleOut_RedisStopsAfterReservation_CommittedSignInStillAnswered(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	target := url[len("redis://"):]
	if i := bytes.IndexByte([]byte(target), '/'); i >= 0 {
		target = target[:i]
	}
	if i := bytes.LastIndexByte([]byte(target), '@'); i >= 0 {
		target = target[i+1:]
	}
	px := newRedisCutter(t, target)
	c := startCluster(t, 1, "redis://"+px.Addr()+"/0", prefix)
	v := c.vs[0]
	// A first sign-in loads both scripts into Redis, so each later one is one EVALSHA.
	warm := v.enroll("warm")
	if o := submit(v.URL, warm.ticket, nextCode(t, warm.Secret)); o.status != 200 {
		t.Fatalf("with Redis up: %+v", o)
	}

	for _, tc := range []struct {
		name, path string
		code       func(e enrolled) string
	}{
		{"totp", "/v1/totp/verify", func(e enrolled) string { return nextCode(t, e.Secret) }},
		{"recovery", "/v1/recovery/verify", func(e enrolled) string { return e.RecoveryCodes[0] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px.mu.Lock()
			px.cut, px.armed = false, false
			px.mu.Unlock()
			e := v.enroll("u-" + tc.name)
			code := tc.code(e)
			px.cutAfter(1) // the reservation passes; the give-back finds Redis gone
			r := e.call("POST", tc.path, wire.CodeRequest{Code: code})
			if r.Status != 200 || r.str("token") == "" {
				t.Errorf("sign-in committed, then Redis gone: %d %s; want 200 and the token", r.Status, r.Raw)
			}
			// It had committed: with Redis back, the code is used.
			px.mu.Lock()
			px.cut, px.armed = false, false
			px.mu.Unlock()
			if again := e.call("POST", tc.path, wire.CodeRequest{Code: code}); again.Status/100 != 4 {
				t.Errorf("the same code again, Redis back: %d %s; want it refused as used", again.Status, again.Raw)
			}
		})
	}
}

// redisFill writes n values of size bytes under keys "cache:<i>" over raw RESP, as another
// tenant of a shared Redis (a cache) would.
func redisFill(t *testing.T, addr string, n, size int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	val := bytes.Repeat([]byte("x"), size)
	var req bytes.Buffer
	for i := range n {
		key := fmt.Sprintf("cache:%d", i)
		fmt.Fprintf(&req, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(key), key, len(val), val)
	}
	go conn.Write(req.Bytes())
	rd := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	for range n {
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
}

// A Redis that evicts keys when full (maxmemory with an LRU policy, as many managed and
// shared caches are set up) forgets a back-off, a lock or an address's window as soon as
// another tenant fills it, and the guessing it bounded starts over. /readyz warns (still
// 200: it works) and serve logs it at start. Before, nothing said so.
func TestScaleOut_RedisEvictsKeys_ReadyzWarns(t *testing.T) {
	rs := startRedisServer(t, "--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru")
	c := startCluster(t, 2, rs.URL(), "twofoldtest:evict:")
	bob := c.vs[0].enroll("bob")
	wrong := wrongCode(t, bob.Secret, time.Now())
	for i := range 5 {
		if o := submit(c.vs[i%2].URL, bob.ticket, wrong); o.status != 401 {
			t.Fatalf("guess %d: %+v, want 401", i+1, o)
		}
	}
	if o := submit(c.vs[1].URL, bob.ticket, wrong); o.status != 429 {
		t.Fatalf("the sixth guess: %+v, want 429 (back-off)", o)
	}
	// What the warning is about: another tenant fills Redis, and bob's back-off is gone.
	redisFill(t, fmt.Sprintf("127.0.0.1:%d", rs.port), 1500, 8<<10)
	t.Logf("after another tenant filled Redis, bob's next guess: %+v (401: weighed again, the back-off evicted)", submit(c.vs[0].URL, bob.ticket, wrong))

	for i, v := range c.vs {
		res, err := client.Get(v.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Status   string
			Warnings map[string]string
		}
		json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != 200 || body.Status != "warning" || !strings.Contains(body.Warnings["redis"], "maxmemory-policy allkeys-lru") {
			t.Errorf("instance %d /readyz on an evicting Redis: %d %+v; want 200, a warning naming maxmemory-policy allkeys-lru", i, res.StatusCode, body)
		}
		if !c.procs[i].logged(body.Warnings["redis"]) {
			t.Errorf("instance %d did not log the warning at start", i)
		}
	}
}

// One recovery code sent to three instances at once signs in once, and the audit records
// that many instances queue at once (audit_queue) end as one valid chain, also while
// `audit verify` chains them from outside during the load.
func TestScaleOut_RecoveryCodeOnThreeInstances_OneWins_AuditChainStaysWhole(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	c := startCluster(t, 3, url, prefix, "--ip-budget", "100000")
	const users = 12
	es := make([]enrolled, users)
	for i := range es {
		es[i] = c.vs[i%3].enroll(fmt.Sprintf("r%02d", i))
	}
	var wg sync.WaitGroup
	wins := make([]int, users)
	var mu sync.Mutex
	start := make(chan struct{})
	for i, e := range es {
		for k := range 6 {
			wg.Go(func() {
				<-start
				path, code := "/v1/recovery/verify", e.RecoveryCodes[0]
				if k%2 == 1 {
					path, code = "/v1/totp/verify", "000000" // wrong, most likely; queued either way
				}
				req, _ := http.NewRequest("POST", c.vs[k%3].URL+path, strings.NewReader(`{"code":"`+code+`"}`))
				req.Header.Set("Authorization", "Ticket "+e.ticket)
				req.Header.Set("Origin", origin)
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if path == "/v1/recovery/verify" && res.StatusCode == 200 {
					mu.Lock()
					wins[i]++
					mu.Unlock()
				}
			})
		}
	}
	verified := make(chan []byte, 1)
	go func() {
		<-start
		out, _ := exec.Command(binary, "audit", "verify", "--store", c.dsn).CombinedOutput()
		verified <- out
	}()
	close(start)
	wg.Wait()
	if out := <-verified; !bytes.Contains(out, []byte(`"ok":true`)) {
		t.Errorf("audit verify during the load: %s", out)
	}
	for i, n := range wins {
		if n != 1 {
			t.Errorf("user %d: one recovery code sent to three instances signed in %d times", i, n)
		}
	}
	var rep struct {
		OK      bool
		Records int64
	}
	if err := json.Unmarshal(runCLI(t, "audit", "verify", "--store", c.dsn), &rep); err != nil || !rep.OK {
		t.Fatalf("audit verify after the load: %+v %v", rep, err)
	}
	// Each user: enrollment started and factor added, then 3 recovery attempts and 3 wrong
	// codes, each recorded (anomalies may add more).
	if rep.Records < users*(2+6) {
		t.Errorf("%d records in the chain, want at least %d", rep.Records, users*(2+6))
	}
	t.Logf("%d records, one chain", rep.Records)
}
