package audit_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/client"
	"github.com/twofold-dev/twofold/server/internal/audit"
	"github.com/twofold-dev/twofold/server/internal/seal"
	"github.com/twofold-dev/twofold/server/internal/store"
	"github.com/twofold-dev/twofold/server/internal/store/sqlstore"
)

// fakeClock is a settable clock for backoff without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// receiver is an app's webhook endpoint that checks every signature it gets.
type receiver struct {
	t      *testing.T
	secret string
	clock  *fakeClock
	fail   func(n int) bool // whether the nth request (1-based) is answered 503

	mu       sync.Mutex
	requests int
	got      []client.WebhookEvent
	perEvent map[string]int
}

// ServeHTTP receives as an app's backend would, with the Go kit's WebhookReceiver.
func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests++
	p, err := client.WebhookReceiver{Secret: rc.secret, Now: rc.clock.Now}.Read(r)
	if err != nil {
		rc.t.Errorf("delivery refused: %v", err)
		w.WriteHeader(400)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("delivery %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if rc.fail != nil && rc.fail(rc.requests) {
		w.WriteHeader(503)
		return
	}
	if id := r.Header.Get(wire.WebhookEventIDHeader); id != p.ID {
		rc.t.Errorf("%s header %q, body id %q", wire.WebhookEventIDHeader, id, p.ID)
	}
	rc.got = append(rc.got, p)
	if rc.perEvent == nil {
		rc.perEvent = map[string]int{}
	}
	rc.perEvent[p.ID]++
	w.WriteHeader(204)
}

type hookFixture struct {
	st    *sqlstore.DB
	ring  *seal.Keyring
	clock *fakeClock
	log   *audit.Log
	rc    *receiver
	del   *audit.Deliverer
}

func newHookFixture(t *testing.T) *hookFixture {
	t.Helper()
	f := &hookFixture{st: openStore(t), ring: seal.NewKeyring(seal.Key{1, 2, 3}), clock: &fakeClock{now: t0}}
	if err := f.st.CreateApp(t.Context(), store.App{ID: "shop", Name: "Shop", APIKeyHash: []byte("h"), SigningAlg: "EdDSA"}); err != nil {
		t.Fatal(err)
	}
	f.rc = &receiver{t: t, clock: f.clock}
	srv := httptest.NewServer(f.rc)
	t.Cleanup(srv.Close)
	secret, err := audit.SetWebhook(t.Context(), f.st, f.ring, "shop", srv.URL+"/hooks/twofold", t0)
	if err != nil {
		t.Fatal(err)
	}
	f.rc.secret = secret
	f.log = audit.NewLog(nil, f.clock.Now)
	f.del = &audit.Deliverer{Store: f.st, Sealer: f.ring, Now: f.clock.Now, Metrics: audit.NewMetrics(), Logger: quiet()}
	return f
}

func (f *hookFixture) record(t *testing.T, e audit.Event) {
	t.Helper()
	if err := f.log.Record(t.Context(), f.st, e); err != nil {
		t.Fatal(err)
	}
}

func (f *hookFixture) deliver(t *testing.T) int {
	t.Helper()
	n, err := f.del.DeliverDue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDeliver_NotifyingEvent_SignedPOSTTheReceiverVerifies(t *testing.T) {
	f := newHookFixture(t)
	f.record(t, audit.Event{Kind: audit.Verified, AppID: "shop", User: "alice"}) // not told
	f.record(t, audit.Event{Kind: audit.AdminReset, AppID: "shop", User: "alice", IP: "192.0.2.9", Detail: "by ops/root: lost phone"})
	f.record(t, audit.Event{Kind: audit.Locked, AppID: "blog", User: "bob"}) // another app, no webhook
	if n := f.deliver(t); n != 1 {
		t.Fatalf("delivered %d, want 1", n)
	}
	if len(f.rc.got) != 1 {
		t.Fatalf("receiver got %d deliveries, want 1", len(f.rc.got))
	}
	p := f.rc.got[0]
	want := client.WebhookEvent{ID: "evt_2", Type: "admin_reset", CreatedAt: t0, AppID: "shop", User: "alice", IP: "192.0.2.9", Outcome: "ok", Detail: "by ops/root: lost phone"}
	same := p.CreatedAt.Equal(want.CreatedAt)
	p.CreatedAt = want.CreatedAt // compared as instants above
	if !same || p != want {
		t.Errorf("payload %+v, want %+v", p, want)
	}
	// Sent once: nothing is due any more.
	f.clock.Advance(time.Hour)
	if n := f.deliver(t); n != 0 || f.rc.requests != 1 {
		t.Errorf("a second pass delivered %d (%d requests in all)", n, f.rc.requests)
	}
}

func TestDeliver_ReceiverFailing_RetriedWithBackoffUntilItAnswers(t *testing.T) {
	f := newHookFixture(t)
	f.rc.fail = func(n int) bool { return n <= 2 }
	f.record(t, audit.Event{Kind: audit.FactorRemoved, AppID: "shop", User: "alice", Factor: "totp_1"})
	for _, step := range []struct {
		advance  time.Duration
		requests int
		got      int
	}{
		{0, 1, 0},                // first attempt: 503
		{9 * time.Second, 1, 0},  // backing off 10 s
		{time.Second, 2, 0},      // second attempt: 503
		{19 * time.Second, 2, 0}, // backing off 20 s
		{time.Second, 3, 1},      // third attempt: delivered
		{time.Hour, 3, 1},        // and never again
	} {
		f.clock.Advance(step.advance)
		f.deliver(t)
		if f.rc.requests != step.requests || len(f.rc.got) != step.got {
			t.Fatalf("after +%v: %d requests, %d delivered; want %d, %d", step.advance, f.rc.requests, len(f.rc.got), step.requests, step.got)
		}
	}
	var buf bytes.Buffer
	f.del.Metrics.WritePrometheus(&buf)
	for _, want := range []string{`result="failed"} 2`, `result="delivered"} 1`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestDeliver_ReceiverAlwaysFailing_GivesUpAfterMaxAttempts(t *testing.T) {
	f := newHookFixture(t)
	f.del.MaxAttempts = 3
	f.rc.fail = func(int) bool { return true }
	f.record(t, audit.Event{Kind: audit.Locked, AppID: "shop", User: "alice"})
	for range 10 {
		f.deliver(t)
		f.clock.Advance(24 * time.Hour)
	}
	if f.rc.requests != 3 {
		t.Fatalf("%d attempts, want MaxAttempts = 3", f.rc.requests)
	}
}

// Instances share the outbox: each event reaches the receiver once however many deliver.
func TestDeliver_TwoInstancesConcurrently_EachEventOnce(t *testing.T) {
	f := newHookFixture(t)
	const n = 20
	for i := range n {
		f.record(t, audit.Event{Kind: audit.RecoveryUsed, AppID: "shop", User: "u" + string(rune('a'+i))})
	}
	other := *f.del
	other.Batch, f.del.Batch = 3, 3
	var wg sync.WaitGroup
	for _, d := range []*audit.Deliverer{f.del, &other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := d.DeliverDue(t.Context()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if len(f.rc.perEvent) != n {
		t.Errorf("%d distinct events delivered, want %d", len(f.rc.perEvent), n)
	}
	for id, c := range f.rc.perEvent {
		if c != 1 {
			t.Errorf("event %s delivered %d times", id, c)
		}
	}
}

func TestSetWebhook_SecretSealedAndBadURLsRefused(t *testing.T) {
	f := newHookFixture(t)
	w, err := f.st.Webhook(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.rc.secret, "whsec_") || bytes.Contains(w.Sealed, []byte(f.rc.secret)) || bytes.Contains(w.Sealed, []byte(strings.TrimPrefix(f.rc.secret, "whsec_"))) {
		t.Errorf("secret %q stored in the clear or malformed", f.rc.secret)
	}
	// Bound to its app: the sealed value does not open as another app's.
	if _, err := f.ring.Open(w.Sealed, store.Sealed{Kind: "webhook", ID: "blog"}.AAD()); err == nil {
		t.Error("shop's webhook secret opened as blog's")
	}
	for _, u := range []string{"", "ftp://x.example/h", "/relative", "https://user:pw@x.example/h", "https://", "https://x.example/h#frag"} {
		if _, err := audit.SetWebhook(t.Context(), f.st, f.ring, "shop", u, t0); err == nil {
			t.Errorf("SetWebhook(%q) accepted", u)
		}
	}
	if _, err := audit.SetWebhook(t.Context(), f.st, f.ring, "nope", "https://x.example/h", t0); err == nil {
		t.Error("SetWebhook for an unknown app accepted")
	}
}

// A receiver that redirects is a failed attempt, retried later: followed, a 307 would hand
// the signed delivery to whatever host it names (which could replay it to the app within
// the tolerance), and a 302 would turn it into a GET without a body that, answered 200,
// marked the event delivered while the app never heard of it.
func TestDeliver_ReceiverRedirects_NotFollowedNotDelivered(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusFound, http.StatusMovedPermanently} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			f := newHookFixture(t)
			var mu sync.Mutex
			var elsewhere []string
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				elsewhere = append(elsewhere, r.Method+" "+r.Header.Get(wire.WebhookSignatureHeader))
			}))
			t.Cleanup(other.Close)
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/collect", code)
			}))
			t.Cleanup(redirector.Close)
			if _, err := audit.SetWebhook(t.Context(), f.st, f.ring, "shop", redirector.URL+"/hooks", t0); err != nil {
				t.Fatal(err)
			}
			f.record(t, audit.Event{Kind: audit.FactorAdded, AppID: "shop", User: "alice"})
			if n := f.deliver(t); n != 0 {
				t.Errorf("a redirect counted as %d delivered", n)
			}
			mu.Lock()
			if len(elsewhere) != 0 {
				t.Errorf("the redirect was followed: %q", elsewhere)
			}
			mu.Unlock()
			var buf bytes.Buffer
			f.del.Metrics.WritePrometheus(&buf)
			if !strings.Contains(buf.String(), `result="failed"} 1`) {
				t.Errorf("metrics do not count the redirect as a failed attempt:\n%s", buf.String())
			}
		})
	}
}
