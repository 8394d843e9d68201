// Package checkpoint makes the audit trail tamper-evident beyond its hash chain. The chain
// alone is unkeyed: whoever can write the database can edit a record and recompute every
// hash after it, or cut records off the end. So the verifier periodically appends a
// checkpoint record that signs the head of the chain with the token signing key (sealed
// under the master key, which the database does not hold): a rewritten chain no longer
// matches its checkpoints, and a cut-off tail shows as a missing recent checkpoint.
package checkpoint

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// Kind is the audit record kind of a checkpoint.
const Kind = "audit_checkpoint"

// Signer signs and Verifier checks detached signatures; tokens.Issuer is both.
type Signer interface {
	SignDetached(ctx context.Context, msg []byte) (kid, alg string, sig []byte, err error)
}

// Verifier checks a detached signature by key id.
type Verifier interface {
	VerifyDetached(ctx context.Context, kid, alg string, msg, sig []byte) error
}

// message is what a checkpoint signs: the id and hash of the record it vouches for,
// which by the chain vouches for every record before it.
func message(id int64, hash []byte) []byte {
	return []byte("twofold-audit-checkpoint-v1\n" + strconv.FormatInt(id, 10) + "\n" + hex.EncodeToString(hash))
}

// claim is a checkpoint record's Detail, parsed.
type claim struct {
	ID       int64
	Hash     []byte
	KID, Alg string
	Sig      []byte
}

func (c claim) String() string {
	return fmt.Sprintf("v1 id=%d hash=%s kid=%s alg=%s sig=%s", c.ID, hex.EncodeToString(c.Hash), c.KID, c.Alg, base64.RawURLEncoding.EncodeToString(c.Sig))
}

func parseClaim(s string) (claim, error) {
	var c claim
	f := strings.Fields(s)
	if len(f) != 6 || f[0] != "v1" {
		return c, errors.New("not a v1 checkpoint")
	}
	kv := map[string]string{}
	for _, p := range f[1:] {
		k, v, _ := strings.Cut(p, "=")
		kv[k] = v
	}
	var err1, err2, err3 error
	c.ID, err1 = strconv.ParseInt(kv["id"], 10, 64)
	c.Hash, err2 = hex.DecodeString(kv["hash"])
	c.Sig, err3 = base64.RawURLEncoding.DecodeString(kv["sig"])
	c.KID, c.Alg = kv["kid"], kv["alg"]
	if err := errors.Join(err1, err2, err3); err != nil || c.KID == "" || c.Alg == "" {
		return c, errors.New("malformed checkpoint")
	}
	return c, nil
}

// Writer appends checkpoints: every Interval when records were added since the last one,
// and every Heartbeat regardless, so a trail whose end was cut off lacks a recent one.
type Writer struct {
	Store     store.AuditStore
	Signer    Signer
	Logger    *slog.Logger
	Now       func() time.Time
	Interval  time.Duration // 1 minute
	Heartbeat time.Duration // 1 hour
}

func (w *Writer) defaults() {
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	if w.Interval <= 0 {
		w.Interval = time.Minute
	}
	if w.Heartbeat <= 0 {
		w.Heartbeat = time.Hour
	}
}

// Run writes checkpoints until ctx ends.
func (w *Writer) Run(ctx context.Context) {
	w.defaults()
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := w.Tick(ctx); err != nil && ctx.Err() == nil {
			w.Logger.Warn("audit checkpoint failed", "err", err)
		}
	}
}

// Tick appends a checkpoint if one is due and reports whether it did. Several instances
// may run it: one that sees a checkpoint at the end of the trail writes none. It reads the
// trail's last record only: reading every record since the last tick (half a million a
// minute at full load) stalled the verifier for seconds.
func (w *Writer) Tick(ctx context.Context) (bool, error) {
	return w.write(ctx, false)
}

// Append appends a checkpoint of the trail's head whether one is due or not, and reports
// whether it did (not on an empty trail). After a signing key is withdrawn, the
// checkpoints it signed vouch for nothing; one signed now, by the key that replaced it,
// vouches for the whole chain again.
func (w *Writer) Append(ctx context.Context) (bool, error) {
	return w.write(ctx, true)
}

func (w *Writer) write(ctx context.Context, always bool) (bool, error) {
	w.defaults()
	var head store.AuditRecord
	err := w.Store.AuditRecords(ctx, store.AuditFilter{Newest: 1}, func(r store.AuditRecord) error {
		head = r
		return nil
	})
	if err != nil {
		return false, err
	}
	now := w.Now()
	if head.ID == 0 || (!always && head.Kind == Kind && now.Sub(head.At) < w.Heartbeat) {
		return false, nil
	}
	kid, alg, sig, err := w.Signer.SignDetached(ctx, message(head.ID, head.Hash))
	if err != nil {
		return false, err
	}
	c := claim{ID: head.ID, Hash: head.Hash, KID: kid, Alg: alg, Sig: sig}
	r, err := w.Store.AppendAudit(ctx, store.AuditRecord{At: now.UTC(), Kind: Kind, Outcome: "ok", Detail: c.String()}, false)
	if err != nil {
		return false, err
	}
	// Logged too: a log shipped off the host is a witness the database cannot rewrite.
	w.Logger.Info("audit checkpoint", "record", r.ID, "covers", c.ID, "hash", hex.EncodeToString(c.Hash), "kid", kid)
	return true, nil
}

// Report is `twofold audit verify`'s answer: the chain's, plus what the checkpoints say.
type Report struct {
	audit.Report
	Checkpoints int `json:"checkpoints"`
	// LastCheckpoint is the newest checkpoint's record; Unsealed counts the records after
	// the record it covers (not yet vouched for by a signature).
	LastCheckpoint *audit.Entry `json:"last_checkpoint,omitempty"`
	Unsealed       int64        `json:"unsealed"`
	// Withdrawn counts checkpoints signed by a key since withdrawn (`keys withdraw-signing`):
	// whoever leaked it could have made them, so they vouch for nothing; the next
	// checkpoint of another key vouches for the chain before it again.
	Withdrawn int `json:"withdrawn_key_checkpoints,omitempty"`
}

// reach is how far back a checkpoint may vouch for: a writer signs the head it just read,
// so only the records appended meanwhile lie between.
const reach = 4096

// Verify walks the chain (audit.Verify) and then checks every checkpoint: its signature,
// and that the record it vouches for still has the hash it signed. With maxAge > 0, a
// trail whose newest checkpoint is older than maxAge at now is reported as possibly cut
// off at its end.
func Verify(ctx context.Context, st store.AuditStore, v Verifier, now time.Time, maxAge time.Duration) (Report, error) {
	chain, err := audit.Verify(ctx, st)
	if err != nil || !chain.OK {
		return Report{Report: chain}, err
	}
	rep := Report{Report: chain}
	hashes := map[int64][]byte{}
	var lastAt time.Time
	var lastCovers, lastID int64
	errStop := errors.New("stop")
	err = st.AuditRecords(ctx, store.AuditFilter{}, func(r store.AuditRecord) error {
		lastID = r.ID
		hashes[r.ID] = r.Hash
		delete(hashes, r.ID-reach)
		if r.Kind != Kind {
			return nil
		}
		e := audit.EntryOf(r)
		broken := func(reason string) error {
			rep.Broken = &audit.Break{ID: r.ID, Reason: reason, Record: &e}
			return errStop
		}
		c, err := parseClaim(r.Detail)
		if err != nil {
			return broken("checkpoint record is unreadable: " + err.Error())
		}
		if c.ID >= r.ID {
			return broken(fmt.Sprintf("checkpoint vouches for record %d, which is not before it", c.ID))
		}
		h, ok := hashes[c.ID]
		if !ok {
			return broken(fmt.Sprintf("checkpoint vouches for record %d, too far before it", c.ID))
		}
		if err := v.VerifyDetached(ctx, c.KID, c.Alg, message(c.ID, c.Hash), c.Sig); errors.Is(err, store.ErrWithdrawn) {
			rep.Withdrawn++
			return nil
		} else if err != nil {
			return broken("checkpoint signature does not verify (forged or altered): " + err.Error())
		}
		if hex.EncodeToString(h) != hex.EncodeToString(c.Hash) {
			return broken(fmt.Sprintf("record %d no longer has the hash this checkpoint signed: the trail up to record %d was rewritten", c.ID, c.ID))
		}
		rep.Checkpoints++
		rep.LastCheckpoint, lastAt, lastCovers = &e, r.At, c.ID
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	rep.Unsealed = lastID - lastCovers
	if rep.Broken == nil && maxAge > 0 && (rep.LastCheckpoint == nil || now.Sub(lastAt) > maxAge) {
		since := "ever"
		if rep.LastCheckpoint != nil {
			since = "since " + lastAt.UTC().Format(time.RFC3339)
		}
		rep.Broken = &audit.Break{ID: lastID + 1, Reason: fmt.Sprintf("no signed checkpoint %s (expected one within %s): records after record %d may have been cut off", since, maxAge, lastCovers)}
	}
	rep.OK = rep.Broken == nil
	return rep, nil
}
