// Package labtest builds the network lab the diagnosis is tested in, with
// the faults each classification is checked against. It is for tests only.
//
//	client ── gw ── isp1 ── isp2 ─┬─ web1 (HTTP :80)
//	(test)           │            └─ web2 (HTTP :80)
//	                 └─ resolver (DNS :53, udp and tcp)
//
// Targets are web1 and web2 (pinged; web1 is traced), the resolver answers
// every A query with web1's address, and each web host serves a page.
package labtest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

// DNSName is the name the lab's resolver answers (any name works).
const DNSName = "www.lab.example"

// Lab is the diagnosis lab.
type Lab struct {
	t    testing.TB
	Path *netlab.Path
	// Gateway is the gateway's client-facing address.
	Gateway string
	// Targets are web1's and web2's addresses.
	Targets []string
	// Resolver is the DNS server's address.
	Resolver string
	// URLs are web1's and web2's sites.
	URLs []string
	// Hops are the addresses a trace to Targets[0] reports, gw first.
	Hops []string

	web      []*netlab.Node
	resolver *netlab.Node
}

// New builds the lab and starts its servers; t.Cleanup stops them.
func New(t testing.TB) *Lab {
	t.Helper()
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 2, Hosts: []string{"web1", "web2"}, ISPHosts: []string{"resolver"}})
	l := &Lab{t: t, Path: p, Gateway: p.LAN.A.IPv4.String(), resolver: p.Host("resolver")}
	for _, name := range []string{"web1", "web2"} {
		n := p.Host(name)
		l.web = append(l.web, n)
		l.Targets = append(l.Targets, n.IPv4().String())
		l.URLs = append(l.URLs, "http://"+n.IPv4().String()+"/")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("hello from " + name + "\n"))
		}), ReadHeaderTimeout: 5 * time.Second}
		ln := n.Listen("tcp", ":80")
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ln) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			<-done
		})
	}
	for _, h := range p.Hops(l.web[0]) {
		l.Hops = append(l.Hops, h.IPv4.String())
	}
	l.Resolver = l.resolver.IPv4().String()
	answer := l.Targets[0]
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				rr, _ := dns.NewRR(qq.Name + " 60 IN A " + answer)
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})
	pc := l.resolver.ListenPacket("udp", ":53")
	ln := l.resolver.Listen("tcp", ":53")
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // runs after the Shutdowns registered below
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { _ = s.ActivateAndServe() })
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return l
}

// Args are the `isp-checker run` flags that point every check at the lab.
func (l *Lab) Args() []string {
	args := []string{"--gateway", l.Gateway, "--dns-server", l.Resolver, "--dns-name", DNSName}
	for _, t := range l.Targets {
		args = append(args, "--target", t)
	}
	for _, u := range l.URLs {
		args = append(args, "--http-url", u)
	}
	return args
}

// LANLoss drops ratio of the packets the gateway sends to the client (so
// replies from the gateway and from everything beyond it). It returns the
// undo.
func (l *Lab) LANLoss(ratio float64) func() {
	r := l.Path.LAN.A.Loss(ratio)
	return func() { l.must(r.Remove()) }
}

// ISPLoss drops ratio of the packets isp1 sends to isp2: loss that starts
// at hop 3 (isp2) of a trace to either web host, with a clean gateway and a
// clean path to the resolver.
func (l *Lab) ISPLoss(ratio float64) func() {
	r := l.Path.Uplinks[1].A.Loss(ratio)
	return func() { l.must(r.Remove()) }
}

// StopDNS makes the resolver silent (udp and tcp port 53 dropped).
func (l *Lab) StopDNS() func() {
	u := l.resolver.Block("udp", 53)
	t := l.resolver.Block("tcp", 53)
	return func() { l.must(u.Remove()); l.must(t.Remove()) }
}

// StopSite makes web site i refuse connections (TCP reset on port 80),
// while its host still answers ping.
func (l *Lab) StopSite(i int) func() {
	r := l.web[i].Reject("tcp", 80)
	return func() { l.must(r.Remove()) }
}

// HopAfterGateway returns the trace address of hop ttl (1 is the gateway).
func (l *Lab) HopAfterGateway(ttl int) string { return l.Hops[ttl-1] }

func (l *Lab) must(err error) {
	if err != nil && !strings.Contains(err.Error(), "No such file") {
		l.t.Fatalf("labtest: %v", err)
	}
}
