// Package redisbudget keeps attempt budgets (store.AttemptStore) in Redis, so several
// verifier instances share them without loading the database with short-lived counters. It
// is the only importer of go-redis.
//
// Every operation is one Lua script (EVALSHA, falling back to EVAL after a Redis restart
// empties the script cache), so a reservation is atomic across instances exactly as the SQL
// upsert of sqlstore/limits.go is, with the same semantics. A key is a hash under the
// configured prefix: n (the count), b (blocked until, Unix ms) for back-off budgets, w (the
// window's start, Unix ms) for window budgets.
package redisbudget

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	// ResetAttempts unlocks it. Window budgets expire when their window ends. Default 30 days.
	IdleTTL time.Duration
}

const (
	defaultPrefix  = "twofold:"
	defaultIdleTTL = 30 * 24 * time.Hour
)

// Budgets is a store.AttemptStore on Redis.
type Budgets struct {
	c      *redis.Client
	where  string // the address, for messages; never the password
	prefix string
	idle   time.Duration
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
	// refused verification longer. (A retried reservation can count twice: the safe side.)
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 1
	}
	// One dial per attempt: go-redis would otherwise dial five times, 100 ms apart, so a
	// refused verification would take most of a second.
	opts.DialerRetries = 1
	if o.Prefix == "" {
		o.Prefix = defaultPrefix
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = defaultIdleTTL
	}
	return &Budgets{c: redis.NewClient(opts), where: opts.Addr, prefix: o.Prefix, idle: o.IdleTTL}, nil
}

// Ping reports whether Redis answers, and if not, why.
func (b *Budgets) Ping(ctx context.Context) error {
	if err := b.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("Redis at %s does not answer: %w", b.where, err)
	}
	return nil
}

// Close closes the connections.
func (b *Budgets) Close() error { return b.c.Close() }

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

// reserveBackoff: KEYS[1]; ARGV now, free, base, max, lockAfter (ms or counts), idle ms.
// Returns {allowed, count, locked, blocked_until}.
var reserveBackoff = redis.NewScript(delayLua + `
local now, free, base, cap, lock, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local exists = redis.call('EXISTS', KEYS[1]) == 1
local count = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local blocked = tonumber(redis.call('HGET', KEYS[1], 'b') or '0')
if exists then
  if count >= lock then return {0, count, 1, blocked} end
  if blocked > now then return {0, count, 0, blocked} end
end
count = count + 1
local d = delay(count, free, base, cap)
blocked = 0
if d > 0 then blocked = now + d end
redis.call('HSET', KEYS[1], 'n', string.format('%d', count), 'b', string.format('%d', blocked))
if count >= lock then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], string.format('%d', d + idle))
end
return {1, count, 0, blocked}
`)

// reserveWindow: KEYS[1]; ARGV now, period ms, limit. Returns {allowed, count, start}.
var reserveWindow = redis.NewScript(`
local now, period, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local exists = redis.call('EXISTS', KEYS[1]) == 1
local count = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local start = tonumber(redis.call('HGET', KEYS[1], 'w') or '0')
if not exists or start + period <= now then
  count, start = 1, now
elseif count < limit then
  count = count + 1
else
  return {0, count, start}
end
redis.call('HSET', KEYS[1], 'n', string.format('%d', count), 'w', string.format('%d', start))
redis.call('PEXPIRE', KEYS[1], string.format('%d', start + period - now))
return {1, count, start}
`)

// refund: KEYS[1]. Gives one back if there is one; never creates the key.
var refund = redis.NewScript(`
if tonumber(redis.call('HGET', KEYS[1], 'n') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'n', -1)
end
return 0
`)

func (b *Budgets) ReserveBackoff(ctx context.Context, key string, now time.Time, p store.Backoff) (store.Decision, error) {
	r, err := run(ctx, b.c, reserveBackoff, b.prefix+key, now.UnixMilli(), p.Free, p.Base.Milliseconds(), p.Max.Milliseconds(), p.LockAfter, b.idle.Milliseconds())
	if err != nil {
		return store.Decision{}, fmt.Errorf("reserve attempt: %w", b.explain(err))
	}
	allowed, count, locked, blocked := r[0] == 1, int(r[1]), r[2] == 1, r[3]
	switch {
	case allowed:
		return store.Decision{Allowed: true, Count: count}, nil
	case locked:
		return store.Decision{Count: count, Locked: true}, nil
	}
	return store.Decision{Count: count, RetryAfter: time.UnixMilli(blocked).Sub(now)}, nil
}

func (b *Budgets) ReserveWindow(ctx context.Context, key string, now time.Time, w store.Window) (store.Decision, error) {
	at, period := now.UnixMilli(), w.Period.Milliseconds()
	r, err := run(ctx, b.c, reserveWindow, b.prefix+key, at, period, w.Limit)
	if err != nil {
		return store.Decision{}, fmt.Errorf("reserve window: %w", b.explain(err))
	}
	if r[0] == 1 {
		return store.Decision{Allowed: true, Count: int(r[1])}, nil
	}
	return store.Decision{Count: int(r[1]), RetryAfter: time.Duration(r[2]+period-at) * time.Millisecond}, nil
}

func (b *Budgets) ResetAttempts(ctx context.Context, key string) error {
	if err := b.c.Del(ctx, b.prefix+key).Err(); err != nil {
		return fmt.Errorf("reset attempts: %w", b.explain(err))
	}
	return nil
}

func (b *Budgets) RefundAttempt(ctx context.Context, key string) error {
	if _, err := run(ctx, b.c, refund, b.prefix+key); err != nil {
		return fmt.Errorf("refund attempt: %w", b.explain(err))
	}
	return nil
}

// explain names the Redis in an error, so a log line says which one is missing.
func (b *Budgets) explain(err error) error { return fmt.Errorf("redis at %s: %w", b.where, err) }

// run runs a script on one key and reads its reply as integers.
func run(ctx context.Context, c *redis.Client, s *redis.Script, key string, args ...any) ([]int64, error) {
	v, err := s.Run(ctx, c, []string{key}, args...).Result()
	if err != nil {
		return nil, err
	}
	if n, ok := v.(int64); ok { // refund answers one integer
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
