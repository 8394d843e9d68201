package hotpath

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/twofold-dev/twofold/bench/seed"
	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/mfa"
)

// BenchmarkIssueTicket is what every sign-in starts with on the verifier: the app's
// backend presents its API key and gets a ticket for the user (POST /v1/tickets without
// HTTP and JSON): the key checked against its app, the ticket stored, one durable write.
// One at a time (<store>), and 64 at a time (<store>-parallel), as a busy backend sends
// them.
func BenchmarkIssueTicket(b *testing.B) {
	for _, v := range verifiers[:2] {
		for _, inFlight := range []int{1, 64} {
			name := v.name
			if inFlight > 1 {
				name += "-parallel"
			}
			b.Run(name, func(b *testing.B) {
				ctx := context.Background()
				cfg := v.config(b)
				_, cfg.MasterKey = seed.NewMasterKey()
				env := opened(b, cfg)
				key, err := env.MFA.CreateApp(ctx, mfa.NewApp{ID: "shop", Origins: []string{benchOrigin}})
				if err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				issue := func() error {
					app, err := env.MFA.AuthenticateApp(ctx, key)
					if err != nil {
						return err
					}
					_, err = env.MFA.IssueTicket(ctx, app, wire.TicketRequest{User: "user" + strconv.FormatInt(n.Add(1), 10)})
					return err
				}
				for range inFlight { // each connection's statements prepared, untimed
					if err := issue(); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				if inFlight == 1 {
					for range b.N {
						if err := issue(); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := issue(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
