package hotpath

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/bench/load"
	"github.com/twofold-dev/twofold/bench/seed"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/totp"
)

// TestSeed_VerifierOpensWhatSeedWrote: users bulk-seeded by bench/seed (its mirror of the
// seal envelope, the AAD scheme and the ticket hash) authenticate and verify through the
// real service, and a replay of the same code is refused. If the formats drift apart, the
// benchmarks would measure errors; this fails first.
func TestSeed_VerifierOpensWhatSeedWrote(t *testing.T) {
	ctx := context.Background()
	env, users := seeded(t, serve.Config{DataDir: t.TempDir()}, seed.SQLite, 3, "t-")
	for _, u := range users {
		p, err := env.MFA.Authenticate(ctx, u.Ticket)
		if err != nil {
			t.Fatalf("%s: seeded ticket refused: %v", u.ID, err)
		}
		if p.Ticket.User != u.ID || p.App.ID != "bench" {
			t.Fatalf("ticket names %s of %s, want %s of bench", p.Ticket.User, p.App.ID, u.ID)
		}
		code := load.Code(u.Secret, totp.Step(time.Now(), 30))
		if _, err := env.MFA.VerifyTOTP(ctx, p, code); err != nil {
			t.Fatalf("%s: the code of a seeded secret was refused: %v", u.ID, err)
		}
		if _, err := env.MFA.VerifyTOTP(ctx, p, code); err == nil {
			t.Fatalf("%s: a replayed code was accepted", u.ID)
		}
	}
}

// benchOrigin is the page origin of the app "bench".
const benchOrigin = "http://bench.localhost"

// seeded opens the verifier cfg names, registers the app "bench" and bulk-seeds n users into
// its store as the load generator does.
func seeded(tb testing.TB, cfg serve.Config, dialect seed.Dialect, n int, prefix string) (*serve.Env, []seed.User) {
	tb.Helper()
	ctx := context.Background()
	key, b64 := seed.NewMasterKey()
	cfg.MasterKey = b64
	env := opened(tb, cfg)
	if _, err := env.MFA.CreateApp(ctx, mfa.NewApp{ID: "bench", Origins: []string{benchOrigin}}); err != nil {
		tb.Fatal(err)
	}
	db, ok := env.Store.(interface{ SQL() *sql.DB })
	if !ok {
		tb.Fatalf("the store %T has no SQL() handle to seed through", env.Store)
	}
	users, err := seed.Seed(ctx, db.SQL(), dialect, seed.Options{AppID: "bench", MasterKey: key, Users: n, Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	return env, users
}

// opened opens the verifier cfg names, with its connections open as serve.Run opens them
// before it serves, and closes it when tb ends.
func opened(tb testing.TB, cfg serve.Config) *serve.Env {
	tb.Helper()
	ctx := context.Background()
	cfg.Logger = quiet()
	env, err := serve.Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { env.Close() })
	if err := env.Warm(ctx); err != nil {
		tb.Fatal(err)
	}
	return env
}
