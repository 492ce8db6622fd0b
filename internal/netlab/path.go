package netlab

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// PathOpts describes a Path.
type PathOpts struct {
	// ISPHops is the number of ISP routers (isp1…ispN) between the LAN
	// gateway and the internet hosts; 0 attaches the hosts to the gateway.
	ISPHops int
	// Hosts names the internet hosts, each on its own link from the last
	// router; nil means one host, "remote".
	Hosts []string
	// ISPHosts names hosts inside the ISP's network (e.g. its DNS
	// resolver), each on its own link from isp1 (from gw when ISPHops is 0).
	ISPHosts []string
	// LAN configures the client–gateway link (the client is the test
	// process).
	LAN LinkOpts
	// Access configures the gateway–isp1 link: the subscriber line, where a
	// rate limit with a deep queue models bufferbloat.
	Access LinkOpts
	// Core configures the links between ISP routers.
	Core LinkOpts
	// Edge configures the links from the last router to each host (their
	// addresses are always from 203.0.113.0/24).
	Edge LinkOpts
}

// Path is the standard topology, with routes in both directions:
//
//	client ── gw ── isp1 ── … ── ispN ─┬─ Hosts[0] ("remote")
//	(test process)   │                 └─ Hosts[1] …
//	                 └─ ISPHosts[0] …  (hang off isp1)
//
// Every router answers with ICMP time-exceeded, so a traceroute from the
// client to a host sees exactly Hops(host).
type Path struct {
	*Lab
	Client  *Node   // the test process's namespace
	Gateway *Node   // "gw": the LAN gateway / home router
	ISP     []*Node // "isp1"…"ispN"
	Hosts   []*Node // the internet hosts, in PathOpts.Hosts order
	// ISPHosts are the hosts in the ISP's network, in PathOpts.ISPHosts order.
	ISPHosts []*Node

	LAN          *Link   // client–gw (gw is A, the client is B)
	Uplinks      []*Link // gw–isp1, isp1–isp2, …: the chain away from the client (A is the client side)
	HostLinks    []*Link // last router–Hosts[i] (the router is A)
	ISPHostLinks []*Link // isp1–ISPHosts[i] (the router is A)
}

// Hop is one line of a traceroute: the router (or the target) and the
// addresses it answers from, which are those of its interface facing the
// client.
type Hop struct {
	Node *Node
	IPv4 netip.Addr
	IPv6 netip.Addr
}

func (h Hop) String() string { return fmt.Sprintf("%s(%s, %s)", h.Node.name, h.IPv4, h.IPv6) }

// NewPath creates a lab holding a Path; see Lab.Path.
func NewPath(t testing.TB, o PathOpts) *Path {
	t.Helper()
	return New(t).Path(o)
}

// Path builds the standard topology in l, attaches the client to the
// gateway and installs routes (AutoRoute).
func (l *Lab) Path(o PathOpts) *Path {
	l.t.Helper()
	if o.Hosts == nil {
		o.Hosts = []string{"remote"}
	}
	p := &Path{Lab: l, Client: l.client, Gateway: l.Node("gw")}
	p.LAN = l.Attach(p.Gateway, o.LAN)
	last := p.Gateway
	for i := 1; i <= o.ISPHops; i++ {
		r := l.Node(fmt.Sprintf("isp%d", i))
		lo := o.Core
		if i == 1 {
			lo = o.Access
		}
		p.Uplinks = append(p.Uplinks, l.Link(last, r, lo))
		p.ISP = append(p.ISP, r)
		last = r
	}
	for _, name := range o.Hosts {
		h := l.Node(name)
		eo := o.Edge
		eo.Edge = true
		p.HostLinks = append(p.HostLinks, l.Link(last, h, eo))
		p.Hosts = append(p.Hosts, h)
	}
	for _, name := range o.ISPHosts {
		h := l.Node(name)
		p.ISPHostLinks = append(p.ISPHostLinks, l.Link(p.Routers()[min(1, len(p.ISP))], h, LinkOpts{}))
		p.ISPHosts = append(p.ISPHosts, h)
	}
	l.AutoRoute()
	return p
}

// Host returns the internet or ISP host with that name.
func (p *Path) Host(name string) *Node {
	for _, h := range append(p.Hosts, p.ISPHosts...) {
		if h.name == name {
			return h
		}
	}
	p.t.Fatalf("netlab: no host %q in path", name)
	return nil
}

// Routers returns gw, isp1, …, ispN in order from the client.
func (p *Path) Routers() []*Node { return append([]*Node{p.Gateway}, p.ISP...) }

// Hops returns what a traceroute from the client to target should report:
// each router on the way (up to target, if it is a router) with the
// addresses of its client-facing interface, then the host itself.
func (p *Path) Hops(target *Node) []Hop {
	var hops []Hop
	prev := p.Client
	routers := p.Routers()
	if slices.Contains(p.ISPHosts, target) {
		routers = routers[:min(2, len(routers))]
	}
	for _, r := range routers {
		e := r.EndTo(prev)
		hops = append(hops, Hop{Node: r, IPv4: e.IPv4, IPv6: e.IPv6})
		if r == target {
			return hops
		}
		prev = r
	}
	if slices.Contains(p.Hosts, target) || slices.Contains(p.ISPHosts, target) {
		return append(hops, Hop{Node: target, IPv4: target.IPv4(), IPv6: target.IPv6()})
	}
	p.t.Fatalf("netlab: %s is not on the path", target)
	return nil
}
