package serve

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/server/internal/seal"
)

// RotateMaster makes a new primary master key (in the key file; with TWOFOLD_MASTER_KEY the
// operator has already put the new key there and the old one in TWOFOLD_MASTER_KEY_PREVIOUS,
// or --master-key-command the operator has already made the new key the first one given)
// and re-seals every stored secret under it. Running verifiers keep serving: they open
// values under either key and pick up the new key (from the key file, or by running their
// --master-key-command again) when they meet a value sealed with it.
// Each value is swapped by compare-and-set, so a concurrent change is never overwritten.
//
// It first checks the verifiers seen running (each records the master keys it holds): one
// that lacks the new key and cannot learn it (its keys came from its environment, or from
// a key file other than this one) would answer 500 for every user whose secret is
// re-sealed, so the rotation is refused with a *KeyNotHeldError unless force.
func RotateMaster(ctx context.Context, cfg Config, settle time.Duration, force bool) (resealed int, err error) {
	cfg.defaults()
	env, err := Open(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer env.Close()
	src, _ := cfg.KeySource() // Open has taken it already
	file, fromFile := src.(seal.FileSource)
	if !force {
		newKey, keyFile := "", ""
		if fromFile {
			keyFile = follows(cfg)
		} else { // the key to rotate to is this process's primary already
			id := env.Ring.PrimaryID()
			newKey = hex.EncodeToString(id[:])
		}
		if err := checkInstances(ctx, env.Store, cfg.Now(), newKey, keyFile); err != nil {
			return 0, err
		}
	}
	if fromFile {
		// The keyring reads the file again when asked for its primary.
		if _, err := seal.RotateFile(file.Path); err != nil {
			return 0, fmt.Errorf("rotate master key file: %w", err)
		}
	}
	var damaged *ResealError
	if resealed, err = env.Reseal(ctx); err != nil && !errors.As(err, &damaged) {
		return resealed, err
	}
	// A request that sealed under the old key just before the key file changed may commit
	// after the first pass read its row. Give such requests time to finish, then pass again
	// until a pass finds nothing left. The old key stays in the key file, so a straggler
	// never breaks anything; the next rotation re-seals it.
	select {
	case <-ctx.Done():
		return resealed, ctx.Err()
	case <-time.After(settle):
	}
	for range 10 {
		n, perr := env.Reseal(ctx)
		resealed += n
		if perr != nil && !errors.As(perr, &damaged) {
			return resealed, perr
		}
		err = perr // the newest pass's account of the values it could not open
		if n == 0 {
			break
		}
	}
	return resealed, err
}

// ResealError names the stored values a re-seal pass could not open (damaged, or under a
// key the keyring lacks). Every other value was re-sealed; these stay as they were, under
// their old key, which must therefore be kept.
type ResealError struct {
	Failed []string // "kind id: why"
}

func (e *ResealError) Error() string {
	shown := e.Failed[:min(len(e.Failed), 5)]
	more := ""
	if len(e.Failed) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(e.Failed)-len(shown))
	}
	return fmt.Sprintf("%d sealed values could not be opened and stay under their old master key (keep it until they are repaired): %s%s",
		len(e.Failed), strings.Join(shown, "; "), more)
}

// Reseal re-seals every stored value that is not under the primary master key. Values it
// cannot open are left as they are and named in a *ResealError.
func (e *Env) Reseal(ctx context.Context) (int, error) {
	values, err := e.Store.SealedValues(ctx)
	if err != nil {
		return 0, fmt.Errorf("reseal: %w", err)
	}
	n := 0
	var failed []string
	for _, v := range values {
		if !e.Ring.NeedsReseal(v.Blob) {
			continue
		}
		plain, err := e.Ring.Open(v.Blob, v.AAD())
		if err != nil {
			// One damaged value must not keep every other from the new key.
			failed = append(failed, fmt.Sprintf("%s %s: %v", v.Kind, v.ID, err))
			continue
		}
		fresh, err := e.Ring.Seal(plain, v.AAD())
		clear(plain)
		if err != nil {
			return n, fmt.Errorf("reseal %s %s: %w", v.Kind, v.ID, err)
		}
		ok, err := e.Store.ReplaceSealed(ctx, v.Kind, v.ID, v.Blob, fresh)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	if len(failed) > 0 {
		return n, &ResealError{Failed: failed}
	}
	return n, nil
}

// EnvConfig fills the master key settings from the environment.
func (c *Config) EnvConfig() {
	c.MasterKey = os.Getenv("TWOFOLD_MASTER_KEY")
	c.MasterKeyPrevious = os.Getenv("TWOFOLD_MASTER_KEY_PREVIOUS")
}
