package client

import (
	"context"
	"sync"
	"time"
)

// ReplayCache remembers token ids. Seen records jti until the given time and reports
// whether it was already recorded; it must be atomic (of two concurrent calls with one jti,
// one returns false). In Redis it is SET key 1 NX PXAT until.
type ReplayCache interface {
	Seen(ctx context.Context, jti string, until time.Time) (bool, error)
}

// MemoryReplayCache is a ReplayCache for one process.
type MemoryReplayCache struct {
	mu    sync.Mutex
	until map[string]time.Time
	now   func() time.Time
	swept time.Time
}

// NewMemoryReplayCache returns an empty in-memory cache.
func NewMemoryReplayCache() *MemoryReplayCache {
	return &MemoryReplayCache{until: map[string]time.Time{}, now: time.Now}
}

// Seen implements ReplayCache. Expired entries are dropped at most once a minute.
func (m *MemoryReplayCache) Seen(_ context.Context, jti string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Sub(m.swept) >= time.Minute {
		for k, u := range m.until {
			if now.After(u) {
				delete(m.until, k)
			}
		}
		m.swept = now
	}
	if u, ok := m.until[jti]; ok && !now.After(u) {
		return true, nil
	}
	m.until[jti] = until
	return false, nil
}
