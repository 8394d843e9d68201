// Package anomaly watches the failures the audit trail records for two attacks that no
// single failure shows: credential stuffing (one address failing for many users) and a
// burst of guesses at one user. Each raises an audit event, which is counted in the
// metrics and, like a lock, told to the app's webhook.
package anomaly

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/clientip"
)

// Config sets the thresholds; zero values mean the defaults in withDefaults.
type Config struct {
	// StuffingUsers distinct users failing from one address within StuffingWindow (10 in
	// 10 minutes) is credential stuffing.
	StuffingUsers  int
	StuffingWindow time.Duration
	// BurstFailures failed or rate-limited attempts at one user within BurstWindow (10 in
	// 5 minutes) is a burst: past a few failures the back-off refuses most guesses.
	BurstFailures int
	BurstWindow   time.Duration
	Now           func() time.Time
}

func (c Config) withDefaults() Config {
	if c.StuffingUsers <= 0 {
		c.StuffingUsers = 10
	}
	if c.StuffingWindow <= 0 {
		c.StuffingWindow = 10 * time.Minute
	}
	if c.BurstFailures <= 0 {
		c.BurstFailures = 10
	}
	if c.BurstWindow <= 0 {
		c.BurstWindow = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// maxKeys bounds the memory an attacker with many addresses can make it hold.
const maxKeys = 100_000

type track struct {
	seen    map[string]time.Time // user (stuffing) or failure index (burst) → when
	flagged time.Time            // when the last event was raised
}

// Detector is an audit.Recorder that passes every event on and adds the anomaly events.
// It sees the failures of this instance only.
type Detector struct {
	next audit.Recorder
	cfg  Config

	mu     sync.Mutex
	byIP   map[string]*track
	byUser map[string]*track
	n      int
}

var _ audit.Recorder = (*Detector)(nil)

// New wraps next.
func New(next audit.Recorder, cfg Config) *Detector {
	return &Detector{next: next, cfg: cfg.withDefaults(), byIP: map[string]*track{}, byUser: map[string]*track{}}
}

// Record passes e on and, for a failure or a rate-limited attempt, records the anomaly it
// completes, if any.
func (d *Detector) Record(ctx context.Context, to audit.Appender, e audit.Event) error {
	err := d.next.Record(ctx, to, e)
	if e.Kind == audit.Failed || e.Kind == audit.RateLimited {
		for _, a := range d.observe(e) {
			if aerr := d.next.Record(ctx, to, a); err == nil {
				err = aerr
			}
		}
	}
	return err
}

func (d *Detector) observe(e audit.Event) []audit.Event {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.byIP)+len(d.byUser) > maxKeys {
		d.byIP, d.byUser = map[string]*track{}, map[string]*track{}
	}
	var out []audit.Event
	user := e.AppID + "\x00" + e.User
	if e.IP != "" && e.Kind == audit.Failed { // refusals by the per-address limit are not new users
		network := clientip.Network(e.IP)
		if n := d.note(d.byIP, network, user, now, d.cfg.StuffingWindow, d.cfg.StuffingUsers); n > 0 {
			out = append(out, audit.Event{At: now, Kind: audit.CredentialStuffing, AppID: e.AppID, User: e.User, IP: e.IP,
				UserAgent: e.UserAgent, Outcome: "refused",
				Detail: fmt.Sprintf("failures for %d different users from %s within %s", n, network, d.cfg.StuffingWindow)})
		}
	}
	d.n++
	if n := d.note(d.byUser, user, fmt.Sprint(d.n), now, d.cfg.BurstWindow, d.cfg.BurstFailures); n > 0 {
		out = append(out, audit.Event{At: now, Kind: audit.FailureBurst, AppID: e.AppID, User: e.User, IP: e.IP,
			UserAgent: e.UserAgent, Outcome: "refused", Factor: e.Factor,
			Detail: fmt.Sprintf("%d failed or refused attempts within %s", n, d.cfg.BurstWindow)})
	}
	return out
}

// note adds item under key, forgets what is older than window, and returns the count when
// it reaches limit and no event was raised for key within the window (else 0).
func (d *Detector) note(m map[string]*track, key, item string, now time.Time, window time.Duration, limit int) int {
	t := m[key]
	if t == nil {
		t = &track{seen: map[string]time.Time{}}
		m[key] = t
	}
	t.seen[item] = now
	for k, at := range t.seen {
		if now.Sub(at) > window {
			delete(t.seen, k)
		}
	}
	if len(t.seen) < limit || (!t.flagged.IsZero() && now.Sub(t.flagged) <= window) {
		return 0
	}
	t.flagged = now
	return len(t.seen)
}
