package clientip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClient_OnlyTrustedPeersForwardingHeadersAreBelieved(t *testing.T) {
	r, err := Parse([]string{"10.0.0.0/8", "192.168.1.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		peer      string
		forwarded []string
		xff       []string
		want      string
	}{
		{"untrusted peer, spoofed XFF ignored", "203.0.113.9", nil, []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer, spoofed Forwarded ignored", "203.0.113.9", []string{"for=1.2.3.4"}, nil, "203.0.113.9"},
		{"trusted peer, no header: the peer", "10.1.2.3", nil, nil, "10.1.2.3"},
		{"trusted peer, one hop", "10.1.2.3", nil, []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted peer, client-written prefix skipped", "10.1.2.3", nil, []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"two trusted proxies in a row", "10.1.2.3", nil, []string{"6.6.6.6, 198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"several XFF headers joined in order", "10.1.2.3", nil, []string{"6.6.6.6", "198.51.100.7, 192.168.1.1"}, "198.51.100.7"},
		{"only trusted hops: the leftmost", "10.1.2.3", nil, []string{"10.5.5.5, 10.6.6.6"}, "10.5.5.5"},
		{"garbage hop stops the walk", "10.1.2.3", nil, []string{"1.1.1.1, nonsense, 10.6.6.6"}, "10.6.6.6"},
		{"Forwarded wins over XFF", "10.1.2.3", []string{`for=6.6.6.6, for="198.51.100.8:4711"`}, []string{"198.51.100.7"}, "198.51.100.8"},
		{"Forwarded with IPv6 and params", "10.1.2.3", []string{`for="[2001:db8::1]:443";proto=https;by=10.1.2.3`}, nil, "2001:db8::1"},
		{"Forwarded obfuscated hop", "10.1.2.3", []string{"for=_hidden"}, nil, "10.1.2.3"},
		{"IPv4-mapped peer is trusted", "::ffff:10.1.2.3", nil, []string{"198.51.100.7"}, "198.51.100.7"},
		{"IPv6 trusted proxy", "fd00::5", nil, []string{"2001:db8::2"}, "2001:db8::2"},
		{"XFF with port", "10.1.2.3", nil, []string{"198.51.100.7:5555"}, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Client(netip.MustParseAddr(tc.peer), tc.forwarded, tc.xff)
			if got.String() != tc.want {
				t.Fatalf("client %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClient_NoTrustedProxies_PeerAlways(t *testing.T) {
	var r *Resolver
	for _, peer := range []string{"127.0.0.1", "10.0.0.1", "::1"} {
		if got := r.Client(netip.MustParseAddr(peer), []string{"for=1.2.3.4"}, []string{"1.2.3.4"}); got.String() != peer {
			t.Errorf("peer %s: client %s", peer, got)
		}
	}
}

func TestParse_ReportsEveryBadEntry(t *testing.T) {
	_, err := Parse([]string{"10.0.0.0/8", "nope", "300.1.1.1/8"})
	if err == nil {
		t.Fatal("bad CIDRs accepted")
	}
	for _, s := range []string{"nope", "300.1.1.1/8"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
}
