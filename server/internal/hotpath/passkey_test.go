package hotpath

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/bench/load"
	"github.com/twofold-dev/twofold/bench/seed"
	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/passkey/passkeytest"
	"github.com/twofold-dev/twofold/server/internal/serve"
	"github.com/twofold-dev/twofold/server/internal/totp"
)

// BenchmarkLoginPasskey is one whole passkey login, wired as the server wires it: the
// ticket check, the ceremony begun and stored, then the assertion checked against it (the
// ceremony taken, the signature, the sign counter's compare-and-set, the budgets, the
// ticket's elevation, the audit record) and the signed token. Everything but HTTP and
// JSON, each on a ticket not yet elevated.
//
// One at a time (<store>), each by a user of their own; the software authenticator's
// signing is not timed. 64 at a time (<store>-parallel), 64 users each signing in again
// and again on a fresh ticket, as many people's browsers would: commits are shared (SQLite)
// or overlap (PostgreSQL), ns/op is the wall time per login of that throughput, and the
// authenticator's P-256 signature (in the test process, on the same cores) is in it.
func BenchmarkLoginPasskey(b *testing.B) {
	for _, v := range verifiers[:2] {
		b.Run(v.name, func(b *testing.B) {
			env, users := seeded(b, v.config(b), v.dialect, b.N, "p-")
			logins := make([]passkeyUser, len(users))
			for i, u := range users {
				logins[i] = registerPasskey(b, env, u)
			}
			b.ResetTimer()
			for _, u := range logins {
				if err := loginPasskey(env, u, "127.0.0.1", b); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(v.name+"-parallel", func(b *testing.B) { benchPasskeyParallel(b, v.config(b), v.dialect, 64) })
	}
}

// benchPasskeyParallel times b.N passkey logins by inFlight users at once, each on a ticket
// issued for it beforehand, untimed, and each user from an address of its own (one
// address's budget would queue them all).
func benchPasskeyParallel(b *testing.B, cfg serve.Config, dialect seed.Dialect, inFlight int) {
	ctx := context.Background()
	env, users := seeded(b, cfg, dialect, inFlight, "pp-")
	app, err := env.Store.App(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	logins := make([]passkeyUser, inFlight)
	for i, u := range users {
		logins[i] = registerPasskey(b, env, u)
	}
	// User i makes logins i, i+inFlight, ...; its tickets, and one login each to warm the
	// connections up.
	tickets := make([][]string, inFlight)
	var issue sync.WaitGroup
	for i := range inFlight {
		issue.Go(func() {
			for n := i; n < b.N; n += inFlight {
				t, err := env.MFA.IssueTicket(ctx, app, wire.TicketRequest{User: users[i].ID})
				if err != nil {
					b.Error(err)
					return
				}
				tickets[i] = append(tickets[i], t.Ticket)
			}
			if err := loginPasskey(env, logins[i], loginIP(i), nil); err != nil {
				b.Error(err)
			}
		})
	}
	issue.Wait()
	if b.Failed() {
		return
	}
	b.ResetTimer()
	var run sync.WaitGroup
	for i := range inFlight {
		run.Go(func() {
			for _, t := range tickets[i] {
				if err := loginPasskey(env, passkeyUser{key: logins[i].key, ticket: t}, loginIP(i), nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	run.Wait()
}

// loginPasskey signs u in with its passkey on its ticket, from address ip; with b, the
// authenticator's signing is left out of b's timer.
func loginPasskey(env *serve.Env, u passkeyUser, ip string, b *testing.B) error {
	ctx := context.Background()
	p, err := env.MFA.Authenticate(ctx, u.ticket)
	if err != nil {
		return err
	}
	p.IP, p.UserAgent = ip, "bench"
	opts, err := env.MFA.BeginPasskeyLogin(ctx, p, false)
	if err != nil {
		return err
	}
	if b != nil {
		b.StopTimer()
	}
	body, err := u.key.Get(opts)
	if b != nil {
		b.StartTimer()
	}
	if err != nil {
		return err
	}
	_, err = env.MFA.FinishPasskeyLogin(ctx, p, body)
	return err
}

func loginIP(i int) string { return fmt.Sprintf("127.0.3.%d", i) }

// passkeyUser is a seeded user with a passkey, and a fresh ticket to log in with.
type passkeyUser struct {
	key    *passkeytest.Authenticator
	ticket string
}

// registerPasskey steps u's seeded ticket up with a TOTP code, registers a passkey with
// it, and issues u a new ticket, as the app's backend would for the next sign-in.
func registerPasskey(tb testing.TB, env *serve.Env, u seed.User) passkeyUser {
	tb.Helper()
	ctx := context.Background()
	p, err := env.MFA.Authenticate(ctx, u.Ticket)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := env.MFA.VerifyTOTP(ctx, p, load.Code(u.Secret, totp.Step(time.Now(), 30))); err != nil {
		tb.Fatal(err)
	}
	if p, err = env.MFA.Authenticate(ctx, u.Ticket); err != nil { // now elevated
		tb.Fatal(err)
	}
	opts, err := env.MFA.BeginPasskeyRegistration(ctx, p)
	if err != nil {
		tb.Fatal(err)
	}
	key := passkeytest.New(benchOrigin, "bench.localhost")
	cred, err := key.Create(opts)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := env.MFA.FinishPasskeyRegistration(ctx, p, cred, "Key"); err != nil {
		tb.Fatal(err)
	}
	t, err := env.MFA.IssueTicket(ctx, p.App, wire.TicketRequest{User: u.ID})
	if err != nil {
		tb.Fatal(err)
	}
	return passkeyUser{key: key, ticket: t.Ticket}
}
