package prober

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/isp-checker/isp-checker/config"
)

// systemLookups counts DNS exchanges the package's tests tried through the
// resolver TestMain installs instead of the system's: the suite must not
// depend on, or send anything to, the machine's resolver. /etc/hosts is
// still read (localhost), which sends nothing.
var systemLookups atomic.Int64

// noSystemResolver refuses every DNS exchange and counts it, so a test that
// forgets probeTestResolver fails the package instead of asking the host.
func noSystemResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(_ context.Context, network, address string) (net.Conn, error) {
		systemLookups.Add(1)
		return nil, fmt.Errorf("tests may not use the system resolver (%s %s): use probeTestResolver", network, address)
	}}
}

// resolverGuard fails the run when a test used the system resolver.
type resolverGuard struct{ m *testing.M }

func (g resolverGuard) Run() int {
	code := g.m.Run()
	if n := systemLookups.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: tests tried %d DNS exchanges with the system resolver; start one with probeTestResolver\n", n)
		return 1
	}
	return code
}

// probeTestResolver makes this test's probes resolve names through an
// in-process miekg/dns server on loopback that answers A and AAAA queries
// for names and NXDOMAIN for every other name.
func probeTestResolver(t *testing.T, names map[string][]netip.Addr) {
	t.Helper()
	zone := map[string][]netip.Addr{}
	for n, a := range names {
		zone[dns.Fqdn(strings.ToLower(n))] = a
	}
	addr := startDNSServer(t, "udp", func(q *dns.Msg, _ string) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(q)
		addrs, ok := zone[strings.ToLower(q.Question[0].Name)]
		if !ok {
			m.Rcode = dns.RcodeNameError
			return m
		}
		for _, a := range addrs {
			hdr := dns.RR_Header{Name: q.Question[0].Name, Class: dns.ClassINET, Ttl: 60}
			switch {
			case a.Is4() && q.Question[0].Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
			case a.Is6() && q.Question[0].Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
			}
		}
		return m
	})
	var d net.Dialer
	old := Resolver
	Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr) // udp, or tcp for a truncated answer
	}}
	t.Cleanup(func() { Resolver = old })
}

// TestResolveTargetThroughDNS: address family preference, fallback and the
// target policy on the resolved address, against a real DNS server.
func TestResolveTargetThroughDNS(t *testing.T) {
	probeTestResolver(t, map[string][]netip.Addr{
		"dual.test":   {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"v4only.test": {netip.MustParseAddr("127.0.0.2")},
		"meta.test":   {netip.MustParseAddr("169.254.169.254")},
	})
	policy := NewPolicy(config.DefaultTargetPolicy(), nil)
	tests := []struct {
		host, preferred string
		fallback        bool
		ip, err         string
	}{
		{host: "dual.test", ip: "::1"},
		{host: "DUAL.test", preferred: "ip4", ip: "127.0.0.1"},
		{host: "v4only.test", fallback: true, ip: "127.0.0.2"},
		{host: "v4only.test", err: "no ip6 address (ip_protocol_fallback is off)"},
		{host: "meta.test", preferred: "ip4", err: "target_policy"},
		{host: "name.invalid", fallback: true, err: "no such host"},
	}
	for _, tc := range tests {
		var c Common
		addr, err := ResolveTarget(context.Background(), &c, tc.host, tc.preferred, tc.fallback, policy, slog.New(slog.DiscardHandler))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %s: %v, %v; want error %q", tc.host, tc.preferred, addr, err, tc.err)
		case tc.err == "" && (err != nil || addr.String() != tc.ip || c.IPAddr != tc.ip):
			t.Errorf("%s %s: %v (recorded %q), %v; want %s", tc.host, tc.preferred, addr, c.IPAddr, err, tc.ip)
		}
	}
}
