package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestMeasure_UsesMidpointOfRoundTrip(t *testing.T) {
	e, ok := Measure(Sample{Sent: t0, Received: t0.Add(200 * time.Millisecond), ServerTime: t0.Add(100 * time.Millisecond)})
	if !ok || e.Skew != 0 || e.Uncertainty != 100*time.Millisecond {
		t.Fatalf("got %+v %v", e, ok)
	}
	if e.Warn() || e.Direction() != "" || e.Seconds() != 0 {
		t.Fatalf("an exact clock warns: %+v", e)
	}
}

func TestMeasure_TwoMinutesAheadWarns(t *testing.T) {
	e, _ := Measure(Sample{Sent: t0.Add(2 * time.Minute), Received: t0.Add(2*time.Minute + 50*time.Millisecond), ServerTime: t0})
	if !e.Warn() || e.Seconds() != 120 || e.Direction() != "ahead" {
		t.Fatalf("got %+v warn=%v", e, e.Warn())
	}
	e, _ = Measure(Sample{Sent: t0.Add(-2 * time.Minute), Received: t0.Add(-2 * time.Minute), ServerTime: t0})
	if !e.Warn() || e.Seconds() != -120 || e.Direction() != "behind" {
		t.Fatalf("got %+v", e)
	}
}

func TestWarn_FromOnePeriodBeyondDoubt(t *testing.T) {
	for _, tc := range []struct {
		skew, unc time.Duration
		want      bool
	}{
		{29 * time.Second, 0, false},
		{30 * time.Second, 0, true},
		{-30 * time.Second, 0, true},
		{31 * time.Second, 2 * time.Second, false},
		{33 * time.Second, 2 * time.Second, true},
	} {
		if got := (Estimate{Skew: tc.skew, Uncertainty: tc.unc}).Warn(); got != tc.want {
			t.Errorf("Warn(%v ± %v) = %v", tc.skew, tc.unc, got)
		}
	}
}

func TestMeasure_FallsBackToDateHeader(t *testing.T) {
	// The Date header truncates: a verifier at t0+0.5s sends t0.
	e, ok := Measure(Sample{Sent: t0.Add(45*time.Second + 500*time.Millisecond), Received: t0.Add(45*time.Second + 500*time.Millisecond), Date: t0})
	if !ok || e.Skew != 45*time.Second || e.Uncertainty != 500*time.Millisecond || !e.Warn() {
		t.Fatalf("got %+v %v", e, ok)
	}
	if _, ok := Measure(Sample{Sent: t0, Received: t0}); ok {
		t.Fatal("a sample with no verifier time measured")
	}
}
