// Package guard decides, in the page, whether the SDK may run here: the page's origin must
// be one the app registered (the verifier's session answer lists them, so a proxy that
// rewrites Origin headers on the way is still caught), the page must not be framed by
// another origin (clickjacking, and look-alike pages that frame the real one), and plain
// http is refused except on localhost and *.localhost, where browsers treat it as secure.
//
// What this stops: a proxy that serves the real page from a look-alike origin. What it
// cannot stop: a phishing kit that rewrites the SDK itself. Only passkeys are bound to the
// origin by the browser, which is why the SDK nudges people toward them.
package guard

import (
	"strings"

	"github.com/twofold-dev/twofold/internal/wire"
)

// Page is what the page knows about where it runs.
type Page struct {
	Origin string // location.origin
	Framed bool   // window.top !== window
	// Ancestors are the origins of the frames above this one, nearest first
	// (location.ancestorOrigins where the browser has it, else the JS loader's walk up the
	// frames). Empty while framed means they could not be learnt.
	Ancestors []string
}

// Reason names why a page was refused; it goes into the report to the verifier.
type Reason string

const (
	ReasonBadOrigin   Reason = "bad_origin"     // not a scheme://host[:port] origin (e.g. "null", file:)
	ReasonInsecure    Reason = "insecure"       // http: on a host other than localhost
	ReasonNotListed   Reason = "not_listed"     // not one of the app's origins
	ReasonFramed      Reason = "framed"         // framed by another origin
	ReasonFramedBlind Reason = "framed_unknown" // framed, and the framing origin cannot be learnt
)

// Refusal is a refused page: the API error the SDK rejects with, and why.
type Refusal struct {
	Reason Reason
	Err    *wire.Error
}

func refuse(r Reason, msg string) *Refusal {
	return &Refusal{Reason: r, Err: wire.NewError(wire.CodeOriginNotAllowed, msg)}
}

// CheckScheme refuses what no app may register: a page that is not on an https origin, or
// on http://localhost or http://*.localhost. It runs before anything is sent.
func CheckScheme(origin string) *Refusal {
	o, ok := Parse(origin)
	if !ok {
		return refuse(ReasonBadOrigin, "This page has no web origin the verifier can trust. Open the app from its real https:// address.")
	}
	if o.Scheme == "http" && !IsLocalhost(o.Host) {
		return refuse(ReasonInsecure, "This page is served over plain http, so codes could be read on the way. Open the app from its https:// address.")
	}
	return nil
}

// Check runs every rule against the app's origins.
func Check(p Page, allowed []string) *Refusal {
	if r := CheckScheme(p.Origin); r != nil {
		return r
	}
	self, _ := Parse(p.Origin)
	listed := false
	for _, a := range allowed {
		if o, ok := Parse(a); ok && o == self {
			listed = true
			break
		}
	}
	if !listed {
		return refuse(ReasonNotListed, "This page is not on an address this app registered with its verifier. Open the app from its real address, not through a link or a proxy.")
	}
	if !p.Framed {
		return nil
	}
	if len(p.Ancestors) == 0 {
		return refuse(ReasonFramedBlind, "This page is shown inside another page whose address cannot be checked. Open the app directly.")
	}
	for _, a := range p.Ancestors {
		if o, ok := Parse(a); !ok || o != self {
			return refuse(ReasonFramed, "This page is shown inside another site ("+a+"). Open the app directly from its own address.")
		}
	}
	return nil
}

// Origin is a parsed, normalised web origin.
type Origin struct {
	Scheme string // "https" or "http"
	Host   string // lower case, IPv6 in brackets
	Port   string // empty for the scheme's default
}

func (o Origin) String() string {
	s := o.Scheme + "://" + o.Host
	if o.Port != "" {
		s += ":" + o.Port
	}
	return s
}

// Parse reads scheme://host[:port] with nothing after it (a trailing slash is tolerated),
// lower-casing the scheme and host and dropping a default port, as browsers serialise
// origins. Only http and https are origins an app can register.
func Parse(s string) (Origin, bool) {
	s = strings.TrimSuffix(s, "/")
	i := strings.Index(s, "://")
	if i <= 0 {
		return Origin{}, false
	}
	o := Origin{Scheme: lower(s[:i])}
	if o.Scheme != "http" && o.Scheme != "https" {
		return Origin{}, false
	}
	hp := s[i+3:]
	if hp == "" || strings.ContainsAny(hp, "/?#@ \\") {
		return Origin{}, false
	}
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return Origin{}, false
		}
		host, port = hp[:end+1], strings.TrimPrefix(hp[end+1:], ":")
		if hp[end+1:] != "" && !strings.HasPrefix(hp[end+1:], ":") {
			return Origin{}, false
		}
	} else if c := strings.LastIndexByte(hp, ':'); c >= 0 {
		host, port = hp[:c], hp[c+1:]
	}
	if host == "" {
		return Origin{}, false
	}
	for j := 0; j < len(port); j++ {
		if port[j] < '0' || port[j] > '9' {
			return Origin{}, false
		}
	}
	port = strings.TrimLeft(port, "0")
	if (o.Scheme == "http" && port == "80") || (o.Scheme == "https" && port == "443") {
		port = ""
	}
	o.Host, o.Port = lower(host), port
	return o, true
}

// IsLocalhost reports the host names browsers resolve to loopback themselves and treat as
// secure contexts over http.
func IsLocalhost(host string) bool {
	host = strings.TrimSuffix(lower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// lower lower-cases ASCII only: browsers serialise origins in ASCII (IDNs as punycode), and
// strings.ToLower would pull the Unicode case tables into the wasm.
func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
