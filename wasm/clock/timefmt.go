package clock

import "time"

// The wasm avoids time.Parse and Time.Format: together they add about 60 KB (brotli) to
// the binary. The verifier's timestamps are RFC 3339 (Go's encoding/json) and its Date
// header is RFC 1123 in GMT, so these two small readers and one writer are enough.

// ParseRFC3339 reads 2006-01-02T15:04:05[.fraction](Z|±hh:mm).
func ParseRFC3339(s string) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	y, ok1 := num(s[0:4])
	mo, ok2 := num(s[5:7])
	d, ok3 := num(s[8:10])
	h, ok4 := num(s[11:13])
	mi, ok5 := num(s[14:16])
	se, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 {
		return time.Time{}, false
	}
	rest, nsec := s[19:], 0
	if rest != "" && rest[0] == '.' {
		i, scale := 1, 100000000
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			nsec += int(rest[i]-'0') * scale
			scale /= 10
		}
		if i == 1 {
			return time.Time{}, false
		}
		rest = rest[i:]
	}
	off := 0
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[4:6])
		if !ok1 || !ok2 {
			return time.Time{}, false
		}
		off = oh*3600 + om*60
		if rest[0] == '-' {
			off = -off
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, se, nsec, time.UTC).Add(-time.Duration(off) * time.Second)
	return t, true
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// ParseHTTPDate reads an IMF-fixdate, "Mon, 02 Jan 2006 15:04:05 GMT".
func ParseHTTPDate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25:] != " GMT" {
		return time.Time{}, false
	}
	mo := 0
	for i, m := range months {
		if s[8:11] == m {
			mo = i + 1
		}
	}
	d, ok1 := num(s[5:7])
	y, ok2 := num(s[12:16])
	h, ok3 := num(s[17:19])
	mi, ok4 := num(s[20:22])
	se, ok5 := num(s[23:25])
	if mo == 0 || !(ok1 && ok2 && ok3 && ok4 && ok5) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, se, 0, time.UTC), true
}

// FormatRFC3339 writes t in UTC with millisecond precision, as JavaScript's toISOString.
func FormatRFC3339(t time.Time) string {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, se := t.Clock()
	b := make([]byte, 0, 24)
	b = pad(b, y, 4)
	b = append(b, '-')
	b = pad(b, int(mo), 2)
	b = append(b, '-')
	b = pad(b, d, 2)
	b = append(b, 'T')
	b = pad(b, h, 2)
	b = append(b, ':')
	b = pad(b, mi, 2)
	b = append(b, ':')
	b = pad(b, se, 2)
	b = append(b, '.')
	b = pad(b, t.Nanosecond()/1e6, 3)
	return string(append(b, 'Z'))
}

func pad(b []byte, n, width int) []byte {
	var d [8]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:width]...)
}

func num(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, s != ""
}
