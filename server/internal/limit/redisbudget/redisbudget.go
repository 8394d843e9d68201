// Package redisbudget keeps attempt budgets (store.AttemptStore) in Redis, so several
// verifier instances share them without loading the database with short-lived counters. It
// is the only importer of go-redis.
//
// Every operation is one Lua script (EVALSHA, falling back to EVAL after a Redis restart
// empties the script cache), so a reservation is atomic across instances exactly as the SQL
// upsert of sqlstore/limits.go is, with the same semantics but for windows, which slide
// here. The scripts read the time from Redis (TIME), not from the instance that calls them,
// so instances whose clocks differ still agree on every back-off and window.
//
// Keys live under the configured prefix. A back-off budget is a hash: n (the count), b
// (blocked until, Unix ms by Redis's clock). A window budget is a log of the attempts of
// the last window, a sorted set under "log:" whose members are the attempts' ids and whose
// scores are their times, so in no span of one window's length do more than its limit get
// through. (The log's key is not that of the hash earlier versions kept for a window: during
// a rolling upgrade the two count apart, and the old hashes expire with their windows.)
package redisbudget

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Options tune the budgets; the zero value is the default.
type Options struct {
	// Prefix starts every key, so several deployments (or test runs) share one Redis.
	// Default "twofold:".
	Prefix string
	// IdleTTL is how long a back-off budget that is neither blocked nor locked outlives its
	// last attempt; then its failures are forgotten. A locked budget never expires: only
	// ResetAttempts unlocks it. A window budget expires a window after its last attempt.
	// Default 30 days.
	IdleTTL time.Duration
	// CallerClock counts time by the now each call is given, as the SQL stores do, instead
	// of by Redis's clock. Tests set it to step through back-offs and windows without
	// sleeping. Never in a deployment: instances whose clocks differ would disagree on
	// every back-off and window.
	CallerClock bool
}

const (
	DefaultPrefix  = "twofold:" // Options.Prefix when it is empty
	defaultIdleTTL = 30 * 24 * time.Hour
)

// Budgets is a store.AttemptStore on Redis. The now its methods are given counts only
// with Options.CallerClock; otherwise the time is Redis's.
type Budgets struct {
	c      *redis.Client
	where  string // the address, for messages; never the password
	prefix string
	idle   time.Duration
	// callerClock: Options.CallerClock.
	callerClock bool

	evicts atomic.Pointer[string] // Warning's answer as the last Ping found it
}

var _ store.AttemptStore = (*Budgets)(nil)

// New connects to the Redis that rawURL names (redis://[user:pass@]host:port/db, or
// rediss:// for TLS; go-redis's query options such as dial_timeout apply). It does not wait
// for Redis: go-redis dials on first use and again after every failure, so budgets come
// back by themselves when Redis does. Ping tells whether it answers.
func New(rawURL string, o Options) (*Budgets, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	// A reservation waits at most this long on a Redis that stopped answering; then the
	// verification fails closed instead of hanging.
	opts.DialTimeout = min(opts.DialTimeout, 2*time.Second)
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	// One retry covers a connection Redis closed while it sat idle; more would only hold a
	// refused verification longer. (A retried reservation can count twice: the safe side.
	// A retried give-back names its attempt, so it cannot give back twice.)
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 1
	}
	// One dial per attempt: go-redis would otherwise dial five times, 100 ms apart, so a
	// refused verification would take most of a second.
	opts.DialerRetries = 1
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = defaultIdleTTL
	}
	return &Budgets{c: redis.NewClient(opts), where: opts.Addr, prefix: o.Prefix, idle: o.IdleTTL, callerClock: o.CallerClock}, nil
}

// Ping reports whether Redis answers, and if not, why. It also reads Redis's eviction
// policy, which Warning reports.
func (b *Budgets) Ping(ctx context.Context) error {
	if err := b.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("Redis at %s does not answer: %w", b.where, err)
	}
	// INFO, not CONFIG GET: managed Redis services often refuse CONFIG. Unread, the last
	// answer stands.
	if info, err := b.c.Info(ctx, "memory").Result(); err == nil {
		msg := evictionWarning(b.where, info)
		b.evicts.Store(&msg)
	}
	return nil
}

// Warning is "" unless the last Ping found a Redis that evicts keys when it is full
// (maxmemory with a policy other than noeviction): it may then drop a back-off, a lock or
// an address's window whenever memory runs short (another tenant's cache, or many
// addresses), and the guessing it bounded starts over.
func (b *Budgets) Warning() string {
	if m := b.evicts.Load(); m != nil {
		return *m
	}
	return ""
}

// evictionWarning reads INFO memory's maxmemory and maxmemory_policy.
func evictionWarning(where, info string) string {
	var limit, policy string
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "maxmemory":
			limit = v
		case "maxmemory_policy":
			policy = v
		}
	}
	if limit == "" || limit == "0" || policy == "" || policy == "noeviction" {
		return ""
	}
	return fmt.Sprintf("Redis at %s evicts keys when full (maxmemory %s, maxmemory-policy %s): it can forget attempt budgets and locks, and guessing starts over; set maxmemory-policy noeviction (a full Redis then refuses verifications instead)", where, limit, policy)
}

// Close closes the connections.
func (b *Budgets) Close() error { return b.c.Close() }

// clockLua gives the time, Unix ms: Redis's, unless the caller's (Options.CallerClock) is
// given. Redis 5 and later replicate a script's effects, not the script, so reading TIME
// before writing is allowed.
const clockLua = `
local function clock(given)
  if given > 0 then return given end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// delayLua is store.Backoff.Delay in Lua, step for step.
const delayLua = `
local function delay(n, free, base, cap)
  if n < free then return 0 end
  local d, i = base, free
  while i < n and d < cap do d = d * 2; i = i + 1 end
  if d > cap then return cap end
  return d
end
`

// backoffLua reserves one attempt of a back-off budget: key; now, free, base, max,
// lockAfter (ms or counts), idle ms. It returns {allowed, count, locked, wait ms}.
const backoffLua = delayLua + `
local function backoff(key, now, free, base, cap, lock, idle)
  local exists = redis.call('EXISTS', key) == 1
  local count = tonumber(redis.call('HGET', key, 'n') or '0')
  local blocked = tonumber(redis.call('HGET', key, 'b') or '0')
  if exists then
    if count >= lock then return {0, count, 1, 0} end
    if blocked > now then return {0, count, 0, blocked - now} end
  end
  count = count + 1
  local d = delay(count, free, base, cap)
  blocked = 0
  if d > 0 then blocked = now + d end
  redis.call('HSET', key, 'n', string.format('%d', count), 'b', string.format('%d', blocked))
  if count >= lock then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, string.format('%d', d + idle))
  end
  return {1, count, 0, 0}
end
`

// windowLua reserves one attempt of a window budget, the log at key: now, period ms,
// limit, the attempt's id. An attempt counts while it is less than period old. It returns
// {allowed, count, wait ms}: a refusal waits until enough of the oldest attempts have left
// the window for one more.
const windowLua = `
local function window(key, now, period, limit, id)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - period))
  local count = redis.call('ZCARD', key)
  if count >= limit and count > 0 then
    local i = math.min(count - limit, count - 1) -- the attempt whose leaving makes room
    local nth = redis.call('ZRANGE', key, i, i, 'WITHSCORES')
    return {0, count, tonumber(nth[2]) + period - now}
  end
  redis.call('ZADD', key, string.format('%d', now), id)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', key, string.format('%d', tonumber(last[2]) + period - now))
  return {1, count + 1, 0}
end
`

// refundLua gives one attempt of a back-off budget back if there is one; it never
// creates the key.
const refundLua = `
local function refund(key)
  if tonumber(redis.call('HGET', key, 'n') or '0') > 0 then
    redis.call('HINCRBY', key, 'n', -1)
  end
end
`

var (
	// reserveBackoff: KEYS[1]; ARGV as backoff's, now 0 for Redis's clock.
	reserveBackoff = redis.NewScript(clockLua + backoffLua + `
return backoff(KEYS[1], clock(tonumber(ARGV[1])), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
`)
	// reserveWindow: KEYS[1], the log; ARGV as window's, now 0 for Redis's clock.
	reserveWindow = redis.NewScript(clockLua + windowLua + `
return window(KEYS[1], clock(tonumber(ARGV[1])), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
`)
	// refund: KEYS a key's log, then its hash. A window's attempt given back without its
	// id is its newest, which under concurrency may be another request's: the verifier gives
	// back through giveBack, with the id; this serves the store.AttemptStore contract.
	refund = redis.NewScript(refundLua + `
if redis.call('ZCARD', KEYS[1]) > 0 then
  redis.call('ZPOPMAX', KEYS[1])
else
  refund(KEYS[2])
end
return 0
`)
	// reservePair: KEYS window's log, back-off key; ARGV window's (now 0 for Redis's
	// clock), then back-off's after now.
	// The back-off is reserved only if the window allowed the attempt, and when it refuses,
	// the window's attempt is given back: what Limiter.Reserve does in three calls.
	// Returns window's reply, then back-off's ({0, 0, 0, 0} when not asked).
	reservePair = redis.NewScript(clockLua + windowLua + backoffLua + `
local now = clock(tonumber(ARGV[1]))
local w = window(KEYS[1], now, tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
if w[1] == 0 then return {w[1], w[2], w[3], 0, 0, 0, 0} end
local b = backoff(KEYS[2], now, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]))
if b[1] == 0 then redis.call('ZREM', KEYS[1], ARGV[4]) end
return {w[1], w[2], w[3], b[1], b[2], b[3], b[4]}
`)
	// giveBack: KEYS the log to take the attempt ARGV[1] out of, then the keys to reset.
	// Run twice (go-redis retries a command whose reply was lost), it changes nothing more.
	giveBack = redis.NewScript(`
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 0
`)
)

func (b *Budgets) ReserveBackoff(ctx context.Context, key string, now time.Time, p store.Backoff) (store.Decision, error) {
	r, err := run(ctx, b.c, reserveBackoff, []string{b.prefix + key}, b.backoffArgs(now, p)...)
	if err != nil {
		return store.Decision{}, fmt.Errorf("reserve attempt: %w", b.explain(err))
	}
	return backoffDecision(r), nil
}

// clock is the now a script is given: 0, for Redis's own clock, unless Options.CallerClock.
func (b *Budgets) clock(now time.Time) int64 {
	if b.callerClock {
		return now.UnixMilli()
	}
	return 0
}

func (b *Budgets) backoffArgs(now time.Time, p store.Backoff) []any {
	return []any{b.clock(now), p.Free, p.Base.Milliseconds(), p.Max.Milliseconds(), p.LockAfter, b.idle.Milliseconds()}
}

// backoffDecision reads backoff's reply {allowed, count, locked, wait ms}.
func backoffDecision(r []int64) store.Decision {
	allowed, count, locked, wait := r[0] == 1, int(r[1]), r[2] == 1, r[3]
	switch {
	case allowed:
		return store.Decision{Allowed: true, Count: count}
	case locked:
		return store.Decision{Count: count, Locked: true}
	}
	return store.Decision{Count: count, RetryAfter: time.Duration(wait) * time.Millisecond}
}

func (b *Budgets) ReserveWindow(ctx context.Context, key string, now time.Time, w store.Window) (store.Decision, error) {
	id := attemptID()
	r, err := run(ctx, b.c, reserveWindow, []string{b.log(key)}, b.clock(now), w.Period.Milliseconds(), w.Limit, id)
	if err != nil {
		return store.Decision{}, fmt.Errorf("reserve window: %w", b.explain(err))
	}
	return windowDecision(r, id), nil
}

// log is the key of the window budget key.
func (b *Budgets) log(key string) string { return b.prefix + "log:" + key }

// attemptID names an attempt in a window's log: random, so attempts at the same
// millisecond are distinct. A give-back names the attempt it takes back.
func attemptID() string {
	var id [8]byte
	rand.Read(id[:])
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// windowDecision reads window's reply {allowed, count, wait ms} to reserving attempt id.
func windowDecision(r []int64, id string) store.Decision {
	if r[0] == 1 {
		return store.Decision{Allowed: true, Count: int(r[1]), Attempt: id}
	}
	return store.Decision{Count: int(r[1]), RetryAfter: time.Duration(r[2]) * time.Millisecond}
}

// ReservePair takes an attempt from a window budget and, if it allows it, from a back-off
// budget, giving the window's back when the back-off refuses: ReserveWindow,
// ReserveBackoff and RefundAttempt in one round trip. backoff is zero when window refused.
func (b *Budgets) ReservePair(ctx context.Context, windowKey string, w store.Window, backoffKey string, p store.Backoff, now time.Time) (window, backoff store.Decision, err error) {
	id := attemptID()
	args := append([]any{b.clock(now), w.Period.Milliseconds(), w.Limit, id}, b.backoffArgs(now, p)[1:]...)
	r, err := run(ctx, b.c, reservePair, []string{b.log(windowKey), b.prefix + backoffKey}, args...)
	if err != nil {
		return store.Decision{}, store.Decision{}, fmt.Errorf("reserve attempt: %w", b.explain(err))
	}
	if len(r) != 7 {
		return store.Decision{}, store.Decision{}, fmt.Errorf("reserve attempt: %w", b.explain(fmt.Errorf("script replied %d values", len(r))))
	}
	if window = windowDecision(r[:3], id); !window.Allowed {
		return window, store.Decision{}, nil
	}
	return window, backoffDecision(r[3:]), nil
}

// GiveBack takes attempt (a window Decision's Attempt; "" for none) out of refundKey's
// window and resets resetKeys: a success's RefundAttempt and ResetAttempts in one round
// trip. Unlike RefundAttempt, it can run twice, as go-redis's retry does when a reply is
// lost, and still give back the one attempt.
func (b *Budgets) GiveBack(ctx context.Context, refundKey, attempt string, resetKeys ...string) error {
	keys := []string{b.log(refundKey)}
	for _, k := range resetKeys {
		keys = append(keys, b.prefix+k)
	}
	if _, err := run(ctx, b.c, giveBack, keys, attempt); err != nil {
		return fmt.Errorf("give back attempt: %w", b.explain(err))
	}
	return nil
}

func (b *Budgets) ResetAttempts(ctx context.Context, key string) error {
	if err := b.c.Del(ctx, b.prefix+key, b.log(key)).Err(); err != nil {
		return fmt.Errorf("reset attempts: %w", b.explain(err))
	}
	return nil
}

func (b *Budgets) RefundAttempt(ctx context.Context, key string) error {
	if _, err := run(ctx, b.c, refund, []string{b.log(key), b.prefix + key}); err != nil {
		return fmt.Errorf("refund attempt: %w", b.explain(err))
	}
	return nil
}

// explain names the Redis in an error, so a log line says which one is missing.
func (b *Budgets) explain(err error) error { return fmt.Errorf("redis at %s: %w", b.where, err) }

// run runs a script on keys and reads its reply as integers.
func run(ctx context.Context, c *redis.Client, s *redis.Script, keys []string, args ...any) ([]int64, error) {
	v, err := s.Run(ctx, c, keys, args...).Result()
	if err != nil {
		return nil, err
	}
	if n, ok := v.(int64); ok { // refund and giveBack answer one integer
		return []int64{n}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected script reply %T", v)
	}
	out := make([]int64, len(list))
	for i, x := range list {
		n, ok := x.(int64)
		if !ok {
			return nil, errors.New("unexpected script reply element " + strconv.Quote(fmt.Sprint(x)))
		}
		out[i] = n
	}
	return out, nil
}
