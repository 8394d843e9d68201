package hotpath

import (
	"context"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/bench/load"
	"github.com/twofold-dev/twofold/bench/seed"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
	"github.com/twofold-dev/twofold/server/internal/totp"
)

// BenchmarkVerifyTOTP is one whole successful verification, wired as the server wires it
// (serve.Open): the ticket check, the rate-limit reservation, opening the sealed secret,
// the TOTP match, the replay compare-and-set, the give-back of the reservation, the
// hash-chained audit record, the ticket's elevation and the signed token. Everything but
// HTTP and JSON. One at a time, each on a fresh bulk-seeded user, so its CPU profile is
// the cost of one verification:
//
//	go test -run '^$' -bench 'VerifyTOTP/sqlite' -benchtime 3s -cpuprofile cpu.out ./server/internal/hotpath
//	go tool pprof -top -cum hotpath.test cpu.out
func BenchmarkVerifyTOTP(b *testing.B) {
	for _, v := range []struct {
		name    string
		dialect seed.Dialect
		config  func(testing.TB) serve.Config
	}{
		{"sqlite", seed.SQLite, func(tb testing.TB) serve.Config { return serve.Config{DataDir: tb.TempDir()} }},
		{"postgres", seed.Postgres, func(tb testing.TB) serve.Config {
			return serve.Config{DataDir: tb.TempDir(), Store: pgtest.NewDatabase(tb)}
		}},
		{"postgres+redis", seed.Postgres, func(tb testing.TB) serve.Config {
			url, prefix := pgtest.RedisAddr(tb)
			return serve.Config{DataDir: tb.TempDir(), Store: pgtest.NewDatabase(tb), Redis: url, RedisPrefix: prefix}
		}},
	} {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			env, users := seeded(b, v.config(b), v.dialect, b.N, "b-")
			// Codes of the current step; one that turns stale mid-run is still inside the
			// verifier's ±1 step window.
			step := totp.Step(time.Now(), 30)
			codes := make([]string, len(users))
			for i, u := range users {
				codes[i] = load.Code(u.Secret, step)
			}
			b.ResetTimer()
			for i := range b.N {
				p, err := env.MFA.Authenticate(ctx, users[i].Ticket)
				if err != nil {
					b.Fatal(err)
				}
				p.IP, p.UserAgent = "127.0.0.1", "bench"
				if _, err := env.MFA.VerifyTOTP(ctx, p, codes[i]); err != nil {
					b.Fatalf("user %d: %v", i, err)
				}
			}
		})
	}
}
