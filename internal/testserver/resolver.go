package testserver

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Zone answers A and AAAA queries for the names it holds (lower case, no
// trailing dot) and counts every query, so a test can tell a name that was
// never looked up from one that was.
type Zone struct {
	records map[string][]netip.Addr
	queries atomic.Int64
	addr    string
}

// Addr is the server's address, ip:port (UDP and TCP), for code that is
// given a DNS server rather than a resolver.
func (z *Zone) Addr() string { return z.addr }

// Queries is how many queries the server has answered.
func (z *Zone) Queries() int64 { return z.queries.Load() }

func (z *Zone) serve(w dns.ResponseWriter, q *dns.Msg) {
	z.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	qq := q.Question[0]
	addrs, ok := z.records[strings.TrimSuffix(strings.ToLower(qq.Name), ".")]
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: qq.Name, Class: dns.ClassINET, Ttl: 60}
		switch {
		case qq.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case qq.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	_ = w.WriteMsg(m)
}

// Resolver starts an in-process miekg/dns server on loopback (UDP and TCP,
// one port) holding records, and returns it with a resolver that sends every
// query to it and nowhere else: never the machine's own resolver. The server
// stops when the test ends.
func Resolver(t testing.TB, records map[string][]netip.Addr) (*net.Resolver, *Zone) {
	t.Helper()
	z := &Zone{records: map[string][]netip.Addr{}}
	for name, addrs := range records {
		z.records[strings.TrimSuffix(strings.ToLower(name), ".")] = addrs
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", pc.LocalAddr().String())
	if err != nil {
		_ = pc.Close()
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	z.addr = addr
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: dns.HandlerFunc(z.serve)}, {Listener: ln, Handler: dns.HandlerFunc(z.serve)}} {
		ServeDNS(t, srv)
	}
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	return r, z
}

// ServeDNS serves srv (its PacketConn or Listener already bound) until the
// test ends, and returns once it is serving.
func ServeDNS(t testing.TB, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("DNS server did not start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.ShutdownContext(ctx)
		if err := <-done; err != nil {
			t.Logf("DNS server: %v", err)
		}
	})
}
