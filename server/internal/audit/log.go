package audit

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Notifies reports whether an app's webhook hears of kind: the events a person should know
// of, so a lock used as a weapon or a factor swapped behind their back reaches them.
func Notifies(k Kind) bool {
	switch k {
	case FactorAdded, FactorRemoved, Locked, RecoveryUsed, AdminReset, AdminRefused, CodesRegenerated, CredentialStuffing, FailureBurst:
		return true
	}
	return false
}

// Log is the Recorder on the store: each event is queued to become the next record of the
// hash chain, with its webhook delivery (if the app has a webhook and the event Notifies)
// queued in the transaction that chains it, and is counted in Metrics.
type Log struct {
	metrics *Metrics
	now     func() time.Time
}

var _ Recorder = (*Log)(nil)

// NewLog returns a Log. metrics may be nil; now nil means time.Now.
func NewLog(metrics *Metrics, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{metrics: metrics, now: now}
}

// appendTimeout bounds how long a request waits for its event to be stored.
const appendTimeout = 5 * time.Second

// Record stores e. It outlives a cancelled request (a client that hangs up after a failed
// guess must not erase the failure) but not appendTimeout.
func (l *Log) Record(ctx context.Context, to Appender, e Event) error {
	if e.At.IsZero() {
		e.At = l.now()
	}
	if e.Outcome == "" {
		e.Outcome = "ok"
	}
	l.metrics.Event(e.Kind, e.Outcome)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
	defer cancel()
	err := to.QueueAudit(ctx, recordOf(e), Notifies(e.Kind))
	if err != nil {
		l.metrics.AppendFailed()
		return fmt.Errorf("audit: record %s: %w", e.Kind, err)
	}
	return nil
}

// Field limits: enough for any real value, small enough that a hostile header cannot bloat
// the trail.
const (
	maxField  = 256
	maxDetail = 512
)

func recordOf(e Event) store.AuditRecord {
	return store.AuditRecord{
		At:        e.At.UTC(),
		Kind:      clean(string(e.Kind), maxField),
		AppID:     clean(e.AppID, maxField),
		User:      clean(e.User, maxField),
		Factor:    clean(e.Factor, maxField),
		IP:        clean(e.IP, maxField),
		UserAgent: clean(e.UserAgent, maxField),
		Outcome:   clean(e.Outcome, maxField),
		Detail:    clean(e.Detail, maxDetail),
	}
}

// clean makes s storable in every backend (valid UTF-8, no NUL, which PostgreSQL's text
// refuses) and at most max bytes, cut on a rune boundary.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Entry is a record as `twofold audit` prints it, one JSON object per line.
type Entry struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	AppID     string    `json:"app,omitempty"`
	User      string    `json:"user,omitempty"`
	Factor    string    `json:"factor,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail,omitempty"`
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

// EntryOf is r as printed.
func EntryOf(r store.AuditRecord) Entry {
	return Entry{
		ID: r.ID, At: r.At, Kind: r.Kind, AppID: r.AppID, User: r.User, Factor: r.Factor,
		IP: r.IP, UserAgent: r.UserAgent, Outcome: r.Outcome, Detail: r.Detail,
		PrevHash: hex.EncodeToString(r.PrevHash), Hash: hex.EncodeToString(r.Hash),
	}
}
