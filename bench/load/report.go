package load

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Run is one row of results.json. The first fields are the contract of issue 8; the rest
// say how the row was measured.
type Run struct {
	Name          string  `json:"name"`
	Backend       string  `json:"backend"`
	Instances     int     `json:"instances"`
	Users         int     `json:"users"`
	VerifyOKPerS  float64 `json:"verify_ok_per_s"`
	RejectPerS    float64 `json:"reject_per_s"`
	P50MS         float64 `json:"p50_ms"`
	P99MS         float64 `json:"p99_ms"`
	P999MS        float64 `json:"p999_ms"`
	RSSMB         float64 `json:"rss_mb"`
	CeilingPerS   float64 `json:"ceiling_per_s"`
	Ratio         float64 `json:"ratio"`
	CPUMSPerOK    float64 `json:"cpu_ms_per_verify"`
	CeilingCPUMS  float64 `json:"ceiling_cpu_ms_per_request"`
	CeilingP99MS  float64 `json:"ceiling_p99_ms"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	Conns         int     `json:"conns"`
	Seconds       float64 `json:"seconds"`
	Mix           string  `json:"mix"`
	Redis         bool    `json:"redis"`
	OneIP         bool    `json:"one_client_ip"`
	Unexpected    int64   `json:"unexpected"`
	ServerErrors  int64   `json:"server_errors"`
	RateLimited   int64   `json:"rate_limited"`
	Starved       int64   `json:"starved"`
	ValidCapacity int64   `json:"valid_capacity"`
	// ColdMS is the slowest of the closed loop's first requests, one per connection, sent
	// together to instances that had answered nothing yet.
	ColdMS float64 `json:"cold_ms"`
	// The open-loop drive that follows the closed-loop one on the same instances (-at-peak
	// or -rate): RatePerS requests/s scheduled (AtPeak × the closed loop's requests/s, or
	// -rate), of which RateSentPerS were sent, with these latencies from each request's
	// scheduled start. Zero when there was none.
	AtPeak           float64 `json:"at_peak,omitempty"`
	RatePerS         float64 `json:"rate_per_s,omitempty"`
	RateSentPerS     float64 `json:"rate_sent_per_s,omitempty"`
	RateVerifyOKPerS float64 `json:"rate_verify_ok_per_s,omitempty"`
	RateP50MS        float64 `json:"rate_p50_ms,omitempty"`
	RateP99MS        float64 `json:"rate_p99_ms,omitempty"`
	RateP999MS       float64 `json:"rate_p999_ms,omitempty"`
	RateMaxLagMS     float64 `json:"rate_max_lag_ms,omitempty"`
	RateUnexpected   int64   `json:"rate_unexpected,omitempty"`
	// RateWindows is the open-loop drive's latency a tenth of a second at a time.
	RateWindows      []Window `json:"rate_windows,omitempty"`
	RedisPrefix      string   `json:"redis_prefix,omitempty"`
	RedisKeysDeleted int64    `json:"redis_keys_deleted,omitempty"`
	Note             string   `json:"note,omitempty"`

	// Latency samples (µs) for the chart; not written to results.json.
	Lat        []uint32 `json:"-"`
	CeilingLat []uint32 `json:"-"`
	RateLat    []uint32 `json:"-"`
}

// Results is results.json.
type Results struct {
	Date    string `json:"date"`
	Machine string `json:"machine"`
	Runs    []Run  `json:"runs"`
}

// Quantile returns the q-quantile (0..1) of sorted microsecond samples, in milliseconds.
func Quantile(sorted []uint32, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / 1000
}

// Sort sorts latency samples in place and returns them.
func Sort(lat []uint32) []uint32 { slices.Sort(lat); return lat }

// Table writes the runs as a Markdown table; the last two columns, the open-loop drive's
// rate and p99, appear when some run had one.
func Table(w io.Writer, runs []Run) {
	open := false
	for _, r := range runs {
		open = open || r.RatePerS > 0
	}
	head := "| run | backend | inst. | users | verify ok/s | rejects/s | p50 ms | p99 ms | p99.9 ms | RSS MB | CPU ms/verify | ceiling/s | ratio |"
	rule := "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	if open {
		head += " fixed rate req/s | p99 ms there |"
		rule += " ---: | ---: |"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, r := range runs {
		name := r.Name
		if r.Note != "" {
			name += " †"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %.0f | %.2f | %.2f | %.2f | %.0f | %.3f | %.0f | %.2f |",
			name, r.Backend, r.Instances, r.Users, r.VerifyOKPerS, r.RejectPerS, r.P50MS, r.P99MS, r.P999MS,
			r.RSSMB, r.CPUMSPerOK, r.CeilingPerS, r.Ratio)
		if open {
			rate := fmt.Sprintf("%.0f", r.RatePerS)
			if r.AtPeak > 0 {
				rate += fmt.Sprintf(" (%.0f %%)", r.AtPeak*100)
			}
			fmt.Fprintf(w, " %s | %.2f |", rate, r.RateP99MS)
		}
		fmt.Fprintln(w)
	}
	for _, r := range runs {
		if r.Note != "" {
			fmt.Fprintf(w, "\n† %s: %s", r.Name, r.Note)
		}
	}
	fmt.Fprintln(w)
}

// SVG writes a latency-by-percentile chart: one line per run and one for the ceiling of
// the first run, on a log scale of "nines" (50%, 90%, 99%, 99.9%, 99.99%).
func SVG(w io.Writer, runs []Run, title string) {
	const (
		width, height          = 760, 420
		left, right, top, bott = 70, 190, 40, 50
	)
	pw, ph := float64(width-left-right), float64(height-top-bott)
	colors := []string{"#888888", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}
	type series struct {
		name, color, dash string
		lat               []uint32
	}
	var all []series
	if len(runs) > 0 && len(runs[0].CeilingLat) > 0 {
		all = append(all, series{"ceiling (stateless)", colors[0], ` stroke-dasharray="5 4"`, runs[0].CeilingLat})
	}
	for i, r := range runs {
		c := colors[1+i%(len(colors)-1)]
		all = append(all, series{r.Name, c, "", r.Lat})
		if len(r.RateLat) > 0 {
			label := fmt.Sprintf("%s, %.0f/s", r.Name, r.RatePerS)
			if r.AtPeak > 0 {
				label = fmt.Sprintf("%s, %.0f %% of peak", r.Name, r.AtPeak*100)
			}
			all = append(all, series{label, c, ` stroke-dasharray="2 3"`, r.RateLat})
		}
	}
	// x: -log10(1-q), from 0.5 (0.30) to 0.9999 (4).
	const xmin, xmax = 0.30103, 4.0
	// y: latency on a log scale, whole decades around every series' p50..p99.99.
	lo, hi := math.Inf(1), 0.0
	for _, s := range all {
		if len(s.lat) > 0 {
			lo = min(lo, max(Quantile(s.lat, 0.5), 0.001))
			hi = max(hi, Quantile(s.lat, 0.9999))
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1
	}
	dmin, dmax := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dmax <= dmin {
		dmax = dmin + 1
	}
	x := func(nines float64) float64 { return left + (nines-xmin)/(xmax-xmin)*pw }
	y := func(ms float64) float64 {
		return top + ph - (math.Log10(max(ms, math.Pow(10, dmin)))-dmin)/(dmax-dmin)*ph
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc(title))
	for _, q := range []struct {
		label string
		nines float64
	}{{"50%", xmin}, {"90%", 1}, {"99%", 2}, {"99.9%", 3}, {"99.99%", 4}} {
		px := x(q.nines)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px, top, px, top+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px, top+ph+18, q.label)
	}
	for d := dmin; d <= dmax; d++ {
		ms := math.Pow(10, d)
		py := y(ms)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, py, left+pw, py)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py+4, trimFloat(ms))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">percentile of requests</text>`+"\n", left+pw/2, height-10)
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>`+"\n", top+ph/2)
	for i, s := range all {
		if len(s.lat) == 0 {
			continue
		}
		c, dash := s.color, s.dash
		var pts []string
		for k := 0; k <= 60; k++ {
			nines := xmin + (xmax-xmin)*float64(k)/60
			q := 1 - math.Pow(10, -nines)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(nines), y(Quantile(s.lat, q))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", c, dash, strings.Join(pts, " "))
		ly := top + 10 + i*20
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", left+pw+12, ly, left+pw+32, ly, c, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", left+pw+38, ly+4, esc(s.name))
	}
	b.WriteString("</svg>\n")
	io.WriteString(w, b.String())
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
