package wire

import "time"

// WebhookEvent is the JSON body of a webhook delivery (`twofold apps webhook`): one security
// event of the app's users that a person should hear about.
type WebhookEvent struct {
	ID        string    `json:"id"` // evt_<audit record id>; the same in WebhookEventIDHeader
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	AppID     string    `json:"app"`
	User      string    `json:"user"`
	Factor    string    `json:"factor,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail,omitempty"`
}

// The headers of a webhook delivery. WebhookSignatureHeader is t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>" keyed with the webhook's secret>; WebhookEventIDHeader names
// the event: deliveries are at least once, and a receiver drops an id it has seen.
const (
	WebhookSignatureHeader = "Twofold-Signature"
	WebhookEventIDHeader   = "Twofold-Event-Id"
)
