// Package clock estimates how far the device's clock is from the verifier's, so the UI can
// warn before a person types a code that will fail. On a phone the device clock is the
// authenticator's clock; on a computer it is a strong hint, as both usually sync the same way.
package clock

import "time"

// Warn is the skew from which the UI warns. The verifier accepts codes one 30-second step
// either side of its own (its default); an authenticator off by less than one period always
// lands inside that window, one off by 30-60 s misses part of the time, and one off by a
// minute or more always misses. So the warning starts where the first failures can.
const Warn = 30 * time.Second

// Sample is one request to the verifier: the device's clock just before sending and just
// after the answer, and the verifier's time from the answer.
type Sample struct {
	Sent, Received time.Time
	ServerTime     time.Time // server_time from /v1/session; zero when absent
	Date           time.Time // the Date header (one-second resolution); zero when absent
}

// Estimate is the device clock minus the verifier's clock, within ±Uncertainty.
type Estimate struct {
	Skew        time.Duration
	Uncertainty time.Duration
}

// Measure estimates the skew from one sample. The verifier stamped its time somewhere
// during the round trip, so the device's midpoint is compared with it and half the round
// trip is the uncertainty; a Date header adds half a second for its truncation. ok is false
// when the sample carries no verifier time.
func Measure(s Sample) (Estimate, bool) {
	rtt := s.Received.Sub(s.Sent)
	if rtt < 0 {
		rtt = 0
	}
	mid := s.Sent.Add(rtt / 2)
	e := Estimate{Uncertainty: rtt / 2}
	switch {
	case !s.ServerTime.IsZero():
		e.Skew = mid.Sub(s.ServerTime)
	case !s.Date.IsZero():
		e.Skew = mid.Sub(s.Date.Add(500 * time.Millisecond))
		e.Uncertainty += 500 * time.Millisecond
	default:
		return Estimate{}, false
	}
	return e, true
}

// Warn reports whether the device clock is off by Warn or more beyond doubt.
func (e Estimate) Warn() bool {
	d := e.Skew
	if d < 0 {
		d = -d
	}
	return d-e.Uncertainty >= Warn
}

// Seconds is the skew rounded to whole seconds, as tf.clockSkew() returns it.
func (e Estimate) Seconds() int {
	return int(e.Skew.Round(time.Second) / time.Second)
}

// Direction is "ahead" or "behind" (wire.ClockAhead/ClockBehind), or "" within a second.
func (e Estimate) Direction() string {
	switch s := e.Seconds(); {
	case s > 0:
		return "ahead"
	case s < 0:
		return "behind"
	}
	return ""
}
