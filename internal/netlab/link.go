package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// LinkOpts configures a link.
type LinkOpts struct {
	// MTU of both ends; 0 means 1500.
	MTU int
	// Edge allocates the link's IPv4 subnet from 203.0.113.0/24 (where the
	// lab puts internet hosts) instead of 198.51.100.0/24.
	Edge bool
	// Delay is the one-way delay added in each direction (so the round-trip
	// time grows by 2·Delay). A non-zero Delay, Jitter or Relay builds the
	// link from two TAP devices joined by a relay in the test process
	// instead of a veth pair; see the package documentation.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter) per packet,
	// without reordering.
	Jitter time.Duration
	// Relay builds a relay link even with zero delay, so that SetDelay can
	// change the delay later.
	Relay bool
}

// Link is a point-to-point link between two nodes: a /30 (A is .1, B is .2)
// and a /64 (A is ::1, B is ::2).
type Link struct {
	lab     *Lab
	A, B    *End
	Prefix4 netip.Prefix
	Prefix6 netip.Prefix
	MTU     int
	relay   *relay
}

// End is one side of a link: an interface in a node.
type End struct {
	Node *Node
	Link *Link
	Name string           // interface name inside Node's namespace
	MAC  net.HardwareAddr // fixed: 02:6e:6c:<slot>:<link>:<01 for A, 02 for B>
	IPv4 netip.Addr
	IPv6 netip.Addr
}

func (e *End) String() string { return e.Node.name + "/" + e.Name }

// Peer is the other end of the link.
func (e *End) Peer() *End {
	if e.Link.A == e {
		return e.Link.B
	}
	return e.Link.A
}

// Link creates a link between a and b (one of them may be the client, but
// use Attach for that so the client gets its routes). Nodes with two or more
// links become routers (forwarding on). Call AutoRoute after building the
// topology.
func (l *Lab) Link(a, b *Node, o LinkOpts) *Link {
	l.t.Helper()
	if a == b || a.lab != l || b.lab != l {
		l.t.Fatalf("netlab: cannot link %s to %s", a, b)
	}
	if a.IsClient() && b.IsClient() {
		l.t.Fatalf("netlab: cannot link the client to itself")
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	l.mu.Lock()
	p4, p6, err := l.allocSubnets(o.Edge)
	seq := l.linkSeq
	l.mu.Unlock()
	l.must(err)
	lk := &Link{lab: l, Prefix4: p4, Prefix6: p6, MTU: o.MTU}
	lk.A = &End{Node: a, Link: lk, Name: l.ifname(a, b), IPv4: p4.Addr().Next(), IPv6: p6.Addr().Next(),
		MAC: net.HardwareAddr{0x02, 0x6e, 0x6c, byte(l.slot), byte(seq), 1}}
	lk.B = &End{Node: b, Link: lk, Name: l.ifname(b, a), IPv4: p4.Addr().Next().Next(), IPv6: p6.Addr().Next().Next(),
		MAC: net.HardwareAddr{0x02, 0x6e, 0x6c, byte(l.slot), byte(seq), 2}}

	if o.Delay > 0 || o.Jitter > 0 || o.Relay {
		r, err := newRelay(lk.A, lk.B, o.Delay, o.Jitter)
		l.must(err)
		lk.relay = r
		l.onCleanup(r.close)
	} else {
		args := []string{"link", "add", "name", lk.A.Name}
		if !a.IsClient() {
			args = append(args, "netns", a.ns)
		}
		args = append(args, "type", "veth", "peer", "name", lk.B.Name)
		if !b.IsClient() {
			args = append(args, "netns", b.ns)
		}
		l.must(run("ip", args...))
	}
	for _, e := range []*End{lk.A, lk.B} {
		if e.Node.IsClient() {
			// Our own interface in the host namespace: keep its IPv6
			// address across Down/Up like the namespaces do.
			l.must(run("sysctl", "-q", "-w", "net.ipv6.conf."+e.Name+".keep_addr_on_down=1"))
		}
		l.must(e.Node.ipBatch(append([]string{
			fmt.Sprintf("link set dev %s address %s mtu %d", e.Name, e.MAC, o.MTU),
			fmt.Sprintf("addr add %s/%d dev %s", e.IPv4, p4.Bits(), e.Name),
			fmt.Sprintf("addr add %s/%d dev %s nodad", e.IPv6, p6.Bits(), e.Name),
		}, e.neighbourCmds()...)...))
	}
	for _, e := range []*End{lk.A, lk.B} {
		l.must(e.Node.ip("link", "set", "dev", e.Name, "up"))
		e.Node.mu.Lock()
		e.Node.ends = append(e.Node.ends, e)
		router := len(e.Node.ends) >= 2
		e.Node.mu.Unlock()
		if router && !e.Node.IsClient() {
			e.Node.EnableForwarding()
		}
	}
	l.mu.Lock()
	l.links = append(l.links, lk)
	l.mu.Unlock()
	l.clientRoutes()
	return lk
}

// ifname names n's interface towards peer: "to-<peer>" inside a namespace,
// "nlab<slot>-<peer>" in the client's (host) namespace. At most 15 bytes.
func (l *Lab) ifname(n, peer *Node) string {
	base := "to-" + peer.name
	if n.IsClient() {
		base = l.prefix + peer.name
	}
	if len(base) > 15 {
		base = base[:15]
	}
	name := base
	for i := 2; ; i++ {
		taken := false
		for _, e := range n.Ends() {
			if e.Name == name {
				taken = true
			}
		}
		if !taken {
			return name
		}
		suffix := strconv.Itoa(i)
		if len(base)+len(suffix) > 15 {
			name = base[:15-len(suffix)] + suffix
		} else {
			name = base + suffix
		}
	}
}

func (n *Node) ipBatch(cmds ...string) error {
	stdin := strings.Join(cmds, "\n") + "\n"
	if n.IsClient() {
		return runStdin(stdin, "ip", "-batch", "-")
	}
	return runStdin(stdin, "ip", "-n", n.ns, "-batch", "-")
}

func (n *Node) tc(args ...string) error {
	if n.IsClient() {
		return run("tc", args...)
	}
	return run("tc", append([]string{"-n", n.ns}, args...)...)
}

// Other returns the end of the link that is not on n.
func (lk *Link) Other(n *Node) *End {
	if lk.A.Node == n {
		return lk.B
	}
	return lk.A
}

// On returns the end of the link on n (nil if n is not on the link).
func (lk *Link) On(n *Node) *End {
	switch n {
	case lk.A.Node:
		return lk.A
	case lk.B.Node:
		return lk.B
	}
	return nil
}

// SetMTU sets the MTU of both ends.
func (lk *Link) SetMTU(mtu int) {
	lk.lab.t.Helper()
	lk.A.SetMTU(mtu)
	lk.B.SetMTU(mtu)
	lk.MTU = mtu
}

// Down takes both ends down (a cut cable).
func (lk *Link) Down() { lk.lab.t.Helper(); lk.A.Down(); lk.B.Down() }

// Up brings both ends up again and restores routes (see End.Up).
func (lk *Link) Up() {
	lk.lab.t.Helper()
	lk.A.up()
	lk.B.up()
	lk.lab.restoreRoutes()
}

// SetDelay sets the one-way delay of a relay link in both directions.
func (lk *Link) SetDelay(d time.Duration) { lk.lab.t.Helper(); lk.SetDelays(d, d) }

// SetDelays sets the one-way delay from A to B and from B to A separately.
// The link must have been created with Delay, Jitter or Relay set.
func (lk *Link) SetDelays(aToB, bToA time.Duration) {
	lk.lab.t.Helper()
	if lk.relay == nil {
		lk.lab.t.Fatalf("netlab: link %s–%s is a veth pair; create it with LinkOpts.Relay to change its delay", lk.A, lk.B)
	}
	lk.relay.setDelay(aToB, bToA)
}

// SetJitter sets the per-packet random extra delay of a relay link.
func (lk *Link) SetJitter(j time.Duration) {
	lk.lab.t.Helper()
	if lk.relay == nil {
		lk.lab.t.Fatalf("netlab: link %s–%s is not a relay link", lk.A, lk.B)
	}
	lk.relay.mu.Lock()
	lk.relay.jitter = j
	lk.relay.mu.Unlock()
}

// SetMTU sets this end's MTU.
func (e *End) SetMTU(mtu int) {
	e.Node.lab.t.Helper()
	e.Node.lab.must(e.Node.ip("link", "set", "dev", e.Name, "mtu", strconv.Itoa(mtu)))
}

// Down sets the interface administratively down.
func (e *End) Down() {
	e.Node.lab.t.Helper()
	e.Node.lab.must(e.Node.ip("link", "set", "dev", e.Name, "down"))
}

// Up sets the interface up again. Addresses survive Down (IPv6 via
// keep_addr_on_down); the routes and pinned neighbour entries the kernel
// dropped are restored by re-running AutoRoute (which replaces any Node.Route
// for the same destination) and the client's routes.
func (e *End) Up() {
	e.Node.lab.t.Helper()
	e.up()
	e.Node.lab.restoreRoutes()
}

func (e *End) up() {
	e.Node.lab.t.Helper()
	e.Node.lab.must(e.Node.ipBatch(append(e.neighbourCmds(), "link set dev "+e.Name+" up")...))
}

// neighbourCmds pin the peer's MAC for both its addresses, so that no
// ARP/ND exchange (which a relay would delay, or a lossy link drop) precedes
// the first packet.
func (e *End) neighbourCmds() []string {
	p := e.Peer()
	return []string{
		fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", p.IPv4, p.MAC, e.Name),
		fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent", p.IPv6, p.MAC, e.Name),
	}
}

// LossModulus is the modulus of the nftables loss rule: a packet is dropped
// when `numgen random mod LossModulus < round(ratio·LossModulus)`.
const LossModulus = 1000000

// Loss drops the given fraction (0…1) of the packets leaving this end
// (forwarded and locally generated, IPv4 and IPv6; IPv6 neighbour discovery
// is exempt) with the nftables rule
//
//	oifname "<end>" numgen random mod 1000000 < round(ratio·1000000) drop
//
// It is egress-only: for loss towards this end use e.Peer().Loss; for a
// round trip through a link lossy in both directions the echo loss is
// 1−(1−ratio)². Remove the returned rule to stop the loss.
func (e *End) Loss(ratio float64) *Rule {
	e.Node.lab.t.Helper()
	if ratio < 0 || ratio > 1 {
		e.Node.lab.t.Fatalf("netlab: loss ratio %v outside [0,1]", ratio)
	}
	thr := int64(ratio*LossModulus + 0.5)
	rule := fmt.Sprintf(`oifname %q numgen random mod %d < %d drop`, e.Name, LossModulus, thr)
	if thr >= LossModulus {
		// nft rejects "< modulus" (always true); total loss needs no numgen.
		rule = fmt.Sprintf(`oifname %q drop`, e.Name)
	}
	if e.Node.IsClient() {
		e.Node.lab.ensureHostTable()
		return e.Node.nft(e.Node.lab.hostTableName(), ChainPostrouting, rule)
	}
	return e.Node.nft("netlab", ChainPostrouting, rule)
}

// ensureHostTable creates the lab's own nftables table in the client (host)
// namespace. Its rules match only the lab's interfaces; it is deleted at
// teardown.
func (l *Lab) ensureHostTable() {
	l.t.Helper()
	l.mu.Lock()
	done := l.hostTable
	l.hostTable = true
	l.mu.Unlock()
	if done {
		return
	}
	// The output chain is the client's guard: a packet for this slot's
	// address space that would leave by anything but a lab interface (an
	// address no lab link covers would follow the host's default route) is
	// dropped, so a test can never send lab-range traffic out of the machine.
	l.must(runStdin(fmt.Sprintf(`table inet %s {
	chain postrouting { type filter hook postrouting priority 300; policy accept;
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept
	}
	chain guard { type filter hook output priority 0; policy accept;
		ip daddr { %s, %s } oifname != "%s*" counter drop comment "netlab client guard"
		ip6 daddr %s oifname != "%s*" counter drop comment "netlab client guard"
	}
}
`, l.hostTableName(), l.poolPrefix(0), l.poolPrefix(1), l.prefix, l.prefix6(), l.prefix), "nft", "-f", "-"))
}

// LocalFirewall adds rules to the client's output hook (in the lab's own
// table of the client namespace), as a host firewall refusing what this
// host sends: a packet it drops fails sendmsg with EPERM although the
// socket opened. Remove the returned rule to lift them.
func (n *Node) LocalFirewall(rules ...string) *Rule {
	n.lab.t.Helper()
	if !n.IsClient() {
		n.lab.t.Fatalf("netlab: LocalFirewall is the client's (%s is a router or host: use NFT)", n.Name())
	}
	n.lab.ensureHostTable()
	return n.nft(n.lab.hostTableName(), "guard", rules...)
}

// TBF is a token-bucket rate limit (tc-tbf(8)) on an interface's egress.
type TBF struct {
	// Rate in bits per second (required).
	Rate int64
	// Burst is the bucket size in bytes; 0 means 10 ms worth of Rate, at
	// least 3200 bytes (two full-size frames).
	Burst int
	// Latency bounds how long a packet may wait in the queue, which sets the
	// queue depth to Rate·Latency (+Burst); packets beyond it are dropped.
	// This is the bufferbloat knob. Used when Limit is 0; default 50 ms.
	Latency time.Duration
	// Limit is the queue depth in bytes, as an alternative to Latency.
	Limit int
}

// RateLimit shapes traffic leaving this end with tc tbf (replacing any
// earlier limit).
func (e *End) RateLimit(o TBF) {
	e.Node.lab.t.Helper()
	if o.Rate <= 0 {
		e.Node.lab.t.Fatalf("netlab: TBF rate must be positive")
	}
	if o.Burst == 0 {
		o.Burst = max(int(o.Rate/8/100), 3200)
	}
	args := []string{"qdisc", "replace", "dev", e.Name, "root", "tbf",
		"rate", strconv.FormatInt(o.Rate, 10) + "bit", "burst", strconv.Itoa(o.Burst)}
	if o.Limit > 0 {
		args = append(args, "limit", strconv.Itoa(o.Limit))
	} else {
		if o.Latency == 0 {
			o.Latency = 50 * time.Millisecond
		}
		args = append(args, "latency", strconv.FormatInt(o.Latency.Microseconds(), 10)+"us")
	}
	e.Node.lab.must(e.Node.tc(args...))
}

// ClearRateLimit removes a RateLimit.
func (e *End) ClearRateLimit() {
	e.Node.lab.t.Helper()
	e.Node.lab.must(e.Node.tc("qdisc", "del", "dev", e.Name, "root"))
}
