// Package load drives POST /v1/totp/verify of one or more verifier instances over many
// keep-alive connections and measures what comes back: successes and rejections per
// second and the latency of every request.
//
// Every valid code it sends is a real success: each user is used by one request at a
// time and at most once per time step, so the replay guard never refuses a valid code.
// Wrong codes and replays are spread over many users (a few per user per run), so the
// verifier's per-credential back-off does not turn them into 429s.
package load

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Kind is what a request tries.
type Kind int

const (
	Valid  Kind = iota // the user's code of the current step, never used before
	Wrong              // a code of no step near now
	Replay             // a code that already succeeded
	nKinds
)

func (k Kind) String() string { return [...]string{"valid", "wrong", "replay"}[k] }

// Mix is the share of each kind of request; it need not sum to one.
type Mix struct{ Valid, Wrong, Replay float64 }

// ParseMix reads "valid=0.8,wrong=0.1,replay=0.1".
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		f, err := strconv.ParseFloat(val, 64)
		if !ok || err != nil || f < 0 {
			return Mix{}, fmt.Errorf("mix %q: want name=fraction,...", s)
		}
		switch name {
		case "valid":
			m.Valid = f
		case "wrong":
			m.Wrong = f
		case "replay":
			m.Replay = f
		default:
			return Mix{}, fmt.Errorf("mix %q: unknown kind %q (valid, wrong, replay)", s, name)
		}
	}
	if m.Valid+m.Wrong+m.Replay == 0 {
		return Mix{}, fmt.Errorf("mix %q: all zero", s)
	}
	return m, nil
}

// User is one enrolled user as the load generator knows it.
type User struct {
	ID     string
	Secret []byte
	Ticket string

	busy    atomic.Bool  // a request for this user is in flight
	okStep  atomic.Int64 // step of the last valid code sent; 0 = none
	okCode  atomic.Value // string: that code, for replays
	wrong   atomic.Int32 // wrong codes sent this run
	replays atomic.Int32 // replays sent this run
}

// Config is one measured drive.
type Config struct {
	// Targets are base URLs (http://host:port); connections are spread over them evenly.
	Targets []string
	Path    string // default /v1/totp/verify
	Origin  string
	Users   []*User
	Conns   int
	Warmup  time.Duration // requests finishing before this are not counted, nor timed if begun before it
	Measure time.Duration // the counted window after the warm-up
	Mix     Mix
	// MaxWrongPerUser and MaxReplaysPerUser bound the failures charged to one credential
	// in a run; the verifier backs off after five.
	MaxWrongPerUser, MaxReplaysPerUser int32
	// Period is the TOTP step length in seconds; default 30.
	Period int64
	// SpreadSources makes each connection come from an address of its own in 127.0.0.0/8
	// (127.0.1.1, 127.0.1.2, ...), as a verifier's many real clients would, instead of all
	// from 127.0.0.1: per-address state (the failed-attempt budget) then spreads over many
	// keys rather than serialising every request on one.
	SpreadSources bool
	// Stateless sends every request as a valid code of one shared user, again and again:
	// for the ceiling, which keeps no state.
	Stateless bool
	// Rate, when above zero, makes the drive open-loop: requests start on a fixed schedule
	// of Rate per second over all connections, whatever the answers' pace, and each one's
	// latency runs from its scheduled start, so time spent queued behind a slow server
	// counts (no coordinated omission). A request is counted when its scheduled start
	// falls in the window. Zero is closed-loop: each connection sends again as soon as
	// its answer is in, and a request counts when it finishes in the window.
	Rate float64
	// OnWindow, if set, is called when the counted window opens and when it closes, to
	// sample server CPU at the same instants.
	OnWindow func(open bool)
}

// Result is what one drive measured inside the counted window.
type Result struct {
	Elapsed time.Duration
	OK      int64 // 200 for a valid code
	Reject  int64 // 401 for a wrong code, 409 for a replay
	// Unexpected answers: a valid code refused, a wrong code or replay accepted, 429s,
	// 5xx and transport errors. A sound run has all of them zero.
	ValidRefused, BadAccepted, RateLimited, ServerErrors, OtherStatus, TransportErrors int64
	Sent                                                                               [nKinds]int64
	// Starved counts the times a worker wanted a valid code and found every user already
	// used in the current step: the users, not the verifier, bounded the valid rate.
	Starved int64
	// Skipped counts scheduled requests of an open-loop drive that had no user to go to.
	Skipped int64
	// MaxLag is, in an open-loop drive, the longest a request started after its scheduled
	// start: all connections were busy. Its latency includes that wait.
	MaxLag time.Duration
	// Cold is, in a closed-loop drive, the slowest of the connections' first requests: sent
	// together at the warm-up's start, to instances that had answered nothing yet.
	Cold time.Duration
	// Latencies in microseconds of every counted request, and of successes alone; closed
	// loop, only of those that also began in the window.
	Lat, LatOK []uint32
	// Windows is an open-loop drive's latency over time, a tenth of a second at a time by
	// scheduled start: a stall shows as a run of slow windows, queueing as slow windows
	// everywhere.
	Windows []Window
	// FirstError is an example of the unexpected, for the report.
	FirstError string
}

// Window is one tenth of a second of an open-loop drive: the requests scheduled to start
// in it, and how long they took.
type Window struct {
	StartMS  int     `json:"start_ms"` // from the counted window's start
	Requests int     `json:"requests"`
	P50MS    float64 `json:"p50_ms"`
	MaxMS    float64 `json:"max_ms"`
}

// windowMS is how long a Window is.
const windowMS = 100

// windows groups latencies (µs) by their requests' scheduled starts (ms into the counted
// window).
func windows(startMS, lat []uint32) []Window {
	var byWindow [][]uint32
	for i, at := range startMS {
		w := int(at / windowMS)
		for len(byWindow) <= w {
			byWindow = append(byWindow, nil)
		}
		byWindow[w] = append(byWindow[w], lat[i])
	}
	out := make([]Window, len(byWindow))
	for i, l := range byWindow {
		out[i] = Window{StartMS: i * windowMS, Requests: len(l)}
		if len(l) > 0 {
			Sort(l)
			out[i].P50MS, out[i].MaxMS = Quantile(l, 0.5), Quantile(l, 1)
		}
	}
	return out
}

// PerSecond returns n per second of the counted window.
func (r Result) PerSecond(n int64) float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(n) / r.Elapsed.Seconds()
}

type worker struct {
	cfg    *Config
	client *fasthttp.HostClient
	url    string
	rng    *rand.Rand
	lat    []uint32
	latOK  []uint32
	due    []uint32 // open loop: each counted request's scheduled start, ms into the window
	res    Result
	cursor *atomic.Uint64
	fcur   *atomic.Uint64
	seq    *atomic.Int64 // open loop: the next scheduled request
	start  time.Time
	// passed are users this worker recently verified, the pool replays are drawn from.
	passed []*User
}

// Drive runs the load until the window closes or ctx ends.
func Drive(ctx context.Context, cfg Config) (Result, error) {
	if len(cfg.Targets) == 0 || len(cfg.Users) == 0 || cfg.Conns <= 0 {
		return Result{}, errors.New("load: need targets, users and connections")
	}
	if cfg.Path == "" {
		cfg.Path = "/v1/totp/verify"
	}
	if cfg.Period <= 0 {
		cfg.Period = 30
	}
	var dial fasthttp.DialFunc
	if cfg.SpreadSources {
		var next atomic.Uint32
		dial = func(addr string) (net.Conn, error) {
			n := next.Add(1)
			src := &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+n/250%250), byte(1+n%250))}
			d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
			return d.Dial("tcp4", addr)
		}
	}
	clients := make([]*fasthttp.HostClient, len(cfg.Targets))
	for i, t := range cfg.Targets {
		u, err := url.Parse(t)
		if err != nil {
			return Result{}, fmt.Errorf("load: target %q: %w", t, err)
		}
		per := (cfg.Conns + len(cfg.Targets) - 1) / len(cfg.Targets)
		clients[i] = &fasthttp.HostClient{Addr: u.Host, MaxConns: per, Dial: dial, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	}
	start := time.Now()
	open, end := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Measure)
	var cursor, fcur atomic.Uint64
	var seq atomic.Int64
	fcur.Store(uint64(len(cfg.Users) / 2)) // failures start elsewhere than successes
	workers := make([]*worker, cfg.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{cfg: &cfg, client: clients[i%len(clients)], url: cfg.Targets[i%len(clients)] + cfg.Path,
			rng: rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano()))), cursor: &cursor, fcur: &fcur, seq: &seq, start: start}
		workers[i] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, open, end) }()
	}
	if cfg.OnWindow != nil {
		go func() {
			if sleepUntil(ctx, open) {
				cfg.OnWindow(true)
			}
			if sleepUntil(ctx, end) {
				cfg.OnWindow(false)
			}
		}()
	}
	wg.Wait()
	res := Result{Elapsed: cfg.Measure}
	var due []uint32
	for _, w := range workers {
		r := &w.res
		res.OK += r.OK
		res.Reject += r.Reject
		res.ValidRefused += r.ValidRefused
		res.BadAccepted += r.BadAccepted
		res.RateLimited += r.RateLimited
		res.ServerErrors += r.ServerErrors
		res.OtherStatus += r.OtherStatus
		res.TransportErrors += r.TransportErrors
		res.Starved += r.Starved
		res.Skipped += r.Skipped
		res.MaxLag = max(res.MaxLag, r.MaxLag)
		res.Cold = max(res.Cold, r.Cold)
		for k := range r.Sent {
			res.Sent[k] += r.Sent[k]
		}
		res.Lat = append(res.Lat, w.lat...)
		due = append(due, w.due...)
		res.LatOK = append(res.LatOK, w.latOK...)
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
	}
	if cfg.Rate > 0 {
		res.Windows = windows(due, res.Lat)
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return res, ctx.Err()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(t)):
		return true
	}
}

func (w *worker) run(ctx context.Context, open, end time.Time) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(w.url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	if w.cfg.Origin != "" {
		req.Header.Set("Origin", w.cfg.Origin)
	}
	body := []byte(`{"code":"000000"}`)
	rate := w.cfg.Rate
	for first := rate == 0; ctx.Err() == nil; {
		var due time.Time
		if rate > 0 {
			due = w.start.Add(time.Duration(float64(w.seq.Add(1)-1) / rate * float64(time.Second)))
			if !due.Before(end) || !sleepUntil(ctx, due) {
				return
			}
		}
		now := time.Now()
		if !now.Before(end) && rate == 0 {
			return
		}
		u, kind, code := w.pick(now)
		if u == nil {
			if rate > 0 {
				if !due.Before(open) {
					w.res.Skipped++
				}
				continue
			}
			// Nothing may be sent this step: wait for the next one rather than spin.
			time.Sleep(20 * time.Millisecond)
			continue
		}
		copy(body[9:15], code)
		req.Header.Set("Authorization", "Ticket "+u.Ticket)
		req.SetBodyRaw(body)
		t0 := time.Now()
		err := w.client.Do(req, resp)
		t1 := time.Now()
		u.busy.Store(false)
		if first {
			w.res.Cold, first = t1.Sub(t0), false
		}
		if rate > 0 {
			if due.Before(open) {
				continue
			}
			w.res.MaxLag = max(w.res.MaxLag, t0.Sub(due))
			w.due = append(w.due, uint32(due.Sub(open).Milliseconds()))
			t0 = due
		} else if t1.Before(open) || t1.After(end) {
			continue
		}
		w.res.Sent[kind]++
		ok := w.tally(u, kind, err, resp)
		// A closed-loop request counts where it finishes, but is timed only if it began in
		// the window too: the first ones of a run, which meet cold connections and caches,
		// are what the warm-up keeps out.
		if rate > 0 || !t0.Before(open) {
			us := uint32(min(t1.Sub(t0).Microseconds(), 1<<32-1))
			w.lat = append(w.lat, us)
			if ok {
				w.latOK = append(w.latOK, us)
			}
		}
	}
}

// tally counts an answer and reports whether it was a valid code's success.
func (w *worker) tally(u *User, kind Kind, err error, resp *fasthttp.Response) (ok bool) {
	r := &w.res
	if err != nil {
		r.TransportErrors++
		w.note(fmt.Sprintf("%s: %v", kind, err))
		return false
	}
	st := resp.StatusCode()
	switch {
	case st == 200 && kind == Valid:
		r.OK++
		ok = true
		if len(w.passed) < 4096 {
			w.passed = append(w.passed, u)
		}
	case st == 200:
		r.BadAccepted++
		w.note(fmt.Sprintf("%s code accepted", kind))
	case (st == 401 && kind == Wrong) || (st == 409 && kind == Replay):
		r.Reject++
	case st == 429:
		r.RateLimited++
		w.note(fmt.Sprintf("%s: 429 %s", kind, resp.Body()))
	case st >= 500:
		r.ServerErrors++
		w.note(fmt.Sprintf("%s: %d %s", kind, st, resp.Body()))
	case kind == Valid:
		r.ValidRefused++
		w.note(fmt.Sprintf("valid code refused: %d %s", st, resp.Body()))
	default:
		r.OtherStatus++
		w.note(fmt.Sprintf("%s: %d %s", kind, st, resp.Body()))
	}
	return ok
}

func (w *worker) note(s string) {
	if w.res.FirstError == "" {
		w.res.FirstError = s
	}
}

// pick chooses the next request by the mix, falling back to another kind when a kind
// has nobody left. It returns the user marked busy, or nil when nothing can be sent.
func (w *worker) pick(now time.Time) (*User, Kind, string) {
	m := w.cfg.Mix
	x := w.rng.Float64() * (m.Valid + m.Wrong + m.Replay)
	first := Valid
	switch {
	case x >= m.Valid+m.Wrong:
		first = Replay
	case x >= m.Valid:
		first = Wrong
	}
	step := now.Unix() / w.cfg.Period
	if w.cfg.Stateless {
		u := w.cfg.Users[0]
		return u, Valid, Code(u.Secret, step)
	}
	for i := range nKinds {
		k := (first + i) % nKinds
		if k != Valid && (k == Wrong && m.Wrong == 0 || k == Replay && m.Replay == 0) {
			continue
		}
		if u, code := w.try(k, step); u != nil {
			return u, k, code
		}
	}
	return nil, 0, ""
}

// try finds a user for kind k, scanning at most a bounded number of users.
func (w *worker) try(k Kind, step int64) (*User, string) {
	users := w.cfg.Users
	n := uint64(len(users))
	scan := min(n, 64)
	if k == Valid {
		scan = n // finding none means every user was used this step
	}
	if k == Replay {
		return w.replay()
	}
	for range scan {
		var u *User
		if k == Valid {
			u = users[w.cursor.Add(1)%n]
		} else {
			u = users[w.fcur.Add(1)%n]
		}
		if !u.busy.CompareAndSwap(false, true) {
			continue
		}
		switch k {
		case Valid:
			if u.okStep.Load() < step {
				code := Code(u.Secret, step)
				u.okStep.Store(step)
				u.okCode.Store(code)
				return u, code
			}
		case Wrong:
			if u.wrong.Load() < w.cfg.MaxWrongPerUser {
				u.wrong.Add(1)
				return u, w.wrongCode(u, step)
			}
		}
		u.busy.Store(false)
	}
	if k == Valid {
		w.res.Starved++
	}
	return nil, ""
}

// replay takes a user this worker verified and resends that user's last code. A user
// leaves the pool after MaxReplaysPerUser replays.
func (w *worker) replay() (*User, string) {
	for len(w.passed) > 0 {
		i := w.rng.IntN(len(w.passed))
		u := w.passed[i]
		if u.replays.Load() >= w.cfg.MaxReplaysPerUser {
			w.passed[i] = w.passed[len(w.passed)-1]
			w.passed = w.passed[:len(w.passed)-1]
			continue
		}
		if !u.busy.CompareAndSwap(false, true) {
			return nil, ""
		}
		u.replays.Add(1)
		return u, u.okCode.Load().(string)
	}
	return nil, ""
}

// wrongCode is a random code that is none of the codes the verifier would accept now.
func (w *worker) wrongCode(u *User, step int64) string {
	for {
		c := fmt.Sprintf("%06d", w.rng.IntN(1_000_000))
		if c != Code(u.Secret, step-1) && c != Code(u.Secret, step) && c != Code(u.Secret, step+1) {
			return c
		}
	}
}

// Code is the RFC 6238 code (SHA-1, 6 digits) of step: what the user's phone shows.
func Code(secret []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	s := strconv.Itoa(int(v % 1_000_000))
	return "000000"[len(s):] + s
}
