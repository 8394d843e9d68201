// Package clientip decides which address a request comes from when proxies stand in front
// of the verifier. The forwarding header is believed only when the peer is a proxy the
// operator named; then the client is the rightmost hop that is not one of those proxies,
// because everything left of it was written by someone the operator does not trust.
//
// Only the one header the operator's proxy writes is read. A proxy appends to that header
// and passes every other one through untouched, so reading a second header would let a
// client choose the address its attempts are counted under. The same holds when the
// header named is not the one the proxy writes, so requests that suggest it are logged.
package clientip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
)

// The forwarding headers a proxy may write, as --client-ip-header names them.
const (
	XForwardedFor = "x-forwarded-for" // nginx, HAProxy, AWS ALB, Cloudflare, Traefik: the default
	Forwarded     = "forwarded"       // RFC 7239
)

// spelled is each header as a proxy's documentation spells it.
var spelled = map[string]string{XForwardedFor: "X-Forwarded-For", Forwarded: "Forwarded"}

// Resolver holds the trusted proxies and the header they write. The zero value trusts no
// one: the peer address is the client address and forwarding headers are ignored.
type Resolver struct {
	// Logger hears, once, of a request from a trusted proxy that carries the other
	// forwarding header but not Header(); nil means slog.Default().
	Logger  *slog.Logger
	trusted []netip.Prefix
	header  string
	warned  atomic.Bool
}

// Parse builds a Resolver from the header the proxies write (XForwardedFor when empty)
// and their CIDRs (a bare address means just that address). Every bad entry is reported
// at once.
func Parse(header string, cidrs []string) (*Resolver, error) {
	r := &Resolver{header: XForwardedFor}
	var errs []error
	switch strings.ToLower(strings.TrimSpace(header)) {
	case "", XForwardedFor:
	case Forwarded:
		r.header = Forwarded
	default:
		errs = append(errs, fmt.Errorf("--client-ip-header %q must be %s or %s", header, XForwardedFor, Forwarded))
	}
	var bad []string
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				bad = append(bad, s)
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		r.trusted = append(r.trusted, netip.PrefixFrom(p.Addr().Unmap(), unmapBits(p)).Masked())
	}
	if len(bad) > 0 {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %q is not a CIDR or an address", strings.Join(bad, `", "`)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Header is the name of the one forwarding header the trusted proxies write.
func (r *Resolver) Header() string {
	if r == nil || r.header == "" {
		return XForwardedFor
	}
	return r.header
}

// unmapBits keeps a ::ffff:a.b.c.d/n prefix meaningful once its address is unmapped.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(0, p.Bits()-96)
	}
	return p.Bits()
}

// Trusts reports whether a is one of the trusted proxies.
func (r *Resolver) Trusts(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client returns the client address of a request that arrived from peer; header gives
// the values of a request header, in the order they came. A hop that is not an address
// (an obfuscated identifier, "unknown", garbage) stops the walk: the last address before
// it is the client, since nothing beyond it can be checked.
func (r *Resolver) Client(peer netip.Addr, header func(name string) []string) netip.Addr {
	peer = peer.Unmap()
	if !r.Trusts(peer) {
		return peer
	}
	values := header(r.Header())
	if len(values) == 0 {
		r.warnOtherHeader(peer, header)
	}
	var hops []hop
	if r.Header() == Forwarded {
		hops = forwardedFor(values)
	} else {
		hops = xffHops(values)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := hops[i].addr, hops[i].ok
		if !ok {
			return client
		}
		client = a
		if !r.Trusts(a) {
			return a
		}
	}
	return client
}

// warnOtherHeader logs, once, that a trusted proxy sent the header not named: the proxy
// probably writes that one, and then passes a client's own Header() through unchanged.
// Only the peer is logged, never what either header says.
func (r *Resolver) warnOtherHeader(peer netip.Addr, header func(name string) []string) {
	other := Forwarded
	if r.Header() == Forwarded {
		other = XForwardedFor
	}
	if r.warned.Load() || len(header(other)) == 0 || !r.warned.CompareAndSwap(false, true) {
		return
	}
	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.Warn(fmt.Sprintf("requests from trusted proxy %s carry %s but not %s: set --client-ip-header %s if that is what your proxy writes, or a client can choose its own address by sending %s itself",
		peer, spelled[other], spelled[r.Header()], other, spelled[r.Header()]), "peer", peer.String())
}

// Network is the address block one client is taken to control, for counting its attempts:
// an IPv4 address alone, also one that a NAT64, SIIT or Teredo address carries; else an
// IPv6 address's /64. A single IPv6 host is usually handed a whole /64, so counting per
// address would give it 2^64 fresh budgets. Anything that is not an address is returned
// as it is.
func Network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	a = a.WithZone("")
	if v4, ok := embeddedIPv4(a); ok {
		return v4.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// Prefixes whose addresses carry an IPv4 client in their low 32 bits: behind a NAT64
// gateway (or SIIT) every IPv4 client arrives from the one /64 of its prefix, and would
// otherwise share a single budget with every other.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052, the well-known prefix
	translated = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765, IPv4-translated
	teredo     = netip.MustParsePrefix("2001::/32")       // RFC 4380: the client, inverted
)

// embeddedIPv4 is the IPv4 client an address of those prefixes stands for.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	var v4 [4]byte
	copy(v4[:], b[12:])
	switch {
	case nat64.Contains(a), translated.Contains(a):
		return netip.AddrFrom4(v4), true
	case teredo.Contains(a):
		for i := range v4 {
			v4[i] ^= 0xff
		}
		return netip.AddrFrom4(v4), true
	}
	return netip.Addr{}, false
}

type hop struct {
	addr netip.Addr
	ok   bool
}

func parseHop(s string) hop {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if s == "" {
		return hop{}
	}
	if strings.HasPrefix(s, "[") { // [v6] or [v6]:port
		if end := strings.IndexByte(s, ']'); end > 0 {
			s = s[1:end]
		}
	} else if strings.Count(s, ":") == 1 { // v4:port
		s = s[:strings.IndexByte(s, ':')]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return hop{}
	}
	return hop{addr: a.Unmap(), ok: true}
}

func xffHops(values []string) []hop {
	var hops []hop
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			hops = append(hops, parseHop(part))
		}
	}
	return hops
}

// forwardedFor extracts the for= parameters of RFC 7239 Forwarded values, one per
// forwarded-element.
func forwardedFor(values []string) []hop {
	var hops []hop
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			found := false
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					hops = append(hops, parseHop(val))
					found = true
					break
				}
			}
			if !found && strings.TrimSpace(elem) != "" {
				hops = append(hops, hop{}) // an element without for= is a hop we cannot place
			}
		}
	}
	return hops
}
