package clientip

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

// headers is a request's headers as Client reads them.
func headers(h map[string][]string) func(string) []string {
	return func(name string) []string { return h[name] }
}

func TestClient_OnlyTrustedPeersForwardingHeaderIsBelieved(t *testing.T) {
	cidrs := []string{"10.0.0.0/8", "192.168.1.1", "fd00::/8"}
	for _, tc := range []struct {
		name   string
		header string
		peer   string
		values []string
		want   string
	}{
		{"untrusted peer, spoofed XFF ignored", XForwardedFor, "203.0.113.9", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer, spoofed Forwarded ignored", Forwarded, "203.0.113.9", []string{"for=1.2.3.4"}, "203.0.113.9"},
		{"trusted peer, no header: the peer", XForwardedFor, "10.1.2.3", nil, "10.1.2.3"},
		{"trusted peer, one hop", XForwardedFor, "10.1.2.3", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted peer, client-written prefix skipped", XForwardedFor, "10.1.2.3", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"two trusted proxies in a row", XForwardedFor, "10.1.2.3", []string{"6.6.6.6, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"several XFF headers joined in order", XForwardedFor, "10.1.2.3", []string{"6.6.6.6", "198.51.100.7, 192.168.1.1"}, "198.51.100.7"},
		{"only trusted hops: the leftmost", XForwardedFor, "10.1.2.3", []string{"10.5.5.5, 10.6.6.6"}, "10.5.5.5"},
		{"garbage hop stops the walk", XForwardedFor, "10.1.2.3", []string{"1.1.1.1, nonsense, 10.6.6.6"}, "10.6.6.6"},
		{"Forwarded, client-written prefix skipped", Forwarded, "10.1.2.3", []string{`for=6.6.6.6, for="198.51.100.8:4711"`}, "198.51.100.8"},
		{"Forwarded with IPv6 and params", Forwarded, "10.1.2.3", []string{`for="[2001:db8::1]:443";proto=https;by=10.1.2.3`}, "2001:db8::1"},
		{"Forwarded obfuscated hop", Forwarded, "10.1.2.3", []string{"for=_hidden"}, "10.1.2.3"},
		{"Forwarded element without for=", Forwarded, "10.1.2.3", []string{"for=6.6.6.6, proto=https"}, "10.1.2.3"},
		{"IPv4-mapped peer is trusted", XForwardedFor, "::ffff:10.1.2.3", []string{"198.51.100.7"}, "198.51.100.7"},
		{"IPv6 trusted proxy", XForwardedFor, "fd00::5", []string{"2001:db8::2"}, "2001:db8::2"},
		{"XFF with port", XForwardedFor, "10.1.2.3", []string{"198.51.100.7:5555"}, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.header, cidrs)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Client(netip.MustParseAddr(tc.peer), headers(map[string][]string{r.Header(): tc.values})); got.String() != tc.want {
				t.Fatalf("client %s, want %s", got, tc.want)
			}
		})
	}
}

// A proxy appends to the header it writes and passes any other through as the client
// sent it, so the resolver reads the named header and nothing else.
func TestParse_HeaderNamesTheOnlyHeaderRead(t *testing.T) {
	for _, tc := range []struct{ given, want string }{
		{"", "x-forwarded-for"},
		{"x-forwarded-for", "x-forwarded-for"},
		{"X-Forwarded-For", "x-forwarded-for"},
		{"Forwarded", "forwarded"},
	} {
		r, err := Parse(tc.given, nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.given, err)
		}
		if got := r.Header(); got != tc.want {
			t.Errorf("Parse(%q).Header() = %q, want %q", tc.given, got, tc.want)
		}
	}
	if got := (*Resolver)(nil).Header(); got != XForwardedFor {
		t.Errorf("nil resolver reads %q", got)
	}
}

func TestClient_NoTrustedProxies_PeerAlways(t *testing.T) {
	var r *Resolver
	for _, peer := range []string{"127.0.0.1", "10.0.0.1", "::1"} {
		if got := r.Client(netip.MustParseAddr(peer), headers(map[string][]string{XForwardedFor: {"1.2.3.4"}})); got.String() != peer {
			t.Errorf("peer %s: client %s", peer, got)
		}
	}
}

// A trusted proxy that sends the header not named probably writes that one, and passes a
// client's own copy of the named one through: the log says so once, with the peer and no
// header's value, however many requests show it.
func TestClient_TrustedProxySendsOnlyTheOtherHeader_WarnsOnce(t *testing.T) {
	for _, tc := range []struct {
		name, header, peer string
		request            map[string][]string
		want               []string // what the one warning says; nil: no warning
	}{
		{"named header present", XForwardedFor, "10.0.0.5", map[string][]string{XForwardedFor: {"198.51.100.7"}}, nil},
		{"both present", XForwardedFor, "10.0.0.5", map[string][]string{XForwardedFor: {"198.51.100.7"}, Forwarded: {"for=198.51.100.7"}}, nil},
		{"neither present", XForwardedFor, "10.0.0.5", nil, nil},
		{"only Forwarded", XForwardedFor, "10.0.0.5", map[string][]string{Forwarded: {"for=198.51.100.7"}},
			[]string{"10.0.0.5", "carry Forwarded but not X-Forwarded-For", "--client-ip-header forwarded"}},
		{"only X-Forwarded-For", Forwarded, "10.0.0.5", map[string][]string{XForwardedFor: {"198.51.100.7"}},
			[]string{"10.0.0.5", "carry X-Forwarded-For but not Forwarded", "--client-ip-header x-forwarded-for"}},
		{"untrusted peer", XForwardedFor, "203.0.113.9", map[string][]string{Forwarded: {"for=198.51.100.7"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.header, []string{"10.0.0.0/8"})
			if err != nil {
				t.Fatal(err)
			}
			var logs strings.Builder
			r.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			for range 3 {
				r.Client(netip.MustParseAddr(tc.peer), headers(tc.request))
			}
			out := logs.String()
			if n := strings.Count(out, "level=WARN"); n != min(len(tc.want), 1) {
				t.Fatalf("%d warnings after 3 requests, want %d:\n%s", n, min(len(tc.want), 1), out)
			}
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("warning does not say %q:\n%s", s, out)
				}
			}
			if strings.Contains(out, "198.51.100.7") {
				t.Errorf("the log repeats a header's value:\n%s", out)
			}
		})
	}
}

func TestParse_ReportsEveryBadEntry(t *testing.T) {
	_, err := Parse("x-real-ip", []string{"10.0.0.0/8", "nope", "300.1.1.1/8"})
	if err == nil {
		t.Fatal("bad CIDRs accepted")
	}
	for _, s := range []string{"nope", "300.1.1.1/8", "--client-ip-header \"x-real-ip\""} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}

// An IPv6 client is usually handed a /64 and can send from any address in it, so its
// attempts count against the /64.
func TestNetwork_IPv4AloneIPv6ItsSlash64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"198.51.100.7", "198.51.100.7"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		// IPv4 clients behind NAT64, SIIT or Teredo: the IPv4 address, not one shared /64.
		{"64:ff9b::1.2.3.4", "1.2.3.4"},
		{"64:ff9b::5.6.7.8", "5.6.7.8"},
		{"::ffff:0:1.2.3.4", "1.2.3.4"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"}, // RFC 4380's example client
		{"2001:db8::1", "2001:db8::/64"},
		{"::1", "::/64"},
		{"not an address", "not an address"},
	} {
		if got := Network(tc.ip); got != tc.want {
			t.Errorf("Network(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
