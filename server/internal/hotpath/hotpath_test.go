// Package hotpath holds the micro-benchmarks of the pieces one TOTP verification is made
// of, and the check that bench/seed writes what the verifier reads. It has only test files:
// bench/ may not import server/internal, so the benchmarks of internal pieces live here.
//
//	go test -run '^$' -bench . -benchmem ./server/internal/hotpath
//
// `make test` runs the tests here but never the benchmarks.
package hotpath

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/limit"
	"github.com/twofold-dev/twofold/server/internal/limit/redisbudget"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/seal"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/pgtest"
	"github.com/twofold-dev/twofold/server/internal/store/postgres"
	"github.com/twofold-dev/twofold/server/internal/store/sqlite"
	"github.com/twofold-dev/twofold/server/internal/tokens"
	"github.com/twofold-dev/twofold/server/internal/totp"
)

// backends opens an empty store of each kind; PostgreSQL is skipped when unreachable.
var backends = []struct {
	name string
	open func(testing.TB) store.Store
}{
	{"sqlite", func(tb testing.TB) store.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "twofold.db"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		return st
	}},
	{"postgres", func(tb testing.TB) store.Store {
		st, err := postgres.Open(context.Background(), pgtest.NewDatabase(tb))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		return st
	}},
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkAdvanceTOTP is the replay guard's compare-and-set, one durable commit each.
func BenchmarkAdvanceTOTP(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			ctx := context.Background()
			now := time.Now()
			const creds = 64
			for i := range creds {
				c := store.TOTPCredential{ID: "totp_" + strconv.Itoa(i), AppID: "app", User: "u" + strconv.Itoa(i), Label: "x",
					Sealed: []byte("sealed"), Algorithm: "SHA1", Digits: 6, Period: 30, LastStep: 0, ExpiresAt: now.Add(time.Hour), CreatedAt: now}
				if err := st.CreateTOTP(ctx, c); err != nil {
					b.Fatal(err)
				}
				if _, err := st.ConfirmTOTP(ctx, c.ID, 0, now, nil); err != nil {
					b.Fatal(err)
				}
			}
			// Eight writers at once, each on a credential of its own, so every call is a
			// winning compare-and-set that commits.
			var g atomic.Int64
			b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := "totp_" + strconv.FormatInt(g.Add(1)%creds, 10)
				for step := int64(1); pb.Next(); step++ {
					won, err := st.AdvanceTOTP(ctx, id, step, now, store.Drift{})
					if err != nil || !won {
						b.Errorf("advance %s to %d: won=%v err=%v", id, step, won, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAuthenticate is the ticket check every browser call starts with.
func BenchmarkAuthenticate(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			ctx := context.Background()
			ring := seal.NewKeyring(seal.Key{1})
			iss := tokens.New(tokens.Config{Issuer: "http://bench"}, st, ring)
			svc := mfa.New(mfa.Deps{Store: st, Sealer: ring, Signer: iss}, mfa.Config{Logger: quiet()})
			if _, err := svc.CreateApp(ctx, mfa.NewApp{ID: "shop", Origins: []string{"https://shop.example"}}); err != nil {
				b.Fatal(err)
			}
			app, err := st.App(ctx, "shop")
			if err != nil {
				b.Fatal(err)
			}
			var tickets []string
			for i := range 256 {
				t, err := svc.IssueTicket(ctx, app, wireTicket("user"+strconv.Itoa(i)))
				if err != nil {
					b.Fatal(err)
				}
				tickets = append(tickets, t.Ticket)
			}
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := svc.Authenticate(ctx, tickets[n.Add(1)%int64(len(tickets))]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkReserve is the rate-limit reservation made before a code is weighed (client
// address and factor), followed by the give-back of a success: on each SQL store, and on
// Redis as the verifier keeps the budgets with --redis. The -in-tx runs take it inside a
// transaction of the store, as a verification does: on SQLite, whose transactions run
// one at a time, that is a check of the budgets, and the success writes nothing to them.
func BenchmarkReserve(b *testing.B) {
	p := limit.DefaultPolicy()
	p.IP.Limit = 1 << 30
	now := time.Now()
	// run reserves and passes through attempt, for factors spread over 1024 keys.
	run := func(b *testing.B, attempt func(ctx context.Context, l *limit.Limiter, factor string) error, l *limit.Limiter) {
		ctx := context.Background()
		var n atomic.Int64
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := attempt(ctx, l, "totp_"+strconv.FormatInt(n.Add(1)%1024, 10)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	reserveAndPass := func(ctx context.Context, l *limit.Limiter, f string) error {
		d, err := l.Reserve(ctx, f, "127.0.0.1", now)
		if err != nil {
			return err
		}
		return l.Passed(ctx, f, "127.0.0.1", d)
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) { run(b, reserveAndPass, limit.New(be.open(b), p)) })
		b.Run(be.name+"-in-tx", func(b *testing.B) {
			st := be.open(b)
			run(b, func(ctx context.Context, l *limit.Limiter, f string) error {
				return st.Atomically(ctx, func(tx store.Tx) error { return reserveAndPass(ctx, l.In(tx), f) })
			}, limit.New(st, p))
		})
	}
	b.Run("redis", func(b *testing.B) {
		url, prefix := pgtest.RedisAddr(b)
		r, err := redisbudget.New(url, redisbudget.Options{Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		run(b, reserveAndPass, limit.New(r, p))
	})
}

// BenchmarkSeal is sealing and opening one TOTP secret with its row's associated data.
func BenchmarkSeal(b *testing.B) {
	ring := seal.NewKeyring(seal.Key{1})
	secret := make([]byte, totp.SecretSize)
	aad := store.Sealed{Kind: "totp", ID: "totp_abcdefghijklmnop", AppID: "shop", User: "alice@example.com"}.AAD()
	env, err := ring.Seal(secret, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := ring.Seal(secret, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			if _, err := ring.Open(env, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIssue signs a verification's token with each algorithm, claims included; the
// key is loaded once and cached, as in the server.
func BenchmarkIssue(b *testing.B) {
	st := backends[0].open(b)
	ring := seal.NewKeyring(seal.Key{1})
	iss := tokens.New(tokens.Config{Issuer: "https://mfa.example.com", CacheFor: time.Hour}, st, ring)
	for _, alg := range tokens.Algs {
		b.Run(alg, func(b *testing.B) {
			c := tokens.Claims{Subject: "alice", Audience: "shop", AMR: []string{"otp"}, Alg: alg}
			if _, _, err := iss.Issue(context.Background(), c); err != nil { // creates the key
				b.Fatal(err)
			}
			for b.Loop() {
				if _, _, err := iss.Issue(context.Background(), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTOTPMatch checks a code against the ±1 step window, as a verification does,
// and against the ±10 window the clock hint of a wrong code looks through.
func BenchmarkTOTPMatch(b *testing.B) {
	secret := make([]byte, totp.SecretSize)
	now := time.Now()
	p := totp.Params{}
	code, err := totp.Code(secret, p, totp.Step(now, 30))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("match", func(b *testing.B) {
		for b.Loop() {
			if _, ok := totp.Match(secret, code, p, now, 1, 0); !ok {
				b.Fatal("no match")
			}
		}
	})
	b.Run("drift-wrong-code", func(b *testing.B) {
		wrong := fmt.Sprintf("%06d", (mustAtoi(code)+1)%1_000_000)
		for b.Loop() {
			totp.Drift(secret, wrong, p, now, 10, 1)
		}
	})
}

func mustAtoi(s string) int { n, _ := strconv.Atoi(s); return n }

func wireTicket(user string) wire.TicketRequest { return wire.TicketRequest{User: user} }
