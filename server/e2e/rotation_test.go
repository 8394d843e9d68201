package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/serve"
)

// Both rotations run as separate processes (`twofold keys ...`) while the verifier serves a
// steady stream of enrollments and sign-ins; not one request may fail, every stored secret
// ends up under the new master key, and tokens signed before and after the signing-key
// rotation all validate against the published JWKS.
func TestRotation_MasterAndSigningKeys_WhileServing(t *testing.T) {
	v := startVerifier(t)
	before := v.enroll("before-rotation")

	var stop atomic.Bool
	var served atomic.Int64
	var mu sync.Mutex
	var tokens []string
	failures := make(chan string, 100)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				b := v.ticket(fmt.Sprintf("load-%d-%d", w, i))
				r := b.call("POST", "/v1/totp/enrollments", nil)
				if r.Status != 201 {
					failures <- fmt.Sprintf("enroll: %d %s", r.Status, r.Raw)
					return
				}
				c := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", map[string]string{"code": code(t, r.str("secret"), v.Clock.Now())})
				if c.Status != 200 {
					failures <- fmt.Sprintf("confirm: %d %s", c.Status, c.Raw)
					return
				}
				mu.Lock()
				tokens = append(tokens, c.str("token"))
				mu.Unlock()
				served.Add(1)
			}
		})
	}
	waitServed := func(n int64) {
		for deadline := time.Now().Add(time.Minute); served.Load() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("load stalled at %d requests", served.Load())
			}
		}
	}
	waitServed(5)

	var master struct{ Resealed int }
	if err := json.Unmarshal(runCLI(t, "keys", "rotate-master", "--data", v.Data), &master); err != nil {
		t.Fatal(err)
	}
	if master.Resealed < 6 { // at least the users enrolled so far, the pepper and the signing key
		t.Errorf("rotate-master re-sealed %d values", master.Resealed)
	}
	waitServed(served.Load() + 5)
	var signing struct {
		KID       string
		SignsFrom time.Time `json:"signs_from"`
	}
	rotatedAt := time.Now()
	if err := json.Unmarshal(runCLI(t, "keys", "rotate-signing", "--data", v.Data, "--publish-ahead", "3s"), &signing); err != nil {
		t.Fatal(err)
	}
	if lead := signing.SignsFrom.Sub(rotatedAt); lead < 2*time.Second || lead > time.Minute {
		t.Errorf("rotate-signing: the new key signs from %v, want about 3s after %v", signing.SignsFrom, rotatedAt)
	}
	v.Clock.Advance(6 * time.Second) // past the new key's time and the verifier's signing-key cache
	waitServed(served.Load() + 5)
	stop.Store(true)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}

	// The user enrolled under the old master key still signs in.
	if r := before.call("POST", "/v1/totp/verify", map[string]string{"code": code(t, before.Secret, v.Clock.Now().Add(30*time.Second))}); r.Status != 200 {
		t.Fatalf("verify after rotation: %d %s", r.Status, r.Raw)
	}
	// Every stored secret opens with the new master key alone.
	keyFile, err := os.ReadFile(filepath.Join(v.Data, serve.MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(keyFile))
	if len(lines) != 2 {
		t.Fatalf("key file has %d keys, want the new one and the old one", len(lines))
	}
	env, err := serve.Open(context.Background(), serve.Config{DataDir: v.Data, MasterKey: lines[0], Addr: "127.0.0.1:0", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	values, err := env.Store.SealedValues(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range values {
		if _, err := env.Ring.Open(s.Blob, s.AAD()); err != nil {
			t.Errorf("%s %s does not open under the new master key: %v", s.Kind, s.ID, err)
		}
	}
	// Tokens from before and after the signing rotation validate against the JWKS.
	kids := map[string]bool{}
	for _, tok := range []string{tokens[0], tokens[len(tokens)-1], before.Token} {
		joseVerify(t, v, "shop", tok)
		kids[kidOf(t, tok)] = true
	}
	if !kids[signing.KID] || len(kids) != 2 {
		t.Errorf("tokens were signed by %v; want the old key and the new %s", kids, signing.KID)
	}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	var h struct{ Kid string }
	seg, _, _ := strings.Cut(token, ".")
	raw, err := decodeSegment(seg)
	if err != nil || json.Unmarshal(raw, &h) != nil {
		t.Fatalf("token header %q: %v", seg, err)
	}
	return h.Kid
}

// A signing key that may have leaked is withdrawn while the verifier serves: it leaves the
// JWKS at once, a backend that fetches the set refuses the tokens it signed, and sign-ins
// go on under the key that replaced it.
func TestWithdrawSigningKey_WhileServing_TokensRefusedSignInsGoOn(t *testing.T) {
	v := startVerifier(t)
	e := v.enroll("leaked-key")
	joseVerify(t, v, "shop", e.Token)
	oldKid := kidOf(t, e.Token)

	var out struct{ Withdrawn, Kid string }
	if err := json.Unmarshal(runCLI(t, "keys", "withdraw-signing", "--data", v.Data, "--kid", oldKid), &out); err != nil {
		t.Fatal(err)
	}
	if out.Withdrawn != oldKid || out.Kid == "" || out.Kid == oldKid {
		t.Fatalf("withdraw-signing printed %+v; want %s withdrawn and a new kid", out, oldKid)
	}
	r := v.call("GET", "/.well-known/jwks.json", "", "", nil)
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(r.Raw, &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != out.Kid {
		t.Fatalf("JWKS right after the withdrawal: %s; want only %s", r.Raw, out.Kid)
	}
	script, _ := filepath.Abs("../../sdk-js/test/verify-jwt.mjs")
	if msg, err := exec.Command("node", script, v.URL+"/.well-known/jwks.json", v.URL, "shop", e.Token).CombinedOutput(); err == nil {
		t.Fatalf("jose accepted a token of the withdrawn key: %s", msg)
	}

	v.Clock.Advance(6 * time.Second) // past the verifier's signing-key cache
	r = e.call("POST", "/v1/totp/verify", map[string]string{"code": code(t, e.Secret, v.Clock.Now().Add(30*time.Second))})
	if r.Status != 200 {
		t.Fatalf("sign-in after the withdrawal: %d %s", r.Status, r.Raw)
	}
	if kid := kidOf(t, r.str("token")); kid != out.Kid {
		t.Fatalf("token after the withdrawal signed by %s, want %s", kid, out.Kid)
	}
	joseVerify(t, v, "shop", r.str("token"))
}

// Withdrawing the key that signed every checkpoint so far leaves none that vouches for the
// trail. withdraw-signing appends one signed by the key signing now, so `audit verify
// --max-checkpoint-age` finds the trail whole at once, not only after the verifier's next
// checkpoint (an hour away when no record is added).
func TestWithdrawSigningKey_ItSignedEveryCheckpoint_NewKeysCheckpointVouchesAtOnce(t *testing.T) {
	v := startVerifierWith(t, func(c *serve.Config) { c.CheckpointEvery = 20 * time.Millisecond })
	e := v.enroll("alice")
	oldKid := kidOf(t, e.Token)
	if cp := firstCheckpoint(t, v); !strings.Contains(cp.Detail, " kid="+oldKid+" ") {
		t.Fatalf("first checkpoint %q not signed by %s, the key the test withdraws", cp.Detail, oldKid)
	}

	var out struct{ Withdrawn, Kid string }
	if err := json.Unmarshal(runCLI(t, "keys", "withdraw-signing", "--data", v.Data, "--kid", oldKid), &out); err != nil {
		t.Fatal(err)
	}
	rep, code := auditVerify(t, v.Data, "--max-checkpoint-age", "1h")
	if code != 0 || !rep.OK || rep.Withdrawn < 1 {
		t.Fatalf("audit verify after the withdrawal: exit %d, %+v broken %+v; want OK with the withdrawn key's checkpoints counted apart", code, rep, rep.Broken)
	}
	if rep.LastCheckpoint == nil || !strings.Contains(rep.LastCheckpoint.Detail, " kid="+out.Kid+" ") {
		t.Fatalf("newest checkpoint %+v, want one signed by the replacement %s", rep.LastCheckpoint, out.Kid)
	}
}

// With --master-key-command, README's rotation is: make the command print the new key
// first and the old one after it, then run rotate-master with the same flag. A verifier
// already serving learns the new key when it meets a value re-sealed under it; before, it
// had run the command once at start and answered 500 to every user rotate-master touched.
func TestRotation_MasterKeyCommand_ServingVerifierFollows(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	write := func(k ...string) {
		if err := os.WriteFile(keys, []byte(strings.Join(k, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k0, k1 := newMasterKey(), newMasterKey()
	write(k0)
	v := startVerifierWith(t, func(c *serve.Config) { c.MasterKeyCommand = "cat " + keys })
	e := v.enroll("kms-user")

	write(k1, k0)
	n, err := serve.RotateMaster(t.Context(), v.cfg, 0, false)
	if err != nil || n == 0 {
		t.Fatalf("rotate-master: %d re-sealed, %v", n, err)
	}
	r := e.call("POST", "/v1/totp/verify", map[string]string{"code": code(t, e.Secret, v.Clock.Now().Add(30*time.Second))})
	if r.Status != 200 {
		t.Fatalf("verify on the serving verifier after the rotation: %d %s", r.Status, r.Raw)
	}
	if e2 := v.enroll("kms-user-2"); e2.Token == "" {
		t.Fatal("no token for an enrollment after the rotation")
	}
}

func newMasterKey() string {
	k := make([]byte, 32)
	rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// A sealed value that will not open (a damaged row) does not keep the others from the new
// master key: the rotation re-seals every other value, names the damaged one, and exits 1
// with what it did on stdout. Before, it stopped at the first such value, and whatever came
// after it stayed under the old key.
func TestRotation_OneDamagedValue_TheRestResealedAndItIsNamed(t *testing.T) {
	v := startVerifier(t)
	ctx := t.Context()
	for _, u := range []string{"ana", "ben", "cy"} {
		v.enroll(u)
	}
	env, err := serve.Open(ctx, v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	values, err := env.Store.SealedValues(ctx)
	if err != nil || len(values) < 3 {
		t.Fatalf("%d sealed values, %v", len(values), err)
	}
	// Damage the first value a pass meets: its tag no longer matches.
	bad := values[0]
	broken := append([]byte(nil), bad.Blob...)
	broken[len(broken)-1] ^= 1
	if ok, err := env.Store.ReplaceSealed(ctx, bad.Kind, bad.ID, bad.Blob, broken); !ok || err != nil {
		t.Fatalf("damaging %s %s: %v %v", bad.Kind, bad.ID, ok, err)
	}
	env.Close()

	cmd := exec.Command(binary, "keys", "rotate-master", "--data", v.Data, "--settle", "0s")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	var got struct {
		Resealed int      `json:"resealed"`
		Failed   []string `json:"failed"`
	}
	if err := json.Unmarshal(out, &got); err != nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("rotate-master: exit %d, stdout %q (%v), stderr %s; want exit 1 and what it did", cmd.ProcessState.ExitCode(), out, err, stderr.String())
	}
	if len(got.Failed) != 1 || !strings.HasPrefix(got.Failed[0], bad.Kind+" "+bad.ID+":") || got.Resealed != len(values)-1 {
		t.Fatalf("rotate-master: %+v; want %d re-sealed and %s %s named", got, len(values)-1, bad.Kind, bad.ID)
	}
	if !strings.Contains(stderr.String(), "stay under their old master key") {
		t.Errorf("stderr does not say the damaged value keeps the old key: %s", stderr.String())
	}

	env, err = serve.Open(ctx, v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	after, err := env.Store.SealedValues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, val := range after {
		if old := env.Ring.NeedsReseal(val.Blob); old != (val.Kind == bad.Kind && val.ID == bad.ID) {
			t.Errorf("%s %s: under the old key %v after the rotation", val.Kind, val.ID, old)
		}
	}
}

// A verifier whose master key came from its environment cannot learn a new one while it
// runs: rotating to a key it lacks would leave it answering 500 for every user re-sealed.
// rotate-master refuses, naming it, and re-seals nothing. Restarted with the new key beside
// the old one (the README's first step), it is no obstacle, and goes on signing people in
// after the rotation.
func TestRotation_RunningVerifierLacksTheNewKey_RefusedUntilItHoldsIt(t *testing.T) {
	k0, k1 := newMasterKey(), newMasterKey()

	t.Run("Lacks", func(t *testing.T) {
		v := startVerifierWith(t, func(c *serve.Config) { c.MasterKey = k0 })
		e := v.enroll("env-key-user")
		cmd := exec.Command(binary, "keys", "rotate-master", "--data", v.Data, "--settle", "0s")
		cmd.Env = append(os.Environ(), "TWOFOLD_MASTER_KEY="+k1, "TWOFOLD_MASTER_KEY_PREVIOUS="+k0)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "not held by 1 running verifier") || !strings.Contains(string(out), "--force") {
			t.Fatalf("rotate-master past a verifier without the new key: %v\n%s\nwant exit 1 naming it", err, out)
		}
		r := e.call("POST", "/v1/totp/verify", map[string]string{"code": code(t, e.Secret, v.Clock.Now().Add(30*time.Second))})
		if r.Status != 200 {
			t.Fatalf("sign-in after the refused rotation: %d %s", r.Status, r.Raw)
		}
		forced := v.cfg
		forced.MasterKey, forced.MasterKeyPrevious = k1, k0
		if n, err := serve.RotateMaster(t.Context(), forced, 0, true); err != nil || n == 0 {
			t.Fatalf("rotate-master --force: %d re-sealed, %v", n, err)
		}
	})

	t.Run("HoldsItAsPrevious", func(t *testing.T) {
		v := startVerifierWith(t, func(c *serve.Config) { c.MasterKey, c.MasterKeyPrevious = k0, k1 })
		e := v.enroll("env-key-user")
		rot := v.cfg
		rot.MasterKey, rot.MasterKeyPrevious = k1, k0
		if n, err := serve.RotateMaster(t.Context(), rot, 0, false); err != nil || n == 0 {
			t.Fatalf("rotate-master: %d re-sealed, %v", n, err)
		}
		r := e.call("POST", "/v1/totp/verify", map[string]string{"code": code(t, e.Secret, v.Clock.Now().Add(30*time.Second))})
		if r.Status != 200 {
			t.Fatalf("sign-in on the running verifier after the rotation: %d %s", r.Status, r.Raw)
		}
	})
}
