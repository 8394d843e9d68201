package checkpoint

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// memTrail is an audit trail in memory that tests can tamper with.
type memTrail struct {
	store.AuditStore
	recs []store.AuditRecord
	read int // records handed out by AuditRecords
}

func (m *memTrail) AppendAudit(_ context.Context, r store.AuditRecord, _ bool) (store.AuditRecord, error) {
	r.ID, r.PrevHash = int64(len(m.recs))+1, []byte{}
	if len(m.recs) > 0 {
		r.PrevHash = m.recs[len(m.recs)-1].Hash
	}
	r.Hash = r.Digest()
	m.recs = append(m.recs, r)
	return r, nil
}

func (m *memTrail) AuditRecords(_ context.Context, f store.AuditFilter, fn func(store.AuditRecord) error) error {
	recs := slices.Clone(m.recs)
	if f.Newest > 0 {
		slices.Reverse(recs)
		recs = recs[:min(f.Newest, len(recs))]
	}
	for _, r := range recs {
		if r.ID > f.AfterID {
			m.read++
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// rehash recomputes every hash from record i on, as a forger with database access would.
func (m *memTrail) rehash(from int) {
	for i := from; i < len(m.recs); i++ {
		m.recs[i].PrevHash = []byte{}
		if i > 0 {
			m.recs[i].PrevHash = m.recs[i-1].Hash
		}
		m.recs[i].ID = int64(i + 1)
		m.recs[i].Hash = m.recs[i].Digest()
	}
}

type edKey struct {
	priv ed25519.PrivateKey
}

func (k edKey) SignDetached(_ context.Context, msg []byte) (string, string, []byte, error) {
	return "k1", "EdDSA", ed25519.Sign(k.priv, msg), nil
}

func (k edKey) VerifyDetached(_ context.Context, kid, alg string, msg, sig []byte) error {
	if kid != "k1" || alg != "EdDSA" || !ed25519.Verify(k.priv.Public().(ed25519.PublicKey), msg, sig) {
		return errors.New("bad signature")
	}
	return nil
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func event(m *memTrail, clk *fakeClock, user string) {
	m.AppendAudit(context.Background(), store.AuditRecord{At: clk.t, Kind: "failed", User: user, Outcome: "refused"}, false)
}

func TestWriter_CheckpointsNewRecordsAndHeartbeats(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	m, clk := &memTrail{}, &fakeClock{time.Unix(2e9, 0)}
	w := &Writer{Store: m, Signer: edKey{priv}, Now: clk.Now, Heartbeat: time.Hour}
	for _, step := range []struct {
		name  string
		do    func()
		wrote bool
	}{
		{"empty trail", func() {}, false},
		{"new records", func() { event(m, clk, "a"); event(m, clk, "b") }, true},
		{"nothing new", func() { clk.t = clk.t.Add(time.Minute) }, false},
		{"one more record", func() { event(m, clk, "c") }, true},
		{"an hour of silence: heartbeat", func() { clk.t = clk.t.Add(61 * time.Minute) }, true},
		{"right after the heartbeat", func() { clk.t = clk.t.Add(time.Minute) }, false},
	} {
		step.do()
		wrote, err := w.Tick(ctx)
		if err != nil || wrote != step.wrote {
			t.Fatalf("%s: wrote %v err %v, want %v", step.name, wrote, err, step.wrote)
		}
	}
	// Another instance on the same trail sees the checkpoint at its end and writes none.
	other := &Writer{Store: m, Signer: edKey{priv}, Now: clk.Now}
	if wrote, _ := other.Tick(ctx); wrote {
		t.Fatal("a second instance checkpointed a trail that ends in a checkpoint")
	}
}

// Append is for when the checkpoints already there vouch for nothing (their key was
// withdrawn): it signs the head even when the trail ends in a fresh checkpoint.
func TestWriter_Append_WritesWhenNoneIsDue(t *testing.T) {
	ctx := t.Context()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	m, clk := &memTrail{}, &fakeClock{time.Unix(2e9, 0)}
	w := &Writer{Store: m, Signer: edKey{priv}, Now: clk.Now}
	if wrote, err := w.Append(ctx); err != nil || wrote {
		t.Fatalf("empty trail: wrote %v, err %v; want nothing to vouch for", wrote, err)
	}
	event(m, clk, "a")
	if wrote, err := w.Tick(ctx); err != nil || !wrote {
		t.Fatalf("Tick: wrote %v, err %v", wrote, err)
	}
	if wrote, err := w.Append(ctx); err != nil || !wrote {
		t.Fatalf("Append right after a checkpoint: wrote %v, err %v; want a new one", wrote, err)
	}
	if c, err := parseClaim(m.recs[len(m.recs)-1].Detail); err != nil || c.ID != 2 {
		t.Errorf("appended checkpoint covers record %d (err %v), want the trail's head, 2", c.ID, err)
	}
}

func TestWriter_LongTrail_ReadsOnlyItsLastRecord(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	m, clk := &memTrail{}, &fakeClock{time.Unix(2e9, 0)}
	w := &Writer{Store: m, Signer: edKey{priv}, Now: clk.Now}
	for range 1000 {
		event(m, clk, "a")
	}
	if wrote, err := w.Tick(t.Context()); err != nil || !wrote {
		t.Fatalf("Tick: wrote %v, err %v", wrote, err)
	}
	if m.read != 1 {
		t.Errorf("Tick read %d records of a trail of 1000, want 1", m.read)
	}
	if c, err := parseClaim(m.recs[len(m.recs)-1].Detail); err != nil || c.ID != 1000 {
		t.Errorf("checkpoint covers record %d (err %v), want the last one, 1000", c.ID, err)
	}
}

func TestVerify_RewrittenForgedOrCutOffTrail_Named(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	build := func() (*memTrail, *fakeClock) {
		m, clk := &memTrail{}, &fakeClock{time.Unix(2e9, 0)}
		w := &Writer{Store: m, Signer: edKey{priv}, Now: clk.Now}
		for i := range 3 { // records 1-2, checkpoint 3; 4-5, checkpoint 6; 7-8, checkpoint 9; 10
			event(m, clk, "u")
			event(m, clk, "v")
			clk.t = clk.t.Add(time.Minute)
			if _, err := w.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			_ = i
		}
		event(m, clk, "w")
		return m, clk
	}
	for _, tc := range []struct {
		name       string
		tamper     func(m *memTrail)
		maxAge     time.Duration
		wantBroken int64 // 0: intact
		reason     string
	}{
		{"intact", func(*memTrail) {}, 0, 0, ""},
		{"intact, recent checkpoint required", func(*memTrail) {}, time.Hour, 0, ""},
		{"record edited, every hash after it recomputed", func(m *memTrail) { m.recs[3].User = "mallory"; m.rehash(3) }, 0, 6, "rewritten"},
		{"record deleted, the rest renumbered and rehashed", func(m *memTrail) { m.recs = append(m.recs[:1], m.recs[2:]...); m.rehash(1) }, 0, 2, "not before it"},
		{"checkpoint re-signed by a stranger", func(m *memTrail) {
			m.recs[5].Detail = strings.Replace(m.recs[5].Detail, "sig=", "sig=AA", 1)
			m.rehash(5)
		}, 0, 6, "signature"},
		{"checkpoint replaced by a stranger's", func(m *memTrail) {
			kid, alg, sig, _ := edKey{stranger}.SignDetached(ctx, message(5, m.recs[4].Hash))
			m.recs[5].Detail = claim{ID: 5, Hash: m.recs[4].Hash, KID: kid, Alg: alg, Sig: sig}.String()
			m.rehash(5)
		}, 0, 6, "signature"},
		{"tail cut off, checkpoints with it", func(m *memTrail) { m.recs = m.recs[:5] }, time.Hour, 6, "cut off"},
		{"chain edit without rehash: the chain names it", func(m *memTrail) { m.recs[6].IP = "1.2.3.4" }, 0, 7, "edited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, clk := build()
			tc.tamper(m)
			if tc.name == "tail cut off, checkpoints with it" {
				clk.t = clk.t.Add(2 * time.Hour) // the verifier would have checkpointed since
			}
			rep, err := Verify(ctx, m, edKey{priv}, clk.t, tc.maxAge)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantBroken == 0 {
				if !rep.OK || rep.Checkpoints != 3 || rep.Unsealed != 2 {
					t.Fatalf("intact trail: %+v", rep)
				}
				return
			}
			if rep.OK || rep.Broken.ID != tc.wantBroken || !strings.Contains(rep.Broken.Reason, tc.reason) {
				t.Fatalf("report %+v broken %+v, want record %d (%q)", rep, rep.Broken, tc.wantBroken, tc.reason)
			}
		})
	}
}

// withdrawn is a Verifier for which the signing key was withdrawn.
type withdrawn struct{}

func (withdrawn) VerifyDetached(context.Context, string, string, []byte, []byte) error {
	return fmt.Errorf("key k1: %w", store.ErrWithdrawn)
}

// Checkpoints of a withdrawn key (one that may have leaked) vouch for nothing: the trail is
// not called broken for them, but they are counted apart and a recent checkpoint, when
// asked for, must come from another key.
func TestVerify_CheckpointsOfAWithdrawnKey_VouchForNothing(t *testing.T) {
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	m, clk := &memTrail{}, &fakeClock{time.Unix(2e9, 0)}
	w := &Writer{Store: m, Signer: edKey{priv}, Now: clk.Now}
	for range 3 {
		event(m, clk, "u")
		clk.t = clk.t.Add(time.Minute)
		if _, err := w.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(ctx, m, withdrawn{}, clk.t, 0)
	if err != nil || !rep.OK || rep.Checkpoints != 0 || rep.Withdrawn != 3 || rep.LastCheckpoint != nil {
		t.Fatalf("report %+v, %v; want OK with 3 checkpoints of the withdrawn key and none counted", rep, err)
	}
	rep, err = Verify(ctx, m, withdrawn{}, clk.t, time.Hour)
	if err != nil || rep.OK || !strings.Contains(rep.Broken.Reason, "no signed checkpoint ever") {
		t.Fatalf("with a recent checkpoint required: %+v %+v, want it missing", rep, rep.Broken)
	}
}
