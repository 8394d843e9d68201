package guard

import (
	"errors"
	"testing"

	"github.com/twofold-dev/twofold/internal/wire"
)

var app = []string{"https://shop.example.com", "http://localhost:3000"}

func TestCheck_AllowsListedOriginsTopLevelOrFramedBySelf(t *testing.T) {
	for _, p := range []Page{
		{Origin: "https://shop.example.com"},
		{Origin: "https://SHOP.example.com:443"},
		{Origin: "http://localhost:3000"},
		{Origin: "https://shop.example.com", Framed: true, Ancestors: []string{"https://shop.example.com"}},
	} {
		if r := Check(p, app); r != nil {
			t.Errorf("Check(%+v) refused: %s", p, r.Err.Message)
		}
	}
}

func TestCheck_RefusesWithOriginNotAllowed(t *testing.T) {
	for _, tc := range []struct {
		p    Page
		want Reason
	}{
		{Page{Origin: "https://shop.example.com.evil.test"}, ReasonNotListed},
		{Page{Origin: "https://shop.example.co"}, ReasonNotListed},
		{Page{Origin: "http://localhost:3001"}, ReasonNotListed},
		{Page{Origin: "http://shop.example.com"}, ReasonInsecure},
		{Page{Origin: "null"}, ReasonBadOrigin},
		{Page{Origin: "file://"}, ReasonBadOrigin},
		{Page{Origin: "https://shop.example.com", Framed: true, Ancestors: []string{"https://evil.test"}}, ReasonFramed},
		{Page{Origin: "https://shop.example.com", Framed: true, Ancestors: []string{"https://shop.example.com", "https://evil.test"}}, ReasonFramed},
		{Page{Origin: "https://shop.example.com", Framed: true}, ReasonFramedBlind},
	} {
		r := Check(tc.p, app)
		if r == nil {
			t.Errorf("Check(%+v) allowed", tc.p)
			continue
		}
		if r.Reason != tc.want || !errors.Is(r.Err, &wire.Error{Code: wire.CodeOriginNotAllowed}) || r.Err.Message == "" {
			t.Errorf("Check(%+v) = %s %v, want %s origin_not_allowed", tc.p, r.Reason, r.Err, tc.want)
		}
	}
}

func TestCheckScheme_HTTPOnlyOnLocalhost(t *testing.T) {
	for o, ok := range map[string]bool{
		"https://a.example":        true,
		"http://localhost:8080":    true,
		"http://app.localhost:80":  true,
		"http://LOCALHOST.":        true,
		"http://127.0.0.1:3000":    false,
		"http://localhost.evil.io": false,
		"http://evil-localhost":    false,
		"ftp://localhost":          false,
	} {
		if got := CheckScheme(o) == nil; got != ok {
			t.Errorf("CheckScheme(%q) allowed=%v, want %v", o, got, ok)
		}
	}
}

func TestParse_NormalisesLikeBrowsers(t *testing.T) {
	for in, want := range map[string]string{
		"HTTPS://Shop.Example.com:443/": "https://shop.example.com",
		"http://localhost:80":           "http://localhost",
		"http://[::1]:3000":             "http://[::1]:3000",
		"https://a.example:8443":        "https://a.example:8443",
	} {
		o, ok := Parse(in)
		if !ok || o.String() != want {
			t.Errorf("Parse(%q) = %v %v, want %q", in, o, ok, want)
		}
	}
	for _, in := range []string{"", "null", "https://", "https://a/b", "https://u@a", "https://a:x", "//a", "https://[::1"} {
		if _, ok := Parse(in); ok {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
