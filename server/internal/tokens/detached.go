package tokens

import (
	"context"
	"fmt"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// SignDetached signs msg with the active key of DefaultAlg: what audit checkpoints are
// signed with, so the trail is vouched for by the key relying parties already trust.
func (i *Issuer) SignDetached(ctx context.Context, msg []byte) (kid, alg string, sig []byte, err error) {
	k, err := i.active(ctx, DefaultAlg)
	if err != nil {
		return "", "", nil, fmt.Errorf("sign: %w", err)
	}
	sig, err = methods[k.alg].Sign(string(msg), k.priv)
	if err != nil {
		return "", "", nil, fmt.Errorf("sign: %w", err)
	}
	return k.kid, k.alg, sig, nil
}

// VerifyDetached checks a SignDetached signature. Any key ever stored counts, retired
// ones too: a checkpoint outlives the key that signed it. A key that does not open under
// the master key (one slipped into the store) does not, and a withdrawn one answers
// store.ErrWithdrawn: whoever leaked it could have signed anything.
func (i *Issuer) VerifyDetached(ctx context.Context, kid, alg string, msg, sig []byte) error {
	recs, err := i.ks.SigningKeys(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	for _, r := range recs {
		if r.KID != kid {
			continue
		}
		if r.Withdrawn() {
			return fmt.Errorf("%w: key %s: %w", ErrInvalid, kid, store.ErrWithdrawn)
		}
		if r.Alg != alg {
			return fmt.Errorf("%w: key %s is %s, not %s", ErrInvalid, kid, r.Alg, alg)
		}
		priv, err := i.open(r)
		if err != nil {
			return fmt.Errorf("%w: key %s: %w", ErrInvalid, kid, err)
		}
		if err := methods[alg].Verify(string(msg), sig, priv.Public()); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return nil
	}
	return fmt.Errorf("%w: no signing key %q", ErrInvalid, kid)
}
