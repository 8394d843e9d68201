package client_test

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/internal/wire"
	"github.com/twofold-dev/twofold/server/client"
	"github.com/twofold-dev/twofold/server/internal/audit"
)

// The kit's receiver takes what the verifier's sender signs (audit.Sign) and refuses
// whatever else: another secret, a changed body or time, an old delivery, a header
// without its parts, a body that is too big.
func TestWebhookReceiver_TakesTheSendersSignatureOnly(t *testing.T) {
	const secret = "whsec_test"
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	body := `{"id":"evt_1","type":"factor_removed","created_at":"2030-01-02T03:04:00Z","app":"shop","user":"alice","outcome":"success"}`
	sig := func(at time.Time, b string) string { return audit.Sign(secret, at.Unix(), []byte(b)) }
	ts := func(at time.Time) string { return strconv.FormatInt(at.Unix(), 10) }
	good := "t=" + ts(now) + ",v1=" + sig(now, body)
	for _, tc := range []struct {
		name, secret, header, body string
		ok                         bool
	}{
		{"as sent", secret, good, body, true},
		{"beside a v1 of a rotated secret", secret, good + ",v1=00", body, true},
		{"4 minutes late", secret, "t=" + ts(now.Add(-4*time.Minute)) + ",v1=" + sig(now.Add(-4*time.Minute), body), body, true},
		{"another secret", "whsec_other", good, body, false},
		{"body changed", secret, good, strings.Replace(body, "alice", "mallory", 1), false},
		{"time changed", secret, "t=" + ts(now.Add(-time.Second)) + ",v1=" + sig(now, body), body, false},
		{"10 minutes old", secret, "t=" + ts(now.Add(-10*time.Minute)) + ",v1=" + sig(now.Add(-10*time.Minute), body), body, false},
		{"no v1", secret, "t=" + ts(now), body, false},
		{"no t", secret, "v1=" + sig(now, body), body, false},
		{"no header", secret, "", body, false},
		{"too big", secret, "t=" + ts(now) + ",v1=" + sig(now, body+strings.Repeat(" ", 70<<10)), body + strings.Repeat(" ", 70<<10), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/hooks/twofold", strings.NewReader(tc.body))
			if tc.header != "" {
				r.Header.Set(wire.WebhookSignatureHeader, tc.header)
			}
			e, err := client.WebhookReceiver{Secret: tc.secret, Now: func() time.Time { return now }}.Read(r)
			if tc.ok && (err != nil || e.ID != "evt_1" || e.User != "alice" || e.Type != "factor_removed") {
				t.Fatalf("event %+v, %v; want evt_1 for alice", e, err)
			}
			if !tc.ok && !errors.Is(err, client.ErrWebhookSignature) {
				t.Fatalf("event %+v, %v; want ErrWebhookSignature", e, err)
			}
		})
	}
}
