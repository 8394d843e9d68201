package serve

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/server/internal/limit/redisbudget"
	"github.com/twofold-dev/twofold/server/internal/seal"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// A serving verifier says every instanceEvery which master keys it holds; rotate-master
// counts it as running while it said so within instanceLive. Both stay far below
// store.InstanceRetention, after which the sweep deletes a silent verifier's record.
const (
	instanceEvery = 20 * time.Second
	instanceLive  = time.Minute
)

// runningAt are the verifiers that said within instanceLive before now that they serve.
func runningAt(ctx context.Context, st store.Store, now time.Time) ([]store.Instance, error) {
	running, err := st.Instances(ctx, now.Add(-instanceLive))
	if err != nil {
		return nil, fmt.Errorf("running verifiers: %w", err)
	}
	return running, nil
}

// follows says how a verifier configured by cfg learns a master key added after it
// started (store.Instance.Follows).
func follows(cfg Config) string {
	switch src, _ := cfg.KeySource(); src := src.(type) {
	case seal.CommandSource:
		return "command"
	case seal.FileSource:
		host, _ := os.Hostname()
		path, err := filepath.Abs(src.Path)
		if err != nil {
			path = src.Path
		}
		return "file " + host + ":" + path
	}
	return "" // its environment: it cannot learn a key while it runs
}

// budgetsOf says where a verifier configured by cfg keeps attempt budgets
// (store.Instance.Budgets).
func budgetsOf(cfg Config) string {
	if cfg.Redis == "" {
		return ""
	}
	return "redis " + cmp.Or(cfg.RedisPrefix, redisbudget.DefaultPrefix)
}

// SameBudgets refuses an admin command that clears attempt budgets (users reset) where
// running verifiers do not keep them: it would say done while the user's locks stay.
func SameBudgets(ctx context.Context, st store.Store, cfg Config, now time.Time) error {
	running, err := runningAt(ctx, st, now)
	if err != nil {
		return err
	}
	where := func(b string) string {
		if b == "" {
			return "in the store"
		}
		return "in Redis under the prefix " + strings.TrimPrefix(b, "redis ")
	}
	mine := budgetsOf(cfg)
	for _, in := range running {
		if in.Budgets != mine {
			return fmt.Errorf("the running verifier %s keeps attempt budgets %s, and this command would clear them %s, leaving the user's locks in place: give it the verifiers' --redis and --redis-prefix",
				in.ID, where(in.Budgets), where(mine))
		}
	}
	return nil
}

// instance is this serving verifier's record in the store.
type instance struct {
	env *Env
	rec store.Instance
	log *slog.Logger
	now func() time.Time
}

func newInstance(env *Env, cfg Config) *instance {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	rand.Read(b)
	return &instance{env: env, log: cfg.Logger, now: cfg.Now,
		rec: store.Instance{ID: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b)), Host: host, Follows: follows(cfg), Budgets: budgetsOf(cfg)}}
}

// put records the keys the instance holds now.
func (in *instance) put(ctx context.Context) error {
	in.rec.KeyIDs = hexIDs(in.env.Ring.IDs())
	in.rec.SeenAt = in.now()
	return in.env.Store.PutInstance(ctx, in.rec)
}

// keepFresh refreshes the record until ctx ends.
func (in *instance) keepFresh(ctx context.Context) {
	t := time.NewTicker(instanceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := in.put(ctx); err != nil && ctx.Err() == nil {
				in.log.Warn("could not record this instance's master keys", "err", err)
			}
		}
	}
}

// remove forgets the instance as it stops.
func (in *instance) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := in.env.Store.DeleteInstance(ctx, in.rec.ID); err != nil {
		in.log.Warn("could not remove this instance's record", "err", err)
	}
}

func hexIDs(ids [][8]byte) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = hex.EncodeToString(id[:])
	}
	return out
}

// KeyNotHeldError is a rotation refused: re-sealing under the new master key would leave
// these running instances unable to open what it re-sealed.
type KeyNotHeldError struct {
	Key       string
	Instances []store.Instance
}

func (e *KeyNotHeldError) Error() string {
	var names []string
	for _, in := range e.Instances {
		names = append(names, fmt.Sprintf("%s (host %s)", in.ID, in.Host))
	}
	return fmt.Sprintf("the new master key %s is not held by %d running verifier(s), which could not open any secret re-sealed under it: %s. "+
		"Restart each with the new key added (TWOFOLD_MASTER_KEY_PREVIOUS, or its key file or command) and run this again, or pass --force",
		cmp.Or(e.Key, "(the key file's next one)"), len(e.Instances), strings.Join(names, ", "))
}

// checkInstances refuses a rotation to the master key newKey (hex; "" for a new key the
// key file at keyFile is about to get) when a verifier seen running lacks it and cannot
// learn it: one whose keys came from its environment, or from another key file.
func checkInstances(ctx context.Context, st store.Store, now time.Time, newKey, keyFile string) error {
	running, err := runningAt(ctx, st, now)
	if err != nil {
		return err
	}
	var lacking []store.Instance
	for _, in := range running {
		learns := in.Follows == "command" || (keyFile != "" && in.Follows == keyFile)
		if !learns && (newKey == "" || !slices.Contains(in.KeyIDs, newKey)) {
			lacking = append(lacking, in)
		}
	}
	if len(lacking) > 0 {
		return &KeyNotHeldError{Key: newKey, Instances: lacking}
	}
	return nil
}
