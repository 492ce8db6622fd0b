// Package labtest builds the network lab the diagnosis is tested in, and
// the faults of the scenario matrix as small named steps. It is for tests
// only.
//
//	client ── gw ── isp1 ══ isp2 ─┬─ web1 (HTTP :80, HTTPS :443 with a wrong certificate)
//	(test)    │      │            └─ web2 (HTTP :80, speed test :8080)
//	          │      ├═ resolver  (DNS :53, udp and tcp)
//	          │      └═ resolver2 (DNS :53)
//	          └─ captive portal (HTTP :8080, idle until CaptivePortal)
//
// Targets are web1 and web2 (pinged; web1 is traced). The resolvers serve
// the zone lab.example (every name in it is web1) and answer NXDOMAIN for
// anything else, as an honest recursive resolver would for a name that
// does not exist. ══ are relay links (netlab's user-space delay line), so
// a step can add delay or jitter to them; the others are veth pairs.
package labtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/netlab"
	"github.com/isp-checker/isp-checker/speedtest"
)

// DNSName is a name the lab's resolvers answer (any name in Zone works).
const (
	Zone    = "lab.example."
	DNSName = "www.lab.example"
)

// LargePath is a page of LargeBytes on web1: more than one full-size TCP
// segment, so it stalls behind a path-MTU black hole.
const (
	LargePath  = "/large"
	LargeBytes = 64 << 10
)

// Lab is the diagnosis lab.
type Lab struct {
	t    testing.TB
	Path *netlab.Path
	// Gateway is the gateway's client-facing address.
	Gateway string
	// Targets are web1's and web2's addresses.
	Targets []string
	// Resolvers are the DNS servers' addresses.
	Resolvers []string
	// URLs are web1's and web2's sites (plain HTTP).
	URLs []string
	// TLSURL is web1's HTTPS site, whose certificate is not valid for it.
	TLSURL string
	// LargeURL is web1's large page.
	LargeURL string
	// SpeedURL is web2's speed-test download.
	SpeedURL string
	// PortalURL is the captive portal's login page.
	PortalURL string
	// Hops are the addresses a trace to Targets[0] reports, gw first.
	Hops []string

	web           []*netlab.Node
	resolvers     []*netlab.Node
	resolverLinks []*netlab.Link
	dns           []*resolver
}

// New builds the lab and starts its servers; t.Cleanup stops them.
func New(t testing.TB) *Lab {
	t.Helper()
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 2, Hosts: []string{"web1", "web2"}, Core: netlab.LinkOpts{Relay: true}})
	l := &Lab{t: t, Path: p, Gateway: p.LAN.A.IPv4.String()}
	for _, name := range []string{"resolver", "resolver2"} {
		n := p.Node(name)
		l.resolverLinks = append(l.resolverLinks, p.Link(p.ISP[0], n, netlab.LinkOpts{Relay: true}))
		l.resolvers = append(l.resolvers, n)
		l.Resolvers = append(l.Resolvers, n.IPv4().String())
	}
	p.AutoRoute()
	for _, name := range []string{"web1", "web2"} {
		n := p.Host(name)
		l.web = append(l.web, n)
		l.Targets = append(l.Targets, n.IPv4().String())
		l.URLs = append(l.URLs, "http://"+n.IPv4().String()+"/")
		l.serve(n.Listen("tcp", ":80"), webHandler(name))
	}
	for _, h := range p.Hops(l.web[0]) {
		l.Hops = append(l.Hops, h.IPv4.String())
	}
	l.LargeURL = l.URLs[0] + strings.TrimPrefix(LargePath, "/")
	l.startTLS()
	l.startSpeedTest()
	l.startPortal()
	for _, n := range l.resolvers {
		l.dns = append(l.dns, l.startResolver(n))
	}
	return l
}

func webHandler(name string) http.Handler {
	large := strings.Repeat("x", LargeBytes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == LargePath {
			_, _ = w.Write([]byte(large))
			return
		}
		_, _ = w.Write([]byte("hello from " + name + "\n"))
	})
}

// serve runs h on ln until the lab ends.
func (l *Lab) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	l.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
}

// startTLS serves HTTPS on web1 with httptest's certificate: issued by an
// authority nobody trusts, for names that are not web1's.
func (l *Lab) startTLS() {
	s := httptest.NewUnstartedServer(webHandler("web1"))
	_ = s.Listener.Close() // replaced by a listener in web1
	s.Listener = l.web[0].Listen("tcp", ":443")
	s.StartTLS()
	l.t.Cleanup(s.Close)
	l.TLSURL = "https://" + l.Targets[0] + "/"
}

// startSpeedTest serves isp-checker's speed-test endpoints on web2:8080
// from a socket with cubic congestion control, which fills a deep queue
// (BBR would keep it short).
func (l *Lab) startSpeedTest() {
	var ln net.Listener
	err := l.web[1].Do(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, "cubic")
			}); err != nil {
				return err
			}
			return serr
		}}
		ln, err = lc.Listen(context.Background(), "tcp", ":8080")
		return err
	})
	if err != nil {
		l.t.Fatalf("labtest: speed-test listener: %v", err)
	}
	mux := http.NewServeMux()
	for path, h := range speedtest.New(speedtest.Options{MaxBytes: 1 << 30}).Routes() {
		mux.Handle(path, h)
	}
	l.serve(ln, mux)
	l.SpeedURL = "http://" + net.JoinHostPort(l.Targets[1], "8080") + speedtest.DownloadPath
}

// startPortal serves the captive portal's pages on the gateway: every
// request is sent to the login page. CaptivePortal diverts traffic to it.
func (l *Lab) startPortal() {
	l.PortalURL = "http://" + net.JoinHostPort(l.Gateway, "8080") + "/login"
	l.serve(l.Path.Gateway.Listen("tcp", ":8080"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			_, _ = w.Write([]byte("<html><body><form>Accept the terms to use this network</form></body></html>\n"))
			return
		}
		http.Redirect(w, r, l.PortalURL, http.StatusFound)
	}))
}

// DNS modes of a lab resolver.
const (
	dnsHonest    = iota // the zone; NXDOMAIN elsewhere
	dnsAnswerAll        // every name: web1 (rewrites NXDOMAIN)
	dnsPortal           // every name: the gateway (a captive portal)
	dnsRefuse           // REFUSED
	dnsDropFirst        // drops the first query for each name, answers the rest
)

// resolver is one in-process DNS server.
type resolver struct {
	mode atomic.Int32
	mu   sync.Mutex
	seen map[string]bool
}

func (l *Lab) startResolver(n *netlab.Node) *resolver {
	r := &resolver{seen: map[string]bool{}}
	web1, gw := l.Targets[0], l.Gateway
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		mode := r.mode.Load()
		if mode == dnsRefuse {
			m.Rcode = dns.RcodeRefused
			_ = w.WriteMsg(m)
			return
		}
		for _, qq := range q.Question {
			name := strings.ToLower(qq.Name)
			if mode == dnsDropFirst && r.firstTime(name) {
				return // lost: the client's next attempt is answered
			}
			addr := web1
			switch {
			case mode == dnsPortal:
				addr = gw
			case mode != dnsAnswerAll && !dns.IsSubDomain(Zone, name):
				m.Rcode = dns.RcodeNameError
				continue
			}
			if qq.Qtype == dns.TypeA {
				rr, _ := dns.NewRR(qq.Name + " 60 IN A " + addr)
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})
	pc := n.ListenPacket("udp", ":53")
	ln := n.Listen("tcp", ":53")
	var wg sync.WaitGroup
	l.t.Cleanup(wg.Wait) // runs after the Shutdowns registered below
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { _ = s.ActivateAndServe() })
		<-started
		l.t.Cleanup(func() { _ = s.Shutdown() })
	}
	return r
}

func (r *resolver) firstTime(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := !r.seen[name]
	r.seen[name] = true
	return first
}

// setMode switches resolvers (all when none given) to a mode and returns
// the undo.
func (l *Lab) setMode(mode int32, which ...int) func() {
	if len(which) == 0 {
		which = []int{0, 1}
	}
	for _, i := range which {
		l.dns[i].mode.Store(mode)
		l.dns[i].mu.Lock()
		clear(l.dns[i].seen)
		l.dns[i].mu.Unlock()
	}
	return func() {
		for _, i := range which {
			l.dns[i].mode.Store(dnsHonest)
		}
	}
}

// Args are the `isp-checker run` flags that point every check at the lab.
func (l *Lab) Args() []string {
	args := []string{"--gateway", l.Gateway, "--dns-name", DNSName}
	for _, r := range l.Resolvers {
		args = append(args, "--dns-server", r)
	}
	for _, t := range l.Targets {
		args = append(args, "--target", t)
	}
	for _, u := range l.URLs {
		args = append(args, "--http-url", u)
	}
	return args
}

// The faults. Each returns its undo.

// LANLoss drops ratio of the packets the gateway sends to the client (so
// replies from the gateway and from everything beyond it).
func (l *Lab) LANLoss(ratio float64) func() {
	r := l.Path.LAN.A.Loss(ratio)
	return func() { l.must(r.Remove()) }
}

// ISPLoss drops ratio of the packets isp1 sends to isp2: loss that starts
// at hop 3 (isp2) of a trace to either web host, with a clean gateway and a
// clean path to the resolvers.
func (l *Lab) ISPLoss(ratio float64) func() {
	r := l.Path.Uplinks[1].A.Loss(ratio)
	return func() { l.must(r.Remove()) }
}

// ISPJitter adds a random delay of up to j (uniform) to every packet in
// each direction between isp1 and isp2, without reordering.
func (l *Lab) ISPJitter(j time.Duration) func() {
	l.Path.Uplinks[1].SetJitter(j)
	return func() { l.Path.Uplinks[1].SetJitter(0) }
}

// ISPForwardingDead makes isp1 forward nothing (it still answers for
// itself: a trace stops after hop 2).
func (l *Lab) ISPForwardingDead() func() {
	r := l.Path.ISP[0].NFT(netlab.ChainForward, "drop")
	return func() { l.must(r.Remove()) }
}

// GatewayDead is a router that is off: its client-facing interface is
// down, so the client's link has no carrier and nothing answers.
func (l *Lab) GatewayDead() func() {
	l.Path.LAN.A.Down()
	return func() { l.Path.LAN.A.Up() }
}

// LinkDown is the client's own interface down (cable out, Wi-Fi off): its
// routes are gone and every send fails with "network is unreachable".
func (l *Lab) LinkDown() func() {
	e := l.Path.LAN.On(l.Path.Client)
	e.Down()
	return func() { e.Up() }
}

// NoRoute leaves the client with its link and the gateway, but no route
// beyond it (no default route).
func (l *Lab) NoRoute() func() { return l.Path.RemoveClientRoutes() }

// UnreachableRoute gives the client `unreachable` routes to everything
// beyond the gateway, as a VPN's kill switch leaves the default route:
// the gateway answers, every other send fails at once with "no route to
// host".
func (l *Lab) UnreachableRoute() func() { return l.Path.RefuseClientRoutes("unreachable") }

// UnreachableTarget gives the client an `unreachable` route to target i
// (and so to its web site); everything else is routed.
func (l *Lab) UnreachableTarget(i int) func() {
	prefix := l.Targets[i] + "/32"
	l.Path.Client.MustRun("ip", "route", "add", "unreachable", prefix)
	return func() { l.Path.Client.MustRun("ip", "route", "del", "unreachable", prefix) }
}

// ISPHostUnreachable makes isp1 answer every packet to the web hosts with
// an ICMP host-unreachable (a router whose route to them is gone); the
// resolvers, which hang off isp1, still answer.
func (l *Lab) ISPHostUnreachable() func() {
	var rules []string
	for _, n := range l.web {
		rules = append(rules, "ip daddr "+n.IPv4().String()+" reject with icmp type host-unreachable",
			"ip6 daddr "+n.IPv6().String()+" reject with icmpv6 type addr-unreachable")
	}
	r := l.Path.ISP[0].NFT(netlab.ChainForward, rules...)
	return func() { l.must(r.Remove()) }
}

// GatewayFiltersPing makes the gateway drop echo requests to itself; it
// still forwards them.
func (l *Lab) GatewayFiltersPing() func() {
	r := l.Path.Gateway.NFT(netlab.ChainInput, "icmp type echo-request drop")
	return func() { l.must(r.Remove()) }
}

// StopDNS makes resolvers (all when none given) silent: udp and tcp port
// 53 dropped.
func (l *Lab) StopDNS(which ...int) func() {
	if len(which) == 0 {
		which = []int{0, 1}
	}
	var rules []*netlab.Rule
	for _, i := range which {
		rules = append(rules, l.resolvers[i].Block("udp", 53), l.resolvers[i].Block("tcp", 53))
	}
	return func() {
		for _, r := range rules {
			l.must(r.Remove())
		}
	}
}

// RefuseDNS makes every resolver answer REFUSED.
func (l *Lab) RefuseDNS() func() { return l.setMode(dnsRefuse) }

// AnswerEveryName makes resolver i answer every name with an address,
// names that cannot exist included (NXDOMAIN rewriting).
func (l *Lab) AnswerEveryName(i int) func() { return l.setMode(dnsAnswerAll, i) }

// LoseFirstQuery makes every resolver drop the first query for each name.
func (l *Lab) LoseFirstQuery() func() { return l.setMode(dnsDropFirst) }

// SlowDNS delays every packet to and from the resolvers by d each way (the
// relay never delivers early: a query takes at least 2·d).
func (l *Lab) SlowDNS(d time.Duration) func() {
	for _, lk := range l.resolverLinks {
		lk.SetDelay(d)
	}
	return func() {
		for _, lk := range l.resolverLinks {
			lk.SetDelay(0)
		}
	}
}

// StopSite makes web site i refuse connections (TCP reset on port 80),
// while its host still answers ping.
func (l *Lab) StopSite(i int) func() {
	r := l.web[i].Reject("tcp", 80)
	return func() { l.must(r.Remove()) }
}

// CaptivePortal turns the gateway into a captive portal: web requests to
// any address are diverted to its login page, the resolvers answer every
// name with its address, and nothing else is forwarded (DNS aside).
func (l *Lab) CaptivePortal() func() {
	gw := l.Path.Gateway
	in := l.Path.LAN.A.Name
	table := fmt.Sprintf(`table ip portal {
	chain divert { type nat hook prerouting priority -100; policy accept;
		iifname %q tcp dport 80 dnat to %s:8080
	}
	chain hold { type filter hook forward priority 10; policy accept;
		iifname %q meta l4proto { udp, tcp } th dport 53 accept
		iifname %q drop
	}
}
`, in, l.Gateway, in, in)
	l.nft(gw, table)
	undoDNS := l.setMode(dnsPortal)
	return func() {
		undoDNS()
		l.nft(gw, "delete table ip portal\n")
	}
}

// PMTUBlackHole narrows the isp1–isp2 link to mtu bytes and stops both
// routers from saying so (no fragmentation-needed): packets above mtu
// vanish in both directions.
func (l *Lab) PMTUBlackHole(mtu int) func() {
	lk := l.Path.Uplinks[1]
	lk.SetMTU(mtu)
	r1, r2 := l.Path.ISP[0].BlackholePMTU(), l.Path.ISP[1].BlackholePMTU()
	return func() {
		l.must(r1.Remove())
		l.must(r2.Remove())
		lk.SetMTU(1500)
	}
}

// Bufferbloat rate-limits the access link towards the client to rate
// bit/s with a queue of queue (tc tbf): a download fills it.
func (l *Lab) Bufferbloat(rate int64, queue time.Duration) func() {
	e := l.Path.Uplinks[0].B // isp1 → gw
	e.RateLimit(netlab.TBF{Rate: rate, Latency: queue})
	return func() {
		e.ClearRateLimit()
		time.Sleep(200 * time.Millisecond) // let the queue drain
	}
}

// nft loads a ruleset into node n.
func (l *Lab) nft(n *netlab.Node, ruleset string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := n.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("labtest: nft in %s: %v: %s\n%s", n, err, out, ruleset)
	}
}

// HopAfterGateway returns the trace address of hop ttl (1 is the gateway).
func (l *Lab) HopAfterGateway(ttl int) string { return l.Hops[ttl-1] }

func (l *Lab) must(err error) {
	if err != nil && !strings.Contains(err.Error(), "No such file") {
		l.t.Fatalf("labtest: %v", err)
	}
}
