package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/internal/store"
)

// Sealer seals the webhook signing secrets at rest.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(envelope, aad []byte) ([]byte, error)
}

func webhookAAD(appID string) []byte { return store.Sealed{Kind: "webhook", ID: appID}.AAD() }

// SetWebhook gives an app a webhook at rawURL, replacing any earlier one, and returns its new
// signing secret. The secret exists only in this answer and, sealed, in the store.
func SetWebhook(ctx context.Context, st store.AuditStore, sealer Sealer, appID, rawURL string, now time.Time) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return "", fmt.Errorf("--url %q must be an absolute http(s) URL without credentials", rawURL)
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand panics rather than return an error
	secret := "whsec_" + base64.RawURLEncoding.EncodeToString(b)
	sealed, err := sealer.Seal([]byte(secret), webhookAAD(appID))
	if err != nil {
		return "", fmt.Errorf("set webhook: %w", err)
	}
	if err := st.PutWebhook(ctx, store.Webhook{AppID: appID, URL: u.String(), Sealed: sealed, CreatedAt: now}); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("no app %q", appID)
		}
		return "", err
	}
	return secret, nil
}

// Sign is the v1 signature of body sent at unix time t.
func Sign(secret string, t int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10) + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// payloadOf is the body of the delivery of r.
func payloadOf(r store.AuditRecord) wire.WebhookEvent {
	return wire.WebhookEvent{
		ID: "evt_" + strconv.FormatInt(r.ID, 10), Type: r.Kind, CreatedAt: r.At, AppID: r.AppID, User: r.User,
		Factor: r.Factor, IP: r.IP, UserAgent: r.UserAgent, Outcome: r.Outcome, Detail: r.Detail,
	}
}

// Deliverer sends queued webhook deliveries: POST with a signed JSON body, retried with
// exponential backoff until a 2xx or MaxAttempts. Any number of instances may run one on
// a shared store; claims keep them from sending a delivery twice within a lease.
type Deliverer struct {
	Store   store.AuditStore
	Sealer  Sealer
	Client  *http.Client
	Metrics *Metrics
	Logger  *slog.Logger
	Now     func() time.Time
	// Poll is how often the outbox is checked; Lease how long a claim holds; Batch how many
	// deliveries one pass takes; MaxAttempts when to give up; Backoff the wait after the
	// nth failed attempt.
	Poll        time.Duration
	Lease       time.Duration
	Batch       int
	MaxAttempts int
	Backoff     func(attempt int) time.Duration
}

func (d *Deliverer) defaults() {
	if d.Client == nil {
		d.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if d.Client.CheckRedirect == nil {
		// A redirect is answered as a failure, never followed: followed, it would hand the
		// signed delivery to the host it names, or turn it into a bodiless GET whose 200
		// would mark an event delivered that the app never received.
		c := *d.Client
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		d.Client = &c
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Poll <= 0 {
		d.Poll = time.Second
	}
	if d.Lease <= 0 {
		d.Lease = time.Minute
	}
	if d.Batch <= 0 {
		d.Batch = 16
	}
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = 15 // about 15 hours with the default backoff
	}
	if d.Backoff == nil {
		d.Backoff = DefaultBackoff
	}
}

// DefaultBackoff waits 10 s after the first failure, doubling, at most 3 hours.
func DefaultBackoff(attempt int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempt && d < 3*time.Hour; i++ {
		d *= 2
	}
	return min(d, 3*time.Hour)
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) {
	d.defaults()
	t := time.NewTicker(d.Poll)
	defer t.Stop()
	for {
		if _, err := d.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			d.Logger.Warn("webhook deliveries", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DeliverDue makes one pass: it claims what is due and tries each once. It returns how
// many were delivered.
func (d *Deliverer) DeliverDue(ctx context.Context) (int, error) {
	d.defaults()
	claimed, err := d.Store.ClaimDeliveries(ctx, d.Now(), d.Lease, d.Batch)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, dl := range claimed {
		err := d.send(ctx, dl)
		now := d.Now()
		switch {
		case err == nil:
			sent++
			d.Metrics.Delivery("delivered")
			if err := d.Store.DeliveryDone(ctx, dl.ID, now); err != nil {
				return sent, err
			}
		case dl.Attempts >= d.MaxAttempts || dl.Webhook.URL == "":
			d.Metrics.Delivery("gave_up")
			d.Logger.Warn("webhook delivery given up", "app", dl.Webhook.AppID, "event", dl.Record.ID, "attempts", dl.Attempts, "err", err)
			if err := d.Store.DeliveryFailed(ctx, dl.ID, dl.Attempts, now, err.Error(), true); err != nil {
				return sent, err
			}
		default:
			d.Metrics.Delivery("failed")
			next := now.Add(d.Backoff(dl.Attempts))
			d.Logger.Info("webhook delivery failed; will retry", "app", dl.Webhook.AppID, "event", dl.Record.ID, "attempts", dl.Attempts, "next", next, "err", err)
			if err := d.Store.DeliveryFailed(ctx, dl.ID, dl.Attempts, next, err.Error(), false); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

// send makes one attempt. Its error names what went wrong without the secret or the body.
func (d *Deliverer) send(ctx context.Context, dl store.Delivery) error {
	if dl.Webhook.URL == "" {
		return errors.New("the app has no webhook any more")
	}
	secret, err := d.Sealer.Open(dl.Webhook.Sealed, webhookAAD(dl.Webhook.AppID))
	if err != nil {
		return errors.New("cannot open the webhook secret")
	}
	body, err := json.Marshal(payloadOf(dl.Record))
	if err != nil {
		return err
	}
	t := d.Now().Unix()
	// Bounded even with a client that has no timeout, so one receiver cannot hold a claim.
	ctx, cancel := context.WithTimeout(ctx, min(d.Lease/2, 30*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "twofold-webhooks/1")
	req.Header.Set(wire.WebhookEventIDHeader, payloadOf(dl.Record).ID)
	req.Header.Set(wire.WebhookSignatureHeader, "t="+strconv.FormatInt(t, 10)+",v1="+Sign(string(secret), t, body))
	res, err := d.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may hold a token; keep it out of logs
		}
		return fmt.Errorf("POST failed: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode/100 == 3 {
		return fmt.Errorf("receiver answered %s; redirects are not followed: give the webhook the URL it points to", res.Status)
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", res.Status)
	}
	return nil
}
