package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/client"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/serve"
)

// The tests and examples run against a real verifier, started once in this process on a
// fresh data directory: the tokens they check are the ones a browser would get.

const pageOrigin = "http://localhost:3000"

var (
	dataDir     string            // the verifier's --data
	verifierURL string            // the verifier; also the iss of its tokens
	imposterURL string            // a second instance on the same keys with another issuer
	apiKeys     map[string]string // app id → API key
	support     *mfa.Service      // the same store, for what support would do (a reset)
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "twofold-client-test")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		dataDir = dir
		stop, err := startVerifiers(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer stop()
		return m.Run()
	}())
}

func startVerifiers(dir string) (stop func(), err error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := serve.Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: quiet, ShutdownTimeout: time.Second}
	ctx := context.Background()
	env, err := serve.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	apiKeys = map[string]string{}
	for id, alg := range map[string]string{"shop": "EdDSA", "other": "EdDSA", "es-shop": "ES256", "rs-shop": "RS256"} {
		key, err := env.MFA.CreateApp(ctx, mfa.NewApp{ID: id, Name: id, Origins: []string{pageOrigin}, SigningAlg: alg})
		if err != nil {
			env.Close()
			return nil, err
		}
		apiKeys[id] = key
	}
	support = env.MFA
	runCtx, cancel := context.WithCancel(ctx)
	var done []chan error
	start := func(c serve.Config) (string, error) {
		addr, ch := make(chan string, 1), make(chan error, 1)
		done = append(done, ch)
		go func() { ch <- serve.Run(runCtx, c, func(a string) { addr <- a }) }()
		select {
		case a := <-addr:
			return "http://" + a, nil
		case err := <-ch:
			return "", err
		}
	}
	stop = func() {
		cancel()
		for _, ch := range done {
			<-ch
		}
		env.Close()
	}
	if verifierURL, err = start(cfg); err != nil {
		stop()
		return nil, err
	}
	imp := cfg
	imp.Issuer = "https://imposter.example"
	if imposterURL, err = start(imp); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// signIn runs what the browser SDK runs for a new user of app (a ticket, an authenticator
// enrolled and confirmed) against base, and returns the token the confirmation gave.
func signIn(tb testing.TB, base, app, user, nonce string) string {
	tb.Helper()
	tok, err := signInErr(base, app, user, nonce)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func signInErr(base, app, user, nonce string) (string, error) {
	ctx := context.Background()
	tc, err := client.NewTicketClient(base, apiKeys[app], nil)
	if err != nil {
		return "", err
	}
	t, err := tc.Ticket(ctx, user, client.TicketOptions{Nonce: nonce})
	if err != nil {
		return "", err
	}
	var e struct{ ID, Secret string }
	err = browserCall(base, t.Value, "/v1/totp/enrollments", nil, &e)
	if err != nil && strings.Contains(err.Error(), wire.CodeStepUpRequired) {
		// The user enrolled in an earlier run of the test (go test -count 2): reset them as
		// support would, so this run signs in as a new user again, with a new ticket (a
		// reset ends the user's tickets).
		if err := support.ResetUser(ctx, app, user, "an earlier run of this test", mfa.Operator("client tests")); err != nil {
			return "", err
		}
		if t, err = tc.Ticket(ctx, user, client.TicketOptions{Nonce: nonce}); err != nil {
			return "", err
		}
		err = browserCall(base, t.Value, "/v1/totp/enrollments", nil, &e)
	}
	if err != nil {
		return "", err
	}
	code, err := totp.GenerateCode(e.Secret, time.Now())
	if err != nil {
		return "", err
	}
	var conf struct{ Token string }
	if err := browserCall(base, t.Value, "/v1/totp/enrollments/"+e.ID+"/confirm", map[string]string{"code": code}, &conf); err != nil {
		return "", err
	}
	return conf.Token, nil
}

// browserCall POSTs as the SDK does: the ticket and the page's Origin.
func browserCall(base, ticket, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Ticket "+ticket)
	req.Header.Set("Origin", pageOrigin)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s %s", path, res.Status, raw)
	}
	return json.Unmarshal(raw, out)
}

// countingClient counts the JWKS fetches a Verifier makes.
type countingClient struct {
	n atomic.Int32
}

func (c *countingClient) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// fakeClock is a settable clock for the Verifier.
type fakeClock struct{ at atomic.Int64 }

func newClock() *fakeClock                   { c := &fakeClock{}; c.at.Store(time.Now().UnixNano()); return c }
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.at.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.at.Add(int64(d)) }
