package netlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/syncbuf"
	"github.com/isp-checker/isp-checker/internal/threadns"
)

// Node is one network namespace of the lab, or the client (the test
// process's own namespace, see Lab.Client).
type Node struct {
	lab    *Lab
	name   string
	ns     string   // netns name; "" for the client
	nsFile *os.File // /run/netns/<ns>, held open for Do

	mu         sync.Mutex
	ends       []*End
	forwarding bool
}

// Name is the node's name within the lab ("client" for the client).
func (n *Node) Name() string { return n.name }

// Namespace is the name of the node's network namespace as `ip netns` knows
// it; "" for the client.
func (n *Node) Namespace() string { return n.ns }

// IsClient reports whether n is the test process's own namespace.
func (n *Node) IsClient() bool { return n.ns == "" }

func (n *Node) String() string { return n.name }

// Ends returns n's interfaces (link ends) in creation order.
func (n *Node) Ends() []*End {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*End(nil), n.ends...)
}

// EndTo returns n's end of the first link between n and peer, or nil.
func (n *Node) EndTo(peer *Node) *End {
	for _, e := range n.Ends() {
		if e.Peer().Node == peer {
			return e
		}
	}
	return nil
}

// IPv4 is the address of n's first interface (its only one, for a host).
func (n *Node) IPv4() netip.Addr {
	if e := n.Ends(); len(e) > 0 {
		return e[0].IPv4
	}
	return netip.Addr{}
}

// IPv6 is the IPv6 address of n's first interface.
func (n *Node) IPv6() netip.Addr {
	if e := n.Ends(); len(e) > 0 {
		return e[0].IPv6
	}
	return netip.Addr{}
}

// Do runs f on a goroutine locked to an OS thread that has joined n's network
// namespace, and returns f's error. Sockets (and TAP devices) created by f
// itself stay in that namespace for their whole life and can be used from any
// goroutine afterwards — this is how servers are started inside the lab.
// Goroutines started by f do NOT run in the namespace. A panic in f is
// re-raised in the caller. For the client, f simply runs on the caller's
// goroutine.
func (n *Node) Do(f func() error) error {
	if n.IsClient() {
		return f()
	}
	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is only unlocked (returned to the scheduler) when its
		// namespace was restored; otherwise it dies with this goroutine.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netlab: %w", err)}
			return
		}
		defer orig.Close()
		threadns.Entering() // code keeping per-namespace state asks from now on
		if err := unix.Setns(int(n.nsFile.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netlab: setns %s: %w", n.ns, err)}
			return
		}
		var res result
		func() {
			defer func() { res.panic = recover() }()
			res.err = f()
		}()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		done <- res
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// Listen is net.Listen inside n, e.g. n.Listen("tcp", ":80") listens on all
// of n's addresses. The listener is closed when the lab is torn down; close
// it earlier to simulate a dead service. It fails the test on error.
func (n *Node) Listen(network, addr string) net.Listener {
	n.lab.t.Helper()
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		n.lab.t.Fatalf("netlab: listen %s %s in %s: %v", network, addr, n.name, err)
	}
	n.lab.onCleanup(func() { _ = l.Close() })
	return l
}

// ListenPacket is net.ListenPacket inside n (e.g. for a miekg/dns server);
// see Listen.
func (n *Node) ListenPacket(network, addr string) net.PacketConn {
	n.lab.t.Helper()
	var c net.PacketConn
	err := n.Do(func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		n.lab.t.Fatalf("netlab: listen %s %s in %s: %v", network, addr, n.name, err)
	}
	n.lab.onCleanup(func() { _ = c.Close() })
	return c
}

// Command returns an exec.Cmd that runs name inside n (via `ip netns exec`).
func (n *Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if n.IsClient() {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns, name}, args...)...)
}

// Run runs a command inside n and returns its combined output.
func (n *Node) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %v in %s: %w: %s", name, args, n.name, err, bytes.TrimSpace(out))
	}
	return string(out), err
}

// MustRun runs a command inside n with a 60 s timeout and fails the test if
// it does not exit 0.
func (n *Node) MustRun(name string, args ...string) string {
	n.lab.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := n.Run(ctx, name, args...)
	if err != nil {
		n.lab.t.Fatalf("netlab: %v", err)
	}
	return out
}

// Proc is a background process started with Node.Start.
type Proc struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error
	once sync.Once
}

// Start starts a long-running command inside n, in its own process group.
// Kill stops it; the lab kills it at teardown in any case.
func (n *Node) Start(name string, args ...string) *Proc {
	n.lab.t.Helper()
	cmd := n.Command(context.Background(), name, args...)
	buf := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.lab.t.Fatalf("netlab: start %s in %s: %v", name, n.name, err)
	}
	p := &Proc{cmd: cmd, out: buf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.lab.mu.Lock()
	n.lab.procs = append(n.lab.procs, p)
	n.lab.mu.Unlock()
	return p
}

// Pid is the process id (also its process group id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Proc) Kill() error {
	p.once.Do(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	<-p.done
	return nil
}

// Wait waits for the process to exit and returns its exit error.
func (p *Proc) Wait() error { <-p.done; return p.err }

// Output is what the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Sysctl sets a sysctl inside n, e.g. n.Sysctl("net.ipv4.icmp_echo_ignore_all", "1").
// Not allowed on the client (it would change the host).
func (n *Node) Sysctl(key, value string) {
	n.lab.t.Helper()
	n.notClient("Sysctl")
	n.lab.must(run("ip", "netns", "exec", n.ns, "sysctl", "-q", "-w", key+"="+value))
}

// EnableForwarding makes n a router for IPv4 and IPv6. Link does this
// automatically for every node with two or more links.
func (n *Node) EnableForwarding() {
	n.lab.t.Helper()
	n.notClient("EnableForwarding")
	n.mu.Lock()
	done := n.forwarding
	n.forwarding = true
	n.mu.Unlock()
	if !done {
		n.lab.must(run("ip", "netns", "exec", n.ns, "sysctl", "-q", "-w",
			"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"))
	}
}

// Route adds (or replaces) a route to dst via the neighbour address via.
// Lab.AutoRoute normally makes this unnecessary. Not allowed on the client.
func (n *Node) Route(dst netip.Prefix, via netip.Addr) {
	n.lab.t.Helper()
	n.notClient("Route")
	fam := "-4"
	if dst.Addr().Is6() {
		fam = "-6"
	}
	n.lab.must(n.ip(fam, "route", "replace", dst.String(), "via", via.String()))
}

func (n *Node) notClient(what string) {
	n.lab.t.Helper()
	if n.IsClient() {
		n.lab.t.Fatalf("netlab: %s is not allowed on the client: it would change the host's own network namespace", what)
	}
}

// ip runs the ip(8) command in n.
func (n *Node) ip(args ...string) error {
	if n.IsClient() {
		return run("ip", args...)
	}
	return run("ip", append([]string{"-n", n.ns}, args...)...)
}

// Chains of the per-namespace table "inet netlab", for Node.NFT.
const (
	ChainPrerouting  = "prerouting"  // every packet arriving, before routing
	ChainInput       = "input"       // packets for this node
	ChainForward     = "forward"     // packets routed through this node
	ChainOutput      = "output"      // packets this node generates (incl. its ICMP errors)
	ChainPostrouting = "postrouting" // every packet leaving, after routing
)

// Rule is a set of nftables rules added by a fault injector; Remove undoes
// the fault.
type Rule struct {
	node    *Node
	table   string
	chains  []string
	handles []string
}

// NFT appends rules (nft syntax, e.g. `tcp dport 53 drop`) to a chain of the
// node's "inet netlab" table and returns them as one removable Rule.
// Not allowed on the client.
func (n *Node) NFT(chain string, rules ...string) *Rule {
	n.lab.t.Helper()
	n.notClient("NFT")
	return n.nft("netlab", chain, rules...)
}

func (n *Node) nft(table, chain string, rules ...string) *Rule {
	n.lab.t.Helper()
	r := &Rule{node: n, table: table}
	for _, rule := range rules {
		args := []string{"--echo", "--handle", "add", "rule", "inet", table, chain, rule}
		var out string
		var err error
		if n.IsClient() {
			out, err = output("", "nft", args...)
		} else {
			out, err = output("", "ip", append([]string{"netns", "exec", n.ns, "nft"}, args...)...)
		}
		n.lab.must(err)
		var handle string
		if _, err := fmt.Sscanf(afterLast(out, "# handle "), "%s", &handle); err != nil {
			n.lab.t.Fatalf("netlab: no rule handle in nft output %q", out)
		}
		r.chains = append(r.chains, chain)
		r.handles = append(r.handles, handle)
	}
	return r
}

func afterLast(s, sep string) string {
	if i := bytes.LastIndex([]byte(s), []byte(sep)); i >= 0 {
		return s[i+len(sep):]
	}
	return ""
}

// Remove deletes the rules, undoing the fault. It is safe to call twice.
func (r *Rule) Remove() error {
	if r == nil {
		return nil
	}
	var first error
	for i, h := range r.handles {
		args := []string{"delete", "rule", "inet", r.table, r.chains[i], "handle", h}
		var err error
		if r.node.IsClient() {
			err = run("nft", args...)
		} else {
			err = run("ip", append([]string{"netns", "exec", r.node.ns, "nft"}, args...)...)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	r.handles, r.chains = nil, nil
	return first
}

// Silent stops n from sending ICMP time-exceeded and destination-unreachable
// errors (IPv4 and IPv6), like a router that hides from traceroute. IPv4
// fragmentation-needed and ICMPv6 packet-too-big still go out (use
// BlackholePMTU for those), so path-MTU discovery keeps working.
func (n *Node) Silent() *Rule {
	n.lab.t.Helper()
	return n.NFT(ChainOutput,
		`icmp type time-exceeded drop`,
		`icmp type destination-unreachable icmp code != frag-needed drop`,
		`icmpv6 type { time-exceeded, destination-unreachable } drop`)
}

// DropICMPEcho drops ICMP and ICMPv6 echo requests addressed to n or routed
// through it, like a firewall that blocks ping (UDP and TCP still pass).
func (n *Node) DropICMPEcho() *Rule {
	n.lab.t.Helper()
	r := n.NFT(ChainInput, `icmp type echo-request drop`, `icmpv6 type echo-request drop`)
	r2 := n.NFT(ChainForward, `icmp type echo-request drop`, `icmpv6 type echo-request drop`)
	r.chains = append(r.chains, r2.chains...)
	r.handles = append(r.handles, r2.handles...)
	return r
}

// BlackholePMTU stops n from sending IPv4 fragmentation-needed and ICMPv6
// packet-too-big messages: packets too large for its next link vanish
// without a signal (a path-MTU black hole).
func (n *Node) BlackholePMTU() *Rule {
	n.lab.t.Helper()
	return n.NFT(ChainOutput,
		`icmp type destination-unreachable icmp code frag-needed drop`,
		`icmpv6 type packet-too-big drop`)
}

// Block silently drops packets to proto ("tcp" or "udp") port on n or routed
// through it: the service times out.
func (n *Node) Block(proto string, port uint16) *Rule {
	n.lab.t.Helper()
	rule := fmt.Sprintf("meta l4proto %s th dport %d drop", proto, port)
	r := n.NFT(ChainInput, rule)
	r2 := n.NFT(ChainForward, rule)
	r.chains = append(r.chains, r2.chains...)
	r.handles = append(r.handles, r2.handles...)
	return r
}

// Reject refuses packets to proto port on n at once (TCP reset, or ICMP port
// unreachable for UDP): the service is down but the host is up.
func (n *Node) Reject(proto string, port uint16) *Rule {
	n.lab.t.Helper()
	var rule string
	switch proto {
	case "tcp":
		rule = fmt.Sprintf("tcp dport %d reject with tcp reset", port)
	default:
		rule = fmt.Sprintf("meta l4proto %s th dport %d reject", proto, port)
	}
	return n.NFT(ChainInput, rule)
}
