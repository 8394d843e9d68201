package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
)

// WebhookEvent is one delivery of the verifier's webhook (`twofold apps webhook`): a
// security event of one of your users (a factor added or removed, a lock, a recovery code
// used, an admin reset) that the person should hear about.
type WebhookEvent = wire.WebhookEvent

// ErrWebhookSignature refuses a delivery that the webhook's secret did not sign, or did
// not sign lately: answer 400 and drop it.
var ErrWebhookSignature = errors.New("twofold webhook: signature refused")

// WebhookReceiver reads deliveries of the verifier's webhook. Deliveries come at least
// once: drop an event whose ID you have seen.
type WebhookReceiver struct {
	// Secret is what `twofold apps webhook` printed.
	Secret string
	// Tolerance is how far a delivery's signing time may be from now; default 5 minutes.
	// An older delivery, captured on the way, cannot be sent again later.
	Tolerance time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// maxWebhookBody bounds what Read takes in; a delivery is a few hundred bytes.
const maxWebhookBody = 64 << 10

// Read reads r's body and returns its event once the signature holds. Any error (one
// wrapping ErrWebhookSignature, or a body that is not an event) means: answer 400.
func (w WebhookReceiver) Read(r *http.Request) (WebhookEvent, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil {
		return WebhookEvent{}, fmt.Errorf("twofold webhook: read body: %w", err)
	}
	if len(body) > maxWebhookBody {
		return WebhookEvent{}, fmt.Errorf("%w: the body is over %d bytes", ErrWebhookSignature, maxWebhookBody)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	tolerance := w.Tolerance
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	if err := CheckWebhookSignature(w.Secret, r.Header.Get(wire.WebhookSignatureHeader), body, now(), tolerance); err != nil {
		return WebhookEvent{}, err
	}
	var e WebhookEvent
	if err := json.Unmarshal(body, &e); err != nil || e.ID == "" {
		return WebhookEvent{}, fmt.Errorf("twofold webhook: the signed body is not an event: %v", err)
	}
	return e, nil
}

// CheckWebhookSignature checks a delivery whose body you read yourself: header (the
// Twofold-Signature header) must carry a v1 signature of body under secret, made within
// tolerance of now.
func CheckWebhookSignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var t int64 = -1
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t, _ = strconv.ParseInt(v, 10, 64)
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if t < 0 || len(sigs) == 0 {
		return fmt.Errorf("%w: the header has no t= or no v1=", ErrWebhookSignature)
	}
	if d := now.Sub(time.Unix(t, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, more than %s from now", ErrWebhookSignature, time.Unix(t, 0).UTC().Format(time.RFC3339), tolerance)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10) + "."))
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrWebhookSignature)
}
