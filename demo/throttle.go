package main

import (
	"sync"
	"time"
)

// throttle counts failed password attempts per name and per client address in a sliding
// window; past the limit, sign-in is refused without checking the password. The second
// factor has the verifier's own budgets; this guards the first.
type throttle struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	fails  map[string][]time.Time
}

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, fails: map[string][]time.Time{}}
}

// blocked reports whether any of keys used up its failures.
func (t *throttle) blocked(now time.Time, keys ...string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if len(t.recent(k, now)) >= t.limit {
			return true
		}
	}
	return false
}

func (t *throttle) fail(now time.Time, keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.fails) > 100_000 { // bounded: forget everyone rather than grow without end
		clear(t.fails)
	}
	for _, k := range keys {
		t.fails[k] = append(t.recent(k, now), now)
	}
}

func (t *throttle) recent(k string, now time.Time) []time.Time {
	list := t.fails[k]
	i := 0
	for i < len(list) && now.Sub(list[i]) >= t.window {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(t.fails, k)
		return nil
	}
	t.fails[k] = list
	return list
}
