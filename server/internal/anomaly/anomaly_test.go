package anomaly

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/audit"
)

type recorded struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorded) Record(_ context.Context, _ audit.Appender, e audit.Event) error {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	return nil
}

func (r *recorded) kinds(k audit.Kind) []audit.Event {
	var out []audit.Event
	for _, e := range r.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

type failure struct {
	user, ip string
	after    time.Duration // clock advance before it
	limited  bool          // refused by the limits rather than weighed
}

func failures(n int, f func(i int) failure) []failure {
	out := make([]failure, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func TestDetector_StuffingAndBursts_RaiseOneEventPerWindow(t *testing.T) {
	for _, tc := range []struct {
		name               string
		fails              []failure
		stuffing, bursts   int
		stuffingIP, burstU string
	}{
		{"quiet", failures(5, func(i int) failure { return failure{fmt.Sprint("u", i), "1.1.1.1", time.Second, false} }), 0, 0, "", ""},
		{"one address, many users: stuffing once", failures(25, func(i int) failure { return failure{fmt.Sprint("u", i), "6.6.6.6", time.Second, false} }), 1, 0, "6.6.6.6", ""},
		{"one IPv6 /64, a fresh address per user: stuffing once", failures(25, func(i int) failure {
			return failure{fmt.Sprint("u", i), fmt.Sprintf("2001:db8:1:2::%x", i+1), time.Second, false}
		}), 1, 0, "2001:db8:1:2::a", ""},
		{"many users, many addresses: nothing", failures(25, func(i int) failure { return failure{fmt.Sprint("u", i), fmt.Sprint("10.0.0.", i), time.Second, false} }), 0, 0, "", ""},
		{"one address, many users, spread thin: nothing", failures(25, func(i int) failure { return failure{fmt.Sprint("u", i), "6.6.6.6", 2 * time.Minute, false} }), 0, 0, "", ""},
		{"one user, many guesses from many addresses: burst once", failures(15, func(i int) failure { return failure{"alice", fmt.Sprint("10.0.0.", i), time.Second, false} }), 0, 1, "", "alice"},
		{"one user, most guesses refused by the back-off: burst", failures(12, func(i int) failure { return failure{"carol", "1.1.1.1", time.Second, i >= 5} }), 0, 1, "", "carol"},
		{"rate-limited attempts for many users are not stuffing", failures(25, func(i int) failure { return failure{fmt.Sprint("u", i), "6.6.6.6", time.Second, true} }), 0, 0, "", ""},
		{"one user, guesses spread over an hour: nothing", failures(15, func(i int) failure { return failure{"alice", "1.1.1.1", time.Minute, false} }), 0, 0, "", ""},
		{"one user, two bursts far apart: two events", append(
			failures(10, func(i int) failure { return failure{"bob", "1.1.1.1", time.Second, false} }),
			failures(10, func(i int) failure {
				if i == 0 {
					return failure{"bob", "1.1.1.1", time.Hour, false}
				}
				return failure{"bob", "1.1.1.1", time.Second, false}
			})...), 0, 2, "", "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{time.Unix(2e9, 0)}
			rec := &recorded{}
			d := New(rec, Config{Now: clk.Now})
			for _, f := range tc.fails {
				clk.t = clk.t.Add(f.after)
				kind := audit.Failed
				if f.limited {
					kind = audit.RateLimited
				}
				d.Record(context.Background(), nil, audit.Event{Kind: kind, AppID: "shop", User: f.user, IP: f.ip, Outcome: "refused"})
			}
			st, bu := rec.kinds(audit.CredentialStuffing), rec.kinds(audit.FailureBurst)
			if len(st) != tc.stuffing || len(bu) != tc.bursts {
				t.Fatalf("%d stuffing, %d bursts; want %d, %d", len(st), len(bu), tc.stuffing, tc.bursts)
			}
			if len(st) > 0 && st[0].IP != tc.stuffingIP {
				t.Errorf("stuffing event names %q", st[0].IP)
			}
			if len(bu) > 0 && bu[0].User != tc.burstU {
				t.Errorf("burst event names %q", bu[0].User)
			}
			if n := len(rec.kinds(audit.Failed)) + len(rec.kinds(audit.RateLimited)); n != len(tc.fails) {
				t.Errorf("%d failures passed on, want %d", n, len(tc.fails))
			}
		})
	}
}

// The anomaly events reach the webhook and the metrics like a lock does.
func TestAnomalyEvents_NotifiedAndCounted(t *testing.T) {
	for _, k := range []audit.Kind{audit.CredentialStuffing, audit.FailureBurst} {
		if !audit.Notifies(k) {
			t.Errorf("%s does not reach the app's webhook", k)
		}
	}
}
