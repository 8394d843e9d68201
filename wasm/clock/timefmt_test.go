package clock

import (
	"testing"
	"time"
)

func TestParseRFC3339_AgreesWithTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-11-27T03:19:00Z", "2026-11-27T03:19:00.123456789Z", "2026-11-27T03:19:00.5+02:00",
		"2030-01-02T03:04:05.000001-07:30", "2026-02-28T23:59:59.9Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		got, ok := ParseRFC3339(s)
		if err != nil || !ok || !got.Equal(want) {
			t.Errorf("ParseRFC3339(%q) = %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "2026-11-27", "2026-11-27T03:19:00", "2026-13-27T03:19:00Z", "2026-11-27T03:19:00.Z", "2026-11-27T03:19:00+0200", "x026-11-27T03:19:00Z"} {
		if _, ok := ParseRFC3339(s); ok {
			t.Errorf("ParseRFC3339(%q) accepted", s)
		}
	}
}

func TestParseHTTPDate_AgreesWithTimeParse(t *testing.T) {
	s := "Fri, 27 Nov 2026 03:19:07 GMT"
	want, _ := time.Parse(time.RFC1123, s)
	if got, ok := ParseHTTPDate(s); !ok || !got.Equal(want) {
		t.Fatalf("got %v %v", got, ok)
	}
	for _, s := range []string{"", "Fri, 27 Nov 2026 03:19:07 UTC", "Fri, 27 Xyz 2026 03:19:07 GMT", "Friday, 27-Nov-26 03:19:07 GMT"} {
		if _, ok := ParseHTTPDate(s); ok {
			t.Errorf("ParseHTTPDate(%q) accepted", s)
		}
	}
}

func TestFormatRFC3339_LikeToISOString(t *testing.T) {
	tm := time.Date(2026, 11, 27, 3, 9, 7, 45_600_000, time.FixedZone("x", 3600))
	if got := FormatRFC3339(tm); got != "2026-11-27T02:09:07.045Z" {
		t.Fatal(got)
	}
	back, ok := ParseRFC3339(FormatRFC3339(tm))
	if !ok || !back.Equal(tm.Truncate(time.Millisecond)) {
		t.Fatal(back)
	}
}
