package hotpath

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
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
// HTTP and JSON. Each on a fresh bulk-seeded user.
//
// One at a time (<store>), each op waits for its own durable commit, and its CPU profile
// is the cost of one verification:
//
//	go test -run '^$' -bench 'VerifyTOTP/sqlite$' -benchtime 3s -cpuprofile cpu.out ./server/internal/hotpath
//	go tool pprof -top -cum hotpath.test cpu.out
//
// 64 at a time (<store>-parallel), as the load generator's connections send them, commits
// are shared (SQLite's group commit) or overlap (PostgreSQL), and ns/op is the wall time
// per verification of that throughput.
func BenchmarkVerifyTOTP(b *testing.B) {
	for _, v := range verifiers {
		b.Run(v.name, func(b *testing.B) { benchVerify(b, v.config(b), v.dialect, 1) })
		b.Run(v.name+"-parallel", func(b *testing.B) { benchVerify(b, v.config(b), v.dialect, 64) })
	}
}

// verifiers are the stores the whole-path benchmarks run on: the verifier's configuration
// for each, and the SQL flavour bench/seed writes into it. The last keeps the budgets in
// Redis, which only the TOTP verification measures.
var verifiers = []struct {
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
}

// benchVerify times b.N verifications, inFlight at a time, each of a fresh user.
func benchVerify(b *testing.B, cfg serve.Config, dialect seed.Dialect, inFlight int) {
	ctx := context.Background()
	// The first inFlight users warm up, untimed and all at once: each connection's first
	// statements are prepared there (on PostgreSQL a round trip each), which would
	// otherwise weigh on short runs.
	env, users := seeded(b, cfg, dialect, inFlight+b.N, "b-")
	// Codes of the current step; one that turns stale mid-run is still inside the
	// verifier's ±1 step window.
	step := totp.Step(time.Now(), 30)
	codes := make([]string, len(users))
	for i, u := range users {
		codes[i] = load.Code(u.Secret, step)
	}
	// ip is the client's address: one per connection, as the load generator sends them,
	// or every goroutine's attempts would queue for one address's budget.
	verify := func(i int, ip string) error {
		p, err := env.MFA.Authenticate(ctx, users[i].Ticket)
		if err != nil {
			return err
		}
		p.IP, p.UserAgent = ip, "bench"
		if _, err := env.MFA.VerifyTOTP(ctx, p, codes[i]); err != nil {
			return fmt.Errorf("user %d: %w", i, err)
		}
		return nil
	}
	var warm sync.WaitGroup
	for i := range inFlight {
		warm.Go(func() {
			if err := verify(i, fmt.Sprintf("127.0.2.%d", i)); err != nil {
				b.Error(err)
			}
		})
	}
	warm.Wait()
	b.ResetTimer()
	if inFlight == 1 {
		for i := range b.N {
			if err := verify(inFlight+i, "127.0.0.1"); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var next, conns atomic.Int64
	next.Store(int64(inFlight))
	b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		ip := fmt.Sprintf("127.0.1.%d", conns.Add(1))
		for pb.Next() {
			if err := verify(int(next.Add(1)-1), ip); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
