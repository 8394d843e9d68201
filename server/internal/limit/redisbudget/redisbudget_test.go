package redisbudget

import (
	"io"
	"net"
	neturl "net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
	"github.com/twofold-dev/twofold/server/internal/store/storetest"
)

func open(t *testing.T) *Budgets {
	t.Helper()
	url, prefix := pgtest.RedisAddr(t)
	b, err := New(url, Options{Prefix: prefix, CallerClock: true}) // the contract steps through time
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// The same contract the SQL stores pass, so Redis and SQL budgets cannot drift apart.
func TestBudgets(t *testing.T) {
	storetest.RunBudgets(t, func(t *testing.T) store.AttemptStore {
		return open(t)
	})
}

// Keys do not outlive their use: a window ends with its key, a back-off budget is forgotten
// after the idle time, and only a lock stays until reset.
func TestBudgets_KeysExpire_ExceptALock(t *testing.T) {
	ctx := t.Context()
	url, prefix := pgtest.RedisAddr(t)
	b, err := New(url, Options{Prefix: prefix, IdleTTL: time.Hour, CallerClock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	opts, _ := redis.ParseURL(url)
	raw := redis.NewClient(opts)
	defer raw.Close()
	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := raw.PTTL(ctx, prefix+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	now := time.Now()

	if _, err := b.ReserveWindow(ctx, "ip", now, store.Window{Limit: 3, Period: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if d := ttl("log:ip"); d <= 0 || d > time.Minute {
		t.Errorf("window key TTL %v, want (0, 1m]", d)
	}

	p := store.Backoff{Free: 1, Base: 10 * time.Second, Max: time.Minute, LockAfter: 2}
	if d, err := b.ReserveBackoff(ctx, "f", now, p); err != nil || !d.Allowed {
		t.Fatalf("first attempt: %+v %v", d, err)
	}
	if d := ttl("f"); d <= time.Hour || d > time.Hour+10*time.Second {
		t.Errorf("back-off key TTL %v, want its block (10s) plus the idle hour", d)
	}
	if d, err := b.ReserveBackoff(ctx, "f", now.Add(10*time.Second), p); err != nil || !d.Allowed {
		t.Fatalf("second attempt: %+v %v", d, err)
	}
	if d := ttl("f"); d != -1 {
		t.Errorf("locked key TTL %v, want none (-1)", d)
	}
	if d, err := b.ReserveBackoff(ctx, "f", now.Add(time.Hour), p); err != nil || !d.Locked {
		t.Fatalf("after the lock: %+v %v", d, err)
	}

	if err := b.RefundAttempt(ctx, "nobody"); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Exists(ctx, prefix+"nobody", prefix+"log:nobody").Result(); err != nil || n != 0 {
		t.Errorf("a refund created a key: %d %v", n, err)
	}
}

// An unreachable Redis is an error at once (which the limiter turns into a refusal), not
// a wait, and Ping says where it looked.
func TestBudgets_Unreachable_ErrorsQuickly(t *testing.T) {
	b, err := New("redis://127.0.0.1:1/0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	if _, err := b.ReserveBackoff(t.Context(), "f", start, store.Backoff{Free: 5, Base: time.Second, Max: time.Minute, LockAfter: 10}); err == nil {
		t.Fatal("reserved against a Redis that is not there")
	}
	if err := b.Ping(t.Context()); err == nil {
		t.Fatal("Ping succeeded against a Redis that is not there")
	} else if want := "127.0.0.1:1"; !strings.Contains(err.Error(), want) {
		t.Errorf("Ping error %q does not name %s", err, want)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v to give up", took)
	}
}

func TestNew_BadURL_Error(t *testing.T) {
	if _, err := New("http://example.com", Options{}); err == nil {
		t.Fatal("accepted an http:// URL")
	}
}

// Instances whose clocks are minutes apart still agree on every budget: time is Redis's,
// so an instance whose clock runs behind or ahead can neither shorten a back-off nor
// reopen a full window early, nor make a refusal wait longer than the budget says.
func TestBudgets_InstanceClocksMinutesApart_SameAnswers(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	instance := func() *Budgets { // a verifier instance: its own connections, the same Redis
		b, err := New(url, Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	one, two := instance(), instance()
	p := store.Backoff{Free: 1, Base: time.Minute, Max: time.Hour, LockAfter: 10} // the first attempt blocks for a minute
	w := store.Window{Limit: 2, Period: time.Minute}
	wide := store.Window{Limit: 100, Period: time.Minute}
	refusedWithin := func(t *testing.T, d store.Decision, most time.Duration) {
		t.Helper()
		if d.Allowed || d.Locked || d.RetryAfter <= 0 || d.RetryAfter > most {
			t.Errorf("the other instance: %+v, want refused for at most %v", d, most)
		}
	}
	for _, tc := range []struct {
		name         string
		first, other time.Duration // each instance's clock error
	}{
		{"first behind", -5 * time.Minute, 0},
		{"other ahead", 0, 5 * time.Minute},
		{"first ahead, other behind", 5 * time.Minute, -5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, key := t.Context(), strings.ReplaceAll(tc.name, " ", "_")
			firstNow := func() time.Time { return time.Now().Add(tc.first) }
			otherNow := func() time.Time { return time.Now().Add(tc.other) }

			if d, err := one.ReserveBackoff(ctx, "f:"+key, firstNow(), p); err != nil || !d.Allowed {
				t.Fatalf("back-off, first attempt: %+v %v", d, err)
			}
			d, err := two.ReserveBackoff(ctx, "f:"+key, otherNow(), p)
			if err != nil {
				t.Fatal(err)
			}
			refusedWithin(t, d, p.Base)

			for range w.Limit {
				if d, err := one.ReserveWindow(ctx, "ip:"+key, firstNow(), w); err != nil || !d.Allowed {
					t.Fatalf("window, filling it: %+v %v", d, err)
				}
			}
			if d, err = two.ReserveWindow(ctx, "ip:"+key, otherNow(), w); err != nil {
				t.Fatal(err)
			}
			refusedWithin(t, d, w.Period)

			if _, d, err := one.ReservePair(ctx, "ip2:"+key, wide, "f2:"+key, p, firstNow()); err != nil || !d.Allowed {
				t.Fatalf("pair, first attempt: %+v %v", d, err)
			}
			_, d, err = two.ReservePair(ctx, "ip2:"+key, wide, "f2:"+key, p, otherNow())
			if err != nil {
				t.Fatal(err)
			}
			refusedWithin(t, d, p.Base)
		})
	}
}

// An address's budget slides: in no span of one window's length do more attempts get
// through than the budget, however they are timed, and the budget comes back as its oldest
// attempts leave the span. (A fixed window let a budget spent at its end be spent again at
// the next one's start: twice the budget within a second.)
func TestBudgets_BurstsAroundAWindowEnd_AtMostTheBudgetPerWindowLength(t *testing.T) {
	b := open(t)
	w := store.Window{Limit: 10, Period: time.Minute}
	free := store.Backoff{Free: 1000, Base: time.Second, Max: time.Second, LockAfter: 1000} // never in the way
	t0 := time.UnixMilli(1_893_456_000_000)
	burst := func(at time.Duration, n int) []time.Duration { return slices.Repeat([]time.Duration{at}, n) }
	for _, tc := range []struct {
		name     string
		attempts []time.Duration // when, from t0, in order
		allowed  int             // how many get through: the budget, as soon as it is there
	}{
		{"opened early, spent at its end and at the next start",
			slices.Concat(burst(0, 1), burst(59*time.Second, 20), burst(time.Minute, 20), burst(61*time.Second, 20)), 1 + 9 + 1},
		{"spent at once, again just before and just after a window later",
			slices.Concat(burst(0, 20), burst(time.Minute-time.Millisecond, 20), burst(time.Minute, 20), burst(2*time.Minute, 20)), 10 + 10 + 10},
		{"a steady trickle above the budget", func() (at []time.Duration) {
			for d := time.Duration(0); d < 3*time.Minute; d += 5 * time.Second {
				at = append(at, d)
			}
			return at
		}(), 30},
	} {
		for _, how := range []string{"ReserveWindow", "ReservePair"} {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				ctx, key := t.Context(), strings.ReplaceAll(tc.name+how, " ", "_")
				var allowed []time.Duration
				for _, at := range tc.attempts {
					var d store.Decision
					var err error
					if how == "ReserveWindow" {
						d, err = b.ReserveWindow(ctx, "ip:"+key, t0.Add(at), w)
					} else {
						d, _, err = b.ReservePair(ctx, "ip:"+key, w, "f:"+key, free, t0.Add(at))
					}
					if err != nil {
						t.Fatal(err)
					}
					if d.Allowed {
						allowed = append(allowed, at)
					} else if d.RetryAfter <= 0 || d.RetryAfter > w.Period {
						t.Errorf("refused at %v with a wait of %v", at, d.RetryAfter)
					}
				}
				for i, from := range allowed {
					if n, _ := slices.BinarySearch(allowed, from+w.Period); n-i > w.Limit {
						t.Errorf("%d attempts got through within %v from %v, budget %d", n-i, w.Period, from, w.Limit)
						break
					}
				}
				if len(allowed) != tc.allowed {
					t.Errorf("%d attempts got through in all, want %d: %v", len(allowed), tc.allowed, allowed)
				}
			})
		}
	}
}

// replyDropper is a TCP proxy in front of Redis that, once armed, swallows the next reply
// and closes that connection: a command that ran in Redis, but whose answer was lost.
type replyDropper struct {
	ln      net.Listener
	armed   atomic.Bool
	dropped atomic.Int32
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go p.answer(c, s)
		}
	}()
	return p
}

// answer copies Redis's replies to the client until it is armed.
func (p *replyDropper) answer(c, s net.Conn) {
	defer c.Close()
	defer s.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if err != nil {
			return
		}
		if p.armed.CompareAndSwap(true, false) {
			p.dropped.Add(1)
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// A give-back that ran in Redis but whose reply was lost is sent again by go-redis's
// retry; the address still gets back only the one attempt the success had taken.
func TestBudgets_GiveBackReplyLost_RetriedButRefundedOnce(t *testing.T) {
	url, prefix := pgtest.RedisAddr(t)
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newReplyDropper(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	b, err := New(u.String(), Options{Prefix: prefix}) // the retry New configures
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, now := t.Context(), time.Now()
	w := store.Window{Limit: 3, Period: time.Minute}
	free := store.Backoff{Free: 10, Base: time.Second, Max: time.Second, LockAfter: 10}
	reserve := func(factor string) store.Decision {
		t.Helper()
		d, _, err := b.ReservePair(ctx, "ip:a", w, "f:"+factor, free, now)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Both scripts loaded, so each call below is one EVALSHA.
	if _, _, err := b.ReservePair(ctx, "ip:warm", w, "f:warm", free, now); err != nil {
		t.Fatal(err)
	}
	if err := b.GiveBack(ctx, "ip:warm", "", "f:warm"); err != nil {
		t.Fatal(err)
	}

	reserve("wrong1")
	reserve("wrong2")
	right := reserve("right") // the address's third and last attempt: it succeeds
	proxy.armed.Store(true)
	if err := b.GiveBack(ctx, "ip:a", right.Attempt, "f:right"); err != nil {
		t.Fatalf("give-back, its first reply lost: %v (want it retried)", err)
	}
	if proxy.dropped.Load() != 1 {
		t.Fatal("no reply was dropped")
	}
	if d := reserve("wrong3"); !d.Allowed {
		t.Fatalf("the attempt given back: %+v, want allowed", d)
	}
	if d := reserve("wrong4"); d.Allowed {
		t.Fatalf("a fourth attempt within the window: %+v, want refused (the give-back refunded twice)", d)
	}
}
