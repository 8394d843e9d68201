// Package clockcheck estimates how far the verifier's own clock is off. TOTP makes every
// accepted code a witness: a phone's clock is set by its network, so if most of the codes
// people type belong to the step after the verifier's, it is the verifier that is behind.
// An NTP server the operator names gives a second, direct opinion.
package clockcheck

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Config tunes an Estimator; zero values mean the defaults in withDefaults.
type Config struct {
	// Period is the TOTP step (30 s).
	Period time.Duration
	// Window is how far back accepted codes count (1 h); at most MaxSamples of them.
	Window     time.Duration
	MaxSamples int
	// MinSamples is how many codes it takes before the estimate is believed (20).
	MinSamples int
	// Threshold is the estimated offset from which /readyz warns (one step, 30 s);
	// NTPThreshold the same for the NTP offset (5 s).
	Threshold    time.Duration
	NTPThreshold time.Duration
	Now          func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Period <= 0 {
		c.Period = 30 * time.Second
	}
	if c.Window <= 0 {
		c.Window = time.Hour
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = 4096
	}
	if c.MinSamples <= 0 {
		c.MinSamples = 20
	}
	if c.Threshold <= 0 {
		c.Threshold = c.Period
	}
	if c.NTPThreshold <= 0 {
		c.NTPThreshold = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

type sample struct {
	at     time.Time
	offset int
}

// Estimator collects the step offsets of accepted codes. It is safe for concurrent use.
type Estimator struct {
	cfg Config

	mu sync.Mutex
	// samples is a ring of the last MaxSamples accepted codes; next is where the next one
	// goes. (Dropping the oldest from the front of a slice moved 4,096 samples under the
	// lock on every verification: 3 % of the verifier's CPU under load.)
	samples []sample
	next    int
	ntp     *NTPResult
}

// New returns an empty Estimator.
func New(cfg Config) *Estimator { return &Estimator{cfg: cfg.withDefaults()} }

// ObserveStep records one accepted code whose step was offset steps from the verifier's
// own (+1: the phone is one step ahead).
func (e *Estimator) ObserveStep(offset int) {
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.samples) < e.cfg.MaxSamples {
		e.samples = append(e.samples, sample{now, offset})
	} else {
		e.samples[e.next] = sample{now, offset}
	}
	e.next = (e.next + 1) % e.cfg.MaxSamples
}

// Estimate is what the accepted codes say about the verifier's clock.
type Estimate struct {
	// Samples is how many codes of the window count; Known whether that is enough.
	Samples int
	Known   bool
	// Steps is the median phone offset in steps; Offset the verifier's clock minus the
	// phones' consensus (negative: the verifier is behind).
	Steps  int
	Offset time.Duration
}

// Estimate is the median offset of the accepted codes of the window. The median, not the
// mean: a few phones with wrong clocks (or an attacker replaying old codes) move it only
// once they are the majority.
func (e *Estimator) Estimate() Estimate {
	cutoff := e.cfg.Now().Add(-e.cfg.Window)
	e.mu.Lock()
	var offs []int
	for _, s := range e.samples {
		if !s.at.Before(cutoff) {
			offs = append(offs, s.offset)
		}
	}
	e.mu.Unlock()
	est := Estimate{Samples: len(offs)}
	if len(offs) == 0 {
		return est
	}
	slices.Sort(offs)
	est.Steps = offs[len(offs)/2]
	if len(offs)%2 == 0 && offs[len(offs)/2-1] != est.Steps {
		est.Steps = 0 // split down the middle: no majority either way
	}
	est.Offset = -time.Duration(est.Steps) * e.cfg.Period
	est.Known = len(offs) >= e.cfg.MinSamples
	return est
}

// Warning is the /readyz warning, or "" when the clock looks right.
func (e *Estimator) Warning() string {
	var msg string
	if est := e.Estimate(); est.Known && abs(est.Offset) >= e.cfg.Threshold {
		dir := "behind"
		if est.Offset > 0 {
			dir = "ahead"
		}
		msg = fmt.Sprintf("this verifier's clock looks about %s %s: the median of the last %d accepted codes is %+d steps off; check its time synchronisation", abs(est.Offset), dir, est.Samples, est.Steps)
	}
	e.mu.Lock()
	ntp := e.ntp
	e.mu.Unlock()
	if ntp != nil && ntp.Err == nil && abs(ntp.Offset) >= e.cfg.NTPThreshold {
		if msg != "" {
			msg += "; "
		}
		msg += fmt.Sprintf("NTP server %s says this clock is off by %s", ntp.Server, ntp.Offset.Round(time.Millisecond))
	}
	return msg
}

// SetNTP records the latest NTP check.
func (e *Estimator) SetNTP(r NTPResult) {
	e.mu.Lock()
	e.ntp = &r
	e.mu.Unlock()
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// WritePrometheus writes the estimate as gauges (and the NTP offset when checked).
func (e *Estimator) WritePrometheus(w io.Writer) error {
	est := e.Estimate()
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, strconv.FormatFloat(v, 'g', -1, 64))
	}
	known := 0.0
	if est.Known {
		known = 1
	}
	gauge("twofold_clock_offset_estimate_seconds", "This verifier's clock minus the clocks of the phones whose codes it accepted (median, last hour); negative means behind.", est.Offset.Seconds())
	gauge("twofold_clock_offset_samples", "Accepted codes the clock estimate rests on.", float64(est.Samples))
	gauge("twofold_clock_offset_estimate_known", "1 when enough codes were accepted for the estimate to be believed.", known)
	e.mu.Lock()
	ntp := e.ntp
	e.mu.Unlock()
	if ntp != nil {
		v := math.NaN()
		if ntp.Err == nil {
			v = ntp.Offset.Seconds()
		}
		gauge("twofold_clock_ntp_offset_seconds", "This verifier's clock minus the NTP server's, at the last check (NaN when it failed).", v)
	}
	return nil
}
