package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Address plan. Slot 0 (198.51.100.0/27, 203.0.113.0/27, 2001:db8:100::/48) is
// never used by a lab, so other tests may use it for "unreachable" targets
// without ever hitting a running lab.
const (
	// Slots is the number of labs that can exist at the same time on one
	// machine, across all test processes.
	Slots = 7

	coreBase   = "198.51.100.0" // router-to-router and client links
	edgeBase   = "203.0.113.0"  // links to internet hosts
	slotBits   = 27             // each slot owns one /27 of each range
	linkBits   = 30             // each link is a /30 (IPv4) …
	link6Bits  = 64             // … and a /64 (IPv6)
	slot6Bits  = 48             // each slot owns 2001:db8:10S::/48
	linksPerPl = 1 << (linkBits - slotBits)
)

// lockDir holds one flock(2)ed file per slot.
var lockDir = "/run/netlab"

// Lab is a set of network namespaces ("nodes") joined by links, plus the
// client: the test process's own network namespace. See the package
// documentation for the model. A Lab is created with New and torn down by
// t.Cleanup.
type Lab struct {
	t      testing.TB
	slot   int
	prefix string // namespace and host-interface prefix, "nlabS-"
	lock   *os.File

	mu        sync.Mutex
	client    *Node
	nodes     []*Node
	links     []*Link
	pools     [2]int // next free /30 in the core (0) and edge (1) pools
	linkSeq   int    // IPv6 subnet counter
	closers   []func()
	procs     []*Proc
	hostTable bool // the host-namespace nft table netlab_S exists
}

// New creates an empty lab for t. It skips the test when the process cannot
// build namespaces (not root, tools missing, `ip netns add` fails); with the
// environment variable CI=true it fails the test instead, so a CI job cannot
// silently skip every lab test.
//
// New blocks until one of the Slots lab slots is free (labs in other test
// binaries hold theirs until their test ends).
func New(t testing.TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFatal(t, "netlab: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces; run the tests as root")
	}
	for _, tool := range []string{"ip", "nft", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFatal(t, fmt.Sprintf("netlab: %q not found in PATH (apt-get install iproute2 nftables): %v", tool, err))
		}
	}
	if !isolated {
		skipOrFatal(t, "netlab: the tests do not run in a network namespace of their own, and the lab would route into the host's: "+
			"call netlab.Isolate() first in the package's TestMain")
	}
	lab := &Lab{t: t}
	if err := lab.acquireSlot(); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	lab.prefix = fmt.Sprintf("nlab%d-", lab.slot)
	lab.client = &Node{lab: lab, name: "client"}
	t.Cleanup(lab.cleanup)
	lab.removeStale()
	// Probe that namespaces work at all before building anything.
	probe := lab.prefix + "probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		skipOrFatal(t, fmt.Sprintf("netlab: `ip netns add` failed (no namespace support?): %v: %s", err, bytes.TrimSpace(out)))
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	lab.ensureHostTable()
	return lab
}

func skipOrFatal(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason + " (CI=true: failing instead of skipping)")
	}
	t.Skip(reason)
}

// Slot is this lab's slot number, 1…Slots. Its addresses are
// 198.51.100.(32·slot)/27, 203.0.113.(32·slot)/27 and 2001:db8:10<slot>::/48.
func (l *Lab) Slot() int { return l.slot }

// Prefixes are the prefixes this lab's slot owns. Every link subnet lies in
// them; the client routes only the subnets of links that exist.
func (l *Lab) Prefixes() []netip.Prefix {
	return []netip.Prefix{l.poolPrefix(0), l.poolPrefix(1), l.prefix6()}
}

// Client is the node for the test process's own network namespace. Probe
// code under test runs there unchanged; see Attach.
func (l *Lab) Client() *Node { return l.client }

// Nodes returns the lab's namespace nodes in creation order (not the client).
func (l *Lab) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Node(nil), l.nodes...)
}

// Links returns all links in creation order.
func (l *Lab) Links() []*Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Link(nil), l.links...)
}

// Node creates a new network namespace called name (unique within the lab).
// Its namespace name is "nlab<slot>-<name>".
func (l *Lab) Node(name string) *Node {
	l.t.Helper()
	if name == "" || strings.ContainsAny(name, "/ \t\n") || name == "client" || name == "probe" {
		l.t.Fatalf("netlab: bad node name %q", name)
	}
	l.mu.Lock()
	for _, n := range l.nodes {
		if n.name == name {
			l.mu.Unlock()
			l.t.Fatalf("netlab: node %q exists", name)
		}
	}
	n := &Node{lab: l, name: name, ns: l.prefix + name}
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()

	l.must(run("ip", "netns", "add", n.ns))
	f, err := os.Open(filepath.Join("/run/netns", n.ns))
	if err != nil {
		l.t.Fatalf("netlab: open namespace %s: %v", n.ns, err)
	}
	n.nsFile = f
	// No ICMP rate limits (traceroute needs every time-exceeded), no DAD
	// (IPv6 addresses usable at once), no reverse-path filtering (the lab
	// may route asymmetrically).
	l.must(run("ip", "netns", "exec", n.ns, "sysctl", "-q", "-w",
		"net.ipv4.icmp_ratelimit=0",
		"net.ipv6.icmp.ratelimit=0",
		"net.ipv4.icmp_msgs_per_sec=100000",
		"net.ipv4.icmp_msgs_burst=100000",
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.ipv6.conf.default.accept_ra=0",
		"net.ipv6.conf.all.keep_addr_on_down=1",
		"net.ipv6.conf.default.keep_addr_on_down=1",
	))
	l.must(n.ip("link", "set", "lo", "up"))
	l.must(runStdin(l.baseRuleset(), "ip", "netns", "exec", n.ns, "nft", "-f", "-"))
	return n
}

// baseRuleset is loaded into every namespace: empty chains at each hook for
// the fault injectors, plus the traffic guard, which drops every packet
// leaving for an address outside the lab's own slot (link-local and
// multicast excepted). Even a node given a default route cannot reach the
// host's networks, another lab, or a documentation-range address the host
// uses for real.
func (l *Lab) baseRuleset() string {
	p := l.Prefixes()
	return `table inet netlab {
	chain prerouting { type filter hook prerouting priority -300; policy accept; }
	chain input { type filter hook input priority 0; policy accept; }
	chain forward { type filter hook forward priority 0; policy accept; }
	chain output { type filter hook output priority 0; policy accept; }
	chain postrouting { type filter hook postrouting priority 300; policy accept;
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept
		oifname != "lo" ip daddr != { ` + p[0].String() + `, ` + p[1].String() + ` } counter drop comment "netlab guard"
		oifname != "lo" ip6 daddr != { ` + p[2].String() + `, fe80::/10, ff00::/8 } counter drop comment "netlab guard"
	}
}
`
}

// Attach links the client (the test process's namespace) to n and routes
// the subnets of all the lab's links, present and future, from the client
// via n. Only one attachment per lab is allowed.
func (l *Lab) Attach(n *Node, o LinkOpts) *Link {
	l.t.Helper()
	if len(l.client.Ends()) > 0 {
		l.t.Fatalf("netlab: client already attached")
	}
	lk := l.Link(n, l.client, o)
	l.clientRoutes()
	return lk
}

// clientRoutes routes, from the client namespace via the node it is
// attached to, exactly the subnets of the lab's other links — nothing else of
// the documentation ranges.
func (l *Lab) clientRoutes() {
	l.t.Helper()
	ends := l.client.Ends()
	if len(ends) == 0 {
		return
	}
	c, gw := ends[0], ends[0].Peer()
	var cmds []string
	for _, lk := range l.Links() {
		if lk == c.Link {
			continue
		}
		cmds = append(cmds,
			fmt.Sprintf("route replace %s via %s dev %s src %s", lk.Prefix4, gw.IPv4, c.Name, c.IPv4),
			fmt.Sprintf("route replace %s via %s dev %s src %s", lk.Prefix6, gw.IPv6, c.Name, c.IPv6))
	}
	// The rest of the slot is unreachable from the client (a throw route:
	// lookup fails with ENETUNREACH). A cut lab link or a deleted lab route
	// then fails as on a real host, "network is unreachable", instead of
	// falling back to the host's default route (where the client guard
	// would drop the packet with EPERM).
	for _, p := range l.Prefixes() {
		cmds = append(cmds, "route replace throw "+p.String())
	}
	l.must(l.client.ipBatch(cmds...))
}

// RemoveClientRoutes deletes the client's routes to everything beyond the
// link it is attached by, as on a host that lost its default route: the
// gateway still answers, every other lab address is unreachable
// (ENETUNREACH). The returned func restores the routes.
func (l *Lab) RemoveClientRoutes() (restore func()) {
	l.t.Helper()
	return l.routesBeyondClientLink("del")
}

// RefuseClientRoutes replaces the client's routes to everything beyond the
// link it is attached by with routes of type kind ("unreachable",
// "prohibit" or "blackhole"), as a VPN's kill switch leaves the default
// route: the gateway still answers, every other lab address is refused at
// once by the client's own routing table (EHOSTUNREACH, EACCES, EINVAL).
// The returned func restores the routes.
func (l *Lab) RefuseClientRoutes(kind string) (restore func()) {
	l.t.Helper()
	return l.routesBeyondClientLink("replace " + kind)
}

// routesBeyondClientLink runs "ip route <op> <prefix>" in the client for
// every lab prefix beyond the link it is attached by; the returned func
// restores the client's routes.
func (l *Lab) routesBeyondClientLink(op string) (restore func()) {
	l.t.Helper()
	ends := l.client.Ends()
	if len(ends) == 0 {
		l.t.Fatalf("netlab: the client is not attached")
	}
	var cmds []string
	for _, lk := range l.Links() {
		if lk != ends[0].Link {
			cmds = append(cmds, "route "+op+" "+lk.Prefix4.String(), "route "+op+" "+lk.Prefix6.String())
		}
	}
	if len(cmds) > 0 {
		l.must(l.client.ipBatch(cmds...))
	}
	return func() { l.t.Helper(); l.clientRoutes() }
}

// delThrowRoutes removes the client's throw routes for the slot.
func (l *Lab) delThrowRoutes() {
	for _, p := range l.Prefixes() {
		_ = exec.Command("ip", "route", "del", "throw", p.String()).Run()
	}
}

// restoreRoutes reinstalls all routes after an interface came back up.
func (l *Lab) restoreRoutes() {
	l.t.Helper()
	l.AutoRoute()
	l.clientRoutes()
}

// must fails the test on err.
func (l *Lab) must(err error) {
	l.t.Helper()
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
}

func (l *Lab) onCleanup(f func()) {
	l.mu.Lock()
	l.closers = append(l.closers, f)
	l.mu.Unlock()
}

// acquireSlot takes an exclusive flock on one of the slot files. The lock
// belongs to the open file, so it also excludes other labs in this process,
// and the kernel drops it when the process dies.
func (l *Lab) acquireSlot() error {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	if d, ok := l.t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && dl.Add(-10*time.Second).Before(deadline) {
			deadline = dl.Add(-10 * time.Second)
		}
	}
	for {
		for s := 1; s <= Slots; s++ {
			f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprintf("slot%d.lock", s)), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				f.Close()
				if errors.Is(err, unix.EWOULDBLOCK) {
					continue
				}
				return fmt.Errorf("flock %s: %w", f.Name(), err)
			}
			_ = f.Truncate(0)
			_, _ = f.WriteString(strconv.Itoa(os.Getpid()) + " " + l.t.Name() + "\n")
			l.slot, l.lock = s, f
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("all %d lab slots stayed busy (see %s/slot*.lock for holders)", Slots, lockDir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeStale deletes whatever a crashed earlier holder of this slot left
// behind. Holding the slot lock makes everything named with the slot prefix
// ours.
func (l *Lab) removeStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], l.prefix) {
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, l.prefix) {
			_ = exec.Command("ip", "link", "del", i.Name).Run()
		}
	}
	_ = exec.Command("nft", "delete", "table", "inet", l.hostTableName()).Run()
	l.delThrowRoutes()
	l.flushTCPMetrics()
}

// flushTCPMetrics forgets what the host's TCP learnt (ssthresh, RTT) about
// the slot's addresses, so that one lab's test does not tune the next one's.
func (l *Lab) flushTCPMetrics() {
	for _, p := range l.Prefixes() {
		_ = exec.Command("ip", "tcp_metrics", "flush", p.String()).Run()
	}
}

func (l *Lab) hostTableName() string { return fmt.Sprintf("netlab_%d", l.slot) }

func (l *Lab) poolPrefix(pool int) netip.Prefix {
	base := netip.MustParseAddr(coreBase)
	if pool == 1 {
		base = netip.MustParseAddr(edgeBase)
	}
	b := base.As4()
	b[3] = byte(l.slot << (32 - slotBits))
	return netip.PrefixFrom(netip.AddrFrom4(b), slotBits)
}

func (l *Lab) prefix6() netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/%d", 0x100+l.slot, slot6Bits))
}

// allocSubnets returns the next /30 and /64 for a link; the caller holds l.mu.
func (l *Lab) allocSubnets(edge bool) (netip.Prefix, netip.Prefix, error) {
	pool := 0
	if edge {
		pool = 1
	}
	if l.pools[pool] >= linksPerPl { // this pool is full: use the other one
		pool = 1 - pool
	}
	if l.pools[pool] >= linksPerPl {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("lab address space exhausted (%d links)", 2*linksPerPl)
	}
	b := l.poolPrefix(pool).Addr().As4()
	b[3] += byte(4 * l.pools[pool])
	l.pools[pool]++
	l.linkSeq++
	p6 := netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::/%d", 0x100+l.slot, l.linkSeq, link6Bits))
	return netip.PrefixFrom(netip.AddrFrom4(b), linkBits), p6, nil
}

// cleanup runs after the test's own cleanups (t.Cleanup is LIFO) and removes
// everything even when the test failed.
func (l *Lab) cleanup() {
	if l.t.Failed() {
		l.dump()
	}
	l.mu.Lock()
	closers := l.closers
	procs := l.procs
	nodes := l.nodes
	l.closers, l.procs = nil, nil
	l.mu.Unlock()
	for _, p := range procs {
		_ = p.Kill()
	}
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	for _, n := range nodes {
		if n.nsFile != nil {
			n.nsFile.Close()
		}
		_ = exec.Command("ip", "netns", "del", n.ns).Run()
	}
	// Host ends die with their peers, but a socket leaked into a namespace
	// keeps it alive, so delete the host side explicitly too.
	for _, e := range l.client.Ends() {
		_ = exec.Command("ip", "link", "del", e.Name).Run()
	}
	if l.hostTable {
		_ = exec.Command("nft", "delete", "table", "inet", l.hostTableName()).Run()
	}
	l.delThrowRoutes()
	l.flushTCPMetrics()
	if l.lock != nil {
		_ = l.lock.Truncate(0)
		l.lock.Close() // releases the flock
	}
}

// dump logs addresses, routes and rules of every node, for failed tests.
func (l *Lab) dump() {
	var b strings.Builder
	for _, n := range l.Nodes() {
		fmt.Fprintf(&b, "=== node %s (netns %s)\n", n.name, n.ns)
		for _, args := range [][]string{{"-br", "addr"}, {"route"}, {"-6", "route"}} {
			out, _ := exec.Command("ip", append([]string{"-n", n.ns}, args...)...).CombinedOutput()
			b.Write(out)
		}
		out, _ := exec.Command("ip", "netns", "exec", n.ns, "nft", "list", "chain", "inet", "netlab", "postrouting").CombinedOutput()
		b.Write(out)
	}
	l.t.Logf("netlab: lab state at failure (slot %d):\n%s", l.slot, b.String())
}

// run runs a command and returns its output in the error on failure.
func run(name string, args ...string) error {
	return runStdin("", name, args...)
}

func runStdin(stdin, name string, args ...string) error {
	_, err := output(stdin, name, args...)
	return err
}

func output(stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}
