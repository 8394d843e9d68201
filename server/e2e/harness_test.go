package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/mfa"
	"github.com/twofold-dev/twofold/server/internal/serve"
)

const origin = "http://localhost:3000"

// client keeps enough idle connections that concurrent requests really run concurrently.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}, Timeout: 30 * time.Second}

// clock is a settable clock that starts at real time; tests move it instead of sleeping.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// verifier is a running in-process twofold with one registered app.
type verifier struct {
	t      *testing.T
	URL    string
	Data   string
	APIKey string
	Clock  *clock
	cfg    serve.Config
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startVerifier serves twofold from a fresh data directory until the test ends.
func startVerifier(t *testing.T) *verifier {
	t.Helper()
	return startVerifierWith(t, nil)
}

// startVerifierWith lets a test adjust the configuration first.
func startVerifierWith(t *testing.T, adjust func(*serve.Config)) *verifier {
	t.Helper()
	v := &verifier{t: t, Data: t.TempDir(), Clock: &clock{}}
	v.cfg = serve.Config{Addr: "127.0.0.1:0", DataDir: v.Data, Logger: quietLogger(), Now: v.Clock.Now, ShutdownTimeout: 2 * time.Second}
	if adjust != nil {
		adjust(&v.cfg)
	}
	v.APIKey = v.createApp("shop", "EdDSA")
	v.serve()
	return v
}

// sibling is a second verifier instance on the same data directory and clock.
func (v *verifier) sibling() *verifier {
	v.t.Helper()
	s := &verifier{t: v.t, Data: v.Data, APIKey: v.APIKey, Clock: v.Clock, cfg: v.cfg}
	s.serve()
	return s
}

// serve runs the verifier until the test ends.
func (v *verifier) serve() {
	t := v.t
	t.Helper()
	runCtx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve.Run(runCtx, v.cfg, func(a string) { addr <- a }) }()
	select {
	case a := <-addr:
		v.URL = "http://" + a
	case err := <-done:
		t.Fatal(err)
	}
	// The issuer must be the URL tokens are fetched from; Run defaulted it to the listen
	// address, which is that URL.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// createApp registers an app for origin through a second handle on the store, as
// `twofold apps create` would, and returns its API key.
func (v *verifier) createApp(id, alg string) string {
	v.t.Helper()
	ctx := context.Background()
	env, err := serve.Open(ctx, v.cfg)
	if err != nil {
		v.t.Fatal(err)
	}
	defer env.Close()
	key, err := env.MFA.CreateApp(ctx, mfa.NewApp{ID: id, Name: id, Origins: []string{origin}, SigningAlg: alg})
	if err != nil {
		v.t.Fatal(err)
	}
	return key
}

// reply is a decoded answer.
type reply struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func (r reply) str(k string) string { s, _ := r.Body[k].(string); return s }

func (r reply) errCode() string { return r.str("error") }

// call sends one request; auth is the full Authorization header value or "".
func (v *verifier) call(method, path, auth, origin string, body any) reply {
	v.t.Helper()
	var payload []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		payload = b
	case string:
		payload = []byte(b)
	default:
		payload, _ = json.Marshal(b)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequest(method, v.URL+path, rd)
	if err != nil {
		v.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	var res *http.Response
	if len(payload) > 1<<20 { // whatever the body's type: the verifier answers 413 early
		res, err = sendEarlyAnswered(req, payload)
	} else {
		res, err = client.Do(req)
	}
	if err != nil {
		v.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := reply{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// browser is one browser tab on origin holding a ticket.
type browser struct {
	v      *verifier
	ticket string
	origin string
}

func (b browser) call(method, path string, body any) reply {
	b.v.t.Helper()
	return b.v.call(method, path, "Ticket "+b.ticket, b.origin, body)
}

func (v *verifier) ticket(user string) browser {
	v.t.Helper()
	r := v.call("POST", "/v1/tickets", "Bearer "+v.APIKey, "", wire.TicketRequest{User: user})
	if r.Status != 201 || r.str("ticket") == "" {
		v.t.Fatalf("ticket: %d %s", r.Status, r.Raw)
	}
	return browser{v: v, ticket: r.str("ticket"), origin: origin}
}

// enrolled is a user with a confirmed authenticator.
type enrolled struct {
	browser
	Secret        string
	RecoveryCodes []string
	Token         string
}

// code is the authenticator's code steps periods from the verifier's now.
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (v *verifier) enroll(user string) enrolled {
	v.t.Helper()
	b := v.ticket(user)
	r := b.call("POST", "/v1/totp/enrollments", nil)
	if r.Status != 201 {
		v.t.Fatalf("enroll: %d %s", r.Status, r.Raw)
	}
	e := enrolled{browser: b, Secret: r.str("secret")}
	if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret); err != nil {
		v.t.Fatalf("secret %q is not base32: %v", e.Secret, err)
	}
	c := b.call("POST", "/v1/totp/enrollments/"+r.str("id")+"/confirm", wire.CodeRequest{Code: code(v.t, e.Secret, v.Clock.Now())})
	if c.Status != 200 {
		v.t.Fatalf("confirm: %d %s", c.Status, c.Raw)
	}
	for _, rc := range c.Body["recovery_codes"].([]any) {
		e.RecoveryCodes = append(e.RecoveryCodes, rc.(string))
	}
	e.Token = c.str("token")
	return e
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// sendEarlyAnswered sends a request whose body the verifier refuses before reading it. The
// verifier answers at once and closes; Go's client reports its own failed write instead of
// that answer, so this writes the request on a raw connection and reads what comes back.
func sendEarlyAnswered(req *http.Request, body []byte) (*http.Response, error) {
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		return nil, err
	}
	go func() {
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.Write(conn) // its error is the refusal itself
	}()
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	raw, err := io.ReadAll(res.Body)
	conn.Close()
	res.Body = io.NopCloser(bytes.NewReader(raw))
	return res, err
}

// race sends the same request n times at once. It opens n connections first, so the
// requests race inside the verifier rather than in connection setup.
func race(b browser, n int, method, path string, body any) []reply {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { b.call("GET", "/v1/session", nil) })
	}
	wg.Wait()
	results := make([]reply, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = b.call(method, path, body)
		})
	}
	close(start)
	wg.Wait()
	return results
}
