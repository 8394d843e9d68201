package hotpath

import (
	"context"
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
// JSON, one login at a time, each by a user of their own on a ticket not yet elevated.
// The software authenticator's signing is not timed.
func BenchmarkLoginPasskey(b *testing.B) {
	for _, v := range verifiers[:2] {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			env, users := seeded(b, v.config(b), v.dialect, b.N, "p-")
			logins := make([]passkeyUser, len(users))
			for i, u := range users {
				logins[i] = registerPasskey(b, env, u)
			}
			b.ResetTimer()
			for _, u := range logins {
				p, err := env.MFA.Authenticate(ctx, u.ticket)
				if err != nil {
					b.Fatal(err)
				}
				p.IP, p.UserAgent = "127.0.0.1", "bench"
				opts, err := env.MFA.BeginPasskeyLogin(ctx, p, false)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				body, err := u.key.Get(opts)
				b.StartTimer()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := env.MFA.FinishPasskeyLogin(ctx, p, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

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
