package clockcheck

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twofold-dev/twofold/server/internal/clockcheck/sntptest"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func repeat(n, offset int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = offset
	}
	return s
}

func TestEstimate_MostPhonesAhead_VerifierBehind(t *testing.T) {
	for _, tc := range []struct {
		name       string
		offsets    []int
		wantKnown  bool
		wantOffset time.Duration
		warn       bool
	}{
		{"no codes", nil, false, 0, false},
		{"too few codes to believe", repeat(19, 1), false, -30 * time.Second, false},
		{"all phones on time", repeat(50, 0), true, 0, false},
		{"most phones one step ahead: verifier behind", append(repeat(30, 1), repeat(10, 0)...), true, -30 * time.Second, true},
		{"most phones one step behind: verifier ahead", append(repeat(30, -1), repeat(10, 0)...), true, 30 * time.Second, true},
		{"a few phones off: no verdict", append(repeat(35, 0), append(repeat(10, 1), repeat(5, -1)...)...), true, 0, false},
		{"even split: no majority", append(repeat(20, 0), repeat(20, 1)...), true, 0, false},
		{"two steps ahead", append(repeat(30, 2), repeat(5, 1)...), true, -60 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(Config{Now: (&fakeClock{time.Unix(1e9, 0)}).Now})
			for _, o := range tc.offsets {
				e.ObserveStep(o)
			}
			est := e.Estimate()
			if est.Known != tc.wantKnown || est.Offset != tc.wantOffset {
				t.Fatalf("estimate %+v, want known=%v offset=%v", est, tc.wantKnown, tc.wantOffset)
			}
			if w := e.Warning(); (w != "") != tc.warn {
				t.Fatalf("warning %q, want warn=%v", w, tc.warn)
			}
		})
	}
}

func TestEstimate_OldCodesAgeOut(t *testing.T) {
	clk := &fakeClock{time.Unix(1e9, 0)}
	e := New(Config{Now: clk.Now})
	for range 40 {
		e.ObserveStep(1) // an hour ago the verifier was behind...
	}
	clk.t = clk.t.Add(61 * time.Minute)
	for range 25 {
		e.ObserveStep(0) // ...then NTP fixed it
	}
	if est := e.Estimate(); est.Samples != 25 || est.Offset != 0 || e.Warning() != "" {
		t.Fatalf("estimate %+v warning %q: the fixed clock still looks off", est, e.Warning())
	}
}

func TestEstimate_BoundedMemory_KeepsTheNewest(t *testing.T) {
	e := New(Config{MaxSamples: 100})
	for range 1000 {
		e.ObserveStep(1)
	}
	for range 150 {
		e.ObserveStep(-1)
	}
	if n := len(e.samples); n != 100 {
		t.Fatalf("%d samples kept", n)
	}
	if est := e.Estimate(); est.Samples != 100 || est.Steps != -1 {
		t.Fatalf("estimate %+v, want the 100 newest samples, all -1", est)
	}
}

func TestWritePrometheus_GaugesOfTheEstimate(t *testing.T) {
	e := New(Config{})
	for range 25 {
		e.ObserveStep(1)
	}
	e.SetNTP(NTPResult{Server: "ntp.test", Offset: -1500 * time.Millisecond})
	var b bytes.Buffer
	e.WritePrometheus(&b)
	for _, want := range []string{
		"# TYPE twofold_clock_offset_estimate_seconds gauge\ntwofold_clock_offset_estimate_seconds -30\n",
		"twofold_clock_offset_samples 25\n",
		"twofold_clock_offset_estimate_known 1\n",
		"twofold_clock_ntp_offset_seconds -1.5\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

func TestQueryNTP_MeasuresTheLocalClocksOffset(t *testing.T) {
	for _, tc := range []struct {
		name     string
		skew     time.Duration // server clock minus true time
		localOff time.Duration // local clock minus true time
		want     time.Duration // local minus server
		warn     bool
	}{
		{"both right", 0, 0, 0, false},
		{"server 7 s ahead of us", 7 * time.Second, 0, -7 * time.Second, true},
		{"we are 3 s ahead", 0, 3 * time.Second, 3 * time.Second, false},
		{"we are 12 s ahead", 0, 12 * time.Second, 12 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := sntptest.Server(t, tc.skew, 2)
			local := func() time.Time { return time.Now().Add(tc.localOff) }
			r := QueryNTP(context.Background(), addr, local)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if d := r.Offset - tc.want; d > 50*time.Millisecond || d < -50*time.Millisecond {
				t.Fatalf("offset %v, want %v", r.Offset, tc.want)
			}
			e := New(Config{Now: local})
			e.SetNTP(r)
			if w := e.Warning(); (w != "") != tc.warn {
				t.Fatalf("warning %q, want warn=%v", w, tc.warn)
			}
		})
	}
}

func TestQueryNTP_UnsynchronisedOrSilentServer_Error(t *testing.T) {
	if r := QueryNTP(context.Background(), sntptest.Server(t, 0, 0), time.Now); r.Err == nil {
		t.Error("stratum 0 (kiss-o'-death) accepted")
	}
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if r := QueryNTP(ctx, pc.LocalAddr().String(), time.Now); r.Err == nil {
		t.Error("silent server: no error")
	}
}
