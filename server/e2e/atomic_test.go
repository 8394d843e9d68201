package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/passkey/passkeytest"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
)

// An attempt's reservation, the code's use, the give-back, the ticket's elevation and the
// audit record are one transaction. When the audit record cannot be written (a trigger
// refuses it: in the chain on SQLite, in the queue to it on PostgreSQL), the verifier
// answers 500 and nothing of the attempt stays: no failure is counted, the code is not
// used up, the ticket is not elevated. Once the trail takes records again, the same code
// signs in.
func TestVerify_AuditRecordRefused_NothingOfTheAttemptStays(t *testing.T) {
	onEachTrail(t, func(t *testing.T, v *verifier, be trailRefuser) {
		e := v.enroll("ann")
		v.Clock.Advance(30 * time.Second)
		good, wrong := code(t, e.Secret, v.Clock.Now()), wrongCode(t, e.Secret, v.Clock.Now())
		fresh := v.ticket("ann") // not yet elevated
		db, done := v.sqlHandle()
		defer done()
		var refused []func() reply
		for _, c := range []string{good, wrong, good} {
			refused = append(refused, func() reply { return fresh.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: c}) })
		}
		underRefusal(t, db, be, func() string { return attemptState(t, db) }, refused, func() {
			if r := fresh.call("POST", "/v1/totp/verify", wire.CodeRequest{Code: good}); r.Status != 200 {
				t.Fatalf("the same code once the trail works: %d %s, want 200", r.Status, r.Raw)
			}
		})
	})
}

// A passkey login is one such transaction too: the reservation, the ceremony taken, the
// sign counter, the give-back, the elevation and the audit record. With the trail
// refusing records, an assertion signed for another origin and a valid one both get 500
// and leave nothing: no failure counted, the ceremonies still there, the counter where it
// was, the ticket not elevated. Once the trail works, the same valid assertion signs in.
func TestPasskeyLogin_AuditRecordRefused_NothingOfTheAttemptStays(t *testing.T) {
	onEachTrail(t, func(t *testing.T, v *verifier, be trailRefuser) {
		b, _ := v.elevated("ann")
		key := passkeytest.New(origin, "localhost")
		v.registerPasskey(b, key)
		fresh := v.ticket("ann") // not yet elevated
		good := v.assertion(fresh, key)
		key.Origin = "http://phish.example" // signed for a page the app does not own
		phished := v.assertion(fresh, key)
		key.Origin = origin
		db, done := v.sqlHandle()
		defer done()
		state := func() string {
			return attemptState(t, db) + rowsOf(t, db, `SELECT challenge, kind FROM ceremonies ORDER BY challenge`) +
				rowsOf(t, db, `SELECT id, sign_count FROM passkeys ORDER BY id`)
		}
		finish := func(body []byte) func() reply {
			return func() reply { return fresh.call("POST", "/v1/webauthn/assertions/finish", body) }
		}
		underRefusal(t, db, be, state, []func() reply{finish(phished), finish(good)}, func() {
			if r := finish(good)(); r.Status != 200 {
				t.Fatalf("the same assertion once the trail works: %d %s, want 200", r.Status, r.Raw)
			}
		})
	})
}

// Confirming a first authenticator signs the user in too, and commits with its audit
// records and the ticket's elevation or not at all. With the trail refusing records it
// gets 500 and leaves the enrollment pending, the user without recovery codes and the
// ticket not elevated; once the trail works, the same code confirms it.
func TestConfirmEnrollment_AuditRecordRefused_NothingStays(t *testing.T) {
	onEachTrail(t, func(t *testing.T, v *verifier, be trailRefuser) {
		b := v.ticket("ann")
		e := b.call("POST", "/v1/totp/enrollments", nil)
		if e.Status != 201 {
			t.Fatalf("enroll: %d %s", e.Status, e.Raw)
		}
		confirm := func() reply {
			return b.call("POST", "/v1/totp/enrollments/"+e.str("id")+"/confirm", wire.CodeRequest{Code: code(t, e.str("secret"), v.Clock.Now())})
		}
		db, done := v.sqlHandle()
		defer done()
		state := func() string {
			return attemptState(t, db) + rowsOf(t, db, `SELECT id, confirmed FROM totp_credentials ORDER BY id`) +
				rowsOf(t, db, `SELECT user_id, COUNT(*) FROM recovery_codes GROUP BY user_id ORDER BY user_id`)
		}
		underRefusal(t, db, be, state, []func() reply{confirm}, func() {
			if r := confirm(); r.Status != 200 || r.str("token") == "" {
				t.Fatalf("the same code once the trail works: %d %s, want 200 with a token", r.Status, r.Raw)
			}
		})
	})
}

// Adding or removing a factor commits with its audit records or not at all. With the
// trail refusing records, each change answers 500 and the user's factors and recovery
// codes stay as they were; once the trail works, the same change goes through.
func TestFactorChange_AuditRecordRefused_NothingChanges(t *testing.T) {
	for _, c := range []struct {
		name string
		// change makes the change for browser b of ann, whose factors are an authenticator
		// app and a passkey; it returns the answer.
		change func(v *verifier, b browser) reply
		want   int
	}{
		{"register a passkey", func(v *verifier, b browser) reply {
			opts := b.call("POST", "/v1/webauthn/registrations", nil)
			cred, err := passkeytest.New(origin, "localhost").Create(opts.Raw)
			if err != nil {
				v.t.Fatal(err)
			}
			return b.call("POST", "/v1/webauthn/registrations/finish?label=Second", cred)
		}, 201},
		{"remove a factor", func(v *verifier, b browser) reply {
			return b.call("DELETE", "/v1/factors/"+v.factors(b)[1], nil)
		}, 204},
		{"regenerate recovery codes", func(v *verifier, b browser) reply {
			return b.call("POST", "/v1/recovery/codes", nil)
		}, 200},
		{"passkey_only destroys the app's secret", func(v *verifier, _ browser) reply {
			return v.call("PUT", "/v1/users/ann/policy", "Bearer "+v.APIKey, "", wire.PolicyRequest{Policy: "passkey_only"})
		}, 204},
	} {
		t.Run(c.name, func(t *testing.T) {
			onEachTrail(t, func(t *testing.T, v *verifier, be trailRefuser) {
				b, _ := v.elevated("ann")
				v.registerPasskey(b, passkeytest.New(origin, "localhost"))
				db, done := v.sqlHandle()
				defer done()
				state := func() string {
					return attemptState(t, db) + rowsOf(t, db, `SELECT id, confirmed FROM totp_credentials ORDER BY id`) +
						rowsOf(t, db, `SELECT id, label FROM passkeys ORDER BY id`) +
						rowsOf(t, db, `SELECT hash, used_at FROM recovery_codes ORDER BY hash`)
				}
				change := func() reply { return c.change(v, b) }
				underRefusal(t, db, be, state, []func() reply{change}, func() {
					if r := change(); r.Status != c.want {
						t.Fatalf("once the trail works: %d %s, want %d", r.Status, r.Raw, c.want)
					}
				})
			})
		})
	}
}

// underRefusal is the frame of these tests. With the trail refusing records, each of
// refused makes a request that must answer 500 internal, and state must read the same
// after them as before; then, with the trail back, done makes the request that must go
// through, and state must read otherwise.
func underRefusal(t *testing.T, db *sql.DB, be trailRefuser, state func() string, refused []func() reply, done func()) {
	t.Helper()
	before := state()
	execAll(t, db, be.down)
	for _, call := range refused {
		if r := call(); r.Status != 500 || r.errCode() != wire.CodeInternal {
			t.Errorf("with the trail refusing records: %d %s, want 500 internal", r.Status, r.Raw)
		}
	}
	if after := state(); after != before {
		t.Errorf("state changed by requests that could not be recorded:\nbefore %s\nafter  %s", before, after)
	}
	execAll(t, db, be.up)
	done()
	if after := state(); after == before {
		t.Error("a request that went through changed nothing: the state read is not what it writes")
	}
}

// storeCase is a store a verifier can run on: its --store (empty: SQLite in the data
// directory).
type storeCase struct {
	name  string
	store func(testing.TB) string
}

// on is the adjustment that starts a verifier on this store.
func (s storeCase) on(t *testing.T) func(*serve.Config) {
	return func(c *serve.Config) { c.Store = s.store(t) }
}

var stores = []storeCase{{"sqlite", func(testing.TB) string { return "" }}, {"postgres", pgtest.NewDatabase}}

// trailRefuser makes a store's audit trail refuse records (down) and take them again
// (up): a trigger in the chain on SQLite, in the queue to it on PostgreSQL.
type trailRefuser struct {
	storeCase
	down, up []string
}

// onEachTrail runs f against a fresh verifier on each store, with the way to make that
// store's trail refuse records.
func onEachTrail(t *testing.T, f func(t *testing.T, v *verifier, be trailRefuser)) {
	for _, be := range trailRefusers {
		t.Run(be.name, func(t *testing.T) { f(t, startVerifierWith(t, be.on(t)), be) })
	}
}

var trailRefusers = []trailRefuser{
	{stores[0],
		[]string{`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit down'); END`},
		[]string{`DROP TRIGGER audit_down`}},
	{stores[1],
		[]string{`CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit down'; END $$`,
			`CREATE TRIGGER audit_down BEFORE INSERT ON audit_queue FOR EACH ROW EXECUTE FUNCTION audit_down()`},
		[]string{`DROP TRIGGER audit_down ON audit_queue`}},
}

func execAll(t *testing.T, db *sql.DB, stmts []string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// sqlHandle opens the verifier's database beside it.
func (v *verifier) sqlHandle() (*sql.DB, func()) {
	v.t.Helper()
	env, err := serve.Open(context.Background(), v.cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	return env.Store.(interface{ SQL() *sql.DB }).SQL(), func() { env.Close() }
}

// attemptState is everything a verification writes: budgets, the last accepted steps,
// the tickets' elevation and the length of the audit trail.
func attemptState(t *testing.T, db *sql.DB) string {
	t.Helper()
	var out string
	for _, q := range []string{
		`SELECT key, count FROM attempts ORDER BY key`,
		`SELECT id, last_step FROM totp_credentials ORDER BY id`,
		`SELECT elevated_at, elevated_by FROM tickets ORDER BY created_at, hash`,
		`SELECT (SELECT COUNT(*) FROM audit_log), (SELECT COUNT(*) FROM audit_queue)`,
	} {
		out += rowsOf(t, db, q)
	}
	return out
}

// rowsOf is what q, a query of two columns, reads.
func rowsOf(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var out string
	for rows.Next() {
		var a, b any
		if err := rows.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%v=%v ", a, b)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	return out + "| "
}
