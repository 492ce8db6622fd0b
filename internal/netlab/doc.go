// Package netlab builds small networks of Linux network namespaces for tests
// of the probers: a LAN, an ISP and "the internet", with faults injected at
// known places so that a test can compare what a probe measures with the
// ground truth it created (DESIGN.md, "Testing philosophy").
//
//	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 2, Access: netlab.LinkOpts{Delay: 10 * time.Millisecond}})
//	remote := p.Host("remote")
//	p.Uplinks[0].A.Loss(0.25)            // 25 % loss leaving the gateway towards isp1
//	p.ISP[1].Silent()                    // isp2 sends no time-exceeded
//	l := remote.Listen("tcp", ":80")     // a server inside the "remote" namespace
//	go http.Serve(l, handler)
//	res := prober.Probe(ctx, remote.IPv4().String(), …) // runs in the test process: no namespace switching
//
// # Requirements
//
// Root (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2 (ip, tc) and nftables,
// and Isolate called first in the package's TestMain:
//
//	func TestMain(m *testing.M) { netlab.Isolate(); goleak.VerifyTestMain(m) }
//
// New skips the test with the reason when any is missing or `ip netns add`
// fails; with CI=true it fails instead, so CI cannot silently skip lab tests.
// The kernel needs veth, nftables (numgen), tbf and /dev/net/tun; it does not
// need netem (which this project's kernels lack).
//
// # The client is the test process
//
// Probe code creates sockets on whatever goroutine and OS thread it likes,
// so running it "inside" a namespace is fragile: a setns'd thread covers only
// code on that locked goroutine. netlab therefore makes the test process's
// own network namespace the client: Attach (done by Path) creates a link from
// it to the gateway node, and adds routes for exactly the subnets of the
// lab's links (each a /30 and a /64) via that link. Probe code runs
// unchanged and its packets enter the lab. The client also gets an nftables
// table "netlab_<slot>" (a guard that drops packets for the slot's prefixes
// leaving by anything but a lab interface, and faults on the client's end).
// Teardown deletes the interface, which takes the routes and any cached
// path-MTU with it. The rest of the slot's address space is a throw route in
// the client: "network is unreachable", as on a real host, when a lab link is
// down or Lab.RemoveClientRoutes took the routes away.
//
// That namespace is the tests' own, not the host's: Isolate re-runs the test
// binary in a fresh network namespace with only loopback (and the host's
// ping_group_range), and New refuses to build a lab anywhere else. In the
// host's namespace the lab's routes and guard would take over the host's own
// traffic to any address in the slot; a host may well reach real services at
// documentation addresses behind its default route (this project's machines
// reach their package registries at 203.0.113.80, inside slot 2), and no
// routing table says so — only the host's resolver would, and tests must not
// ask it. Reading routes and interfaces cannot protect what hides behind the
// default route; a namespace of its own protects everything. So nothing on
// the host changes, slot choice needs nothing from the host (no addresses,
// routes or names to avoid), and every other test of the package can reach
// nothing but loopback and its labs.
//
// Other nodes are namespaces named "nlab<slot>-<node>". Node.Do runs Go code
// on a thread inside one; sockets made there stay there, which is how
// Listen/ListenPacket start in-lab servers (HTTP, miekg/dns …) from the test.
// Node.Run/Start run commands there with `ip netns exec`.
//
// # Addresses
//
// Only documentation ranges are used. Each lab owns a slot s (1…7):
// 198.51.100.32s/27 for router links, 203.0.113.32s/27 for links to internet
// hosts, and 2001:db8:10s::/48. Every link is a /30 (the A end .1, the B end
// .2) and a /64 (::1, ::2); interfaces have fixed MACs
// (02:6e:6c:<slot>:<link>:01|02) and pinned neighbour entries, so no ARP/ND
// precedes (or is delayed or dropped before) the first packet. AutoRoute
// gives every namespace host routes to every lab address along a shortest
// path; there are no default routes. Slot 0 (198.51.100.0/27, 203.0.113.0/27,
// 2001:db8:100::/48) is never used, so other tests can use it as unreachable
// addresses. 192.0.2.0/24 is not used either, since hosts (this project's own
// machines, for one) put their LAN there.
//
// A guard rule in every namespace drops any packet leaving for an address
// outside the lab's own slot (link-local and multicast excepted), so a
// mistake in a test — even a default route towards the client — cannot send
// lab traffic anywhere else, not even to another lab.
//
// # Concurrency across test binaries
//
// `go test ./...` runs packages in parallel, and one package may run labs in
// parallel tests. A lab holds an exclusive flock(2) on /run/netlab/slot<s>.lock
// for its whole life; New takes the first free slot and waits (polling)
// while all are taken. The lock belongs to the open file, so it also excludes
// other labs in the same process, and the kernel releases it when a process
// dies. Because the slot owner is unique, everything named with the slot
// prefix is its own: New deletes leftovers of a crashed earlier owner (its
// namespaces; its client interface and table went with its own namespace)
// before building.
//
// # Faults and their ground truth
//
//   - Loss: End.Loss(r) adds `oifname "<if>" numgen random mod 1000000 <
//     round(r·1000000) drop` to the postrouting hook of the end's namespace:
//     each packet leaving that interface (IPv4 and IPv6, forwarded or local;
//     not ARP/ND) is dropped independently with probability r. Egress only;
//     a link lossy both ways loses 1−(1−r)² of echo exchanges.
//   - Delay: a link created with LinkOpts.Delay (or Relay) is not a veth pair
//     but two TAP devices, one in each namespace (opened via Do, so each is
//     created in its node's namespace), joined by a relay in the test process
//     that writes every frame read from one TAP to the other after the delay.
//     It therefore delays all traffic — echo, UDP, TCP, ICMP errors from
//     routers — like netem would, in each direction independently
//     (Link.SetDelays), optionally with jitter that never reorders. Each
//     direction is one OS thread that sleeps only in ppoll(2) and runs with
//     SCHED_FIFO priority when permitted, so load on the machine adds little
//     error (measured: +0.2–0.5 ms on 50 ms). The relay never delivers early:
//     the minimum RTT is at least the injected one. An ICMP-echo responder
//     (kernel echo disabled, replies delayed in user space) was not used: it
//     would delay only ping, only to one host, and not traceroute or TCP.
//   - Rate and bufferbloat: End.RateLimit(TBF{Rate, Burst, Latency|Limit})
//     installs tc tbf as the root qdisc of the end (egress). Latency or Limit
//     sets the queue depth, so a saturating flow raises the RTT by up to
//     Latency. Note: TCP with BBR (the host's default on some machines)
//     keeps queues short; use cubic on the load-generating socket to fill it.
//   - MTU: LinkOpts.MTU, Link.SetMTU, End.SetMTU. Routers send
//     fragmentation-needed / packet-too-big as usual; Node.BlackholePMTU
//     drops those (output hook), making a path-MTU black hole.
//   - Silent hops: Node.Silent drops the node's own time-exceeded and
//     destination-unreachable (not frag-needed / packet-too-big); ICMP rate
//     limits are off in every namespace, so non-silent routers always answer.
//   - Node.DropICMPEcho: echo requests to or through the node vanish.
//   - Dead services: close the listener (refused), Node.Reject (TCP reset /
//     ICMP port unreachable), Node.Block (silently dropped: timeouts),
//     Proc.Kill, or End.Down / Link.Down for a cut link (Up restores routes).
//   - A host without a route: Lab.RemoveClientRoutes (the gateway still
//     answers; everything beyond it is unreachable).
//
// Every fault returns (or is) undoable: Rule.Remove, ClearRateLimit,
// SetDelay(0), Up.
//
// # Teardown
//
// t.Cleanup (registered by New, so it runs after the test's own cleanups)
// kills started processes, closes listeners and relays, deletes the
// namespaces, the client's lab interface and nft table, and releases
// the slot — also when the test failed, in which case the addresses, routes
// and guard counters of every node are logged first.
//
// # Limits
//
//   - Linux only; root only.
//   - At most 7 labs at once per machine (slots keep the labs' namespace
//     names and guard rules apart across test processes),
//     16 links per lab (8 in each IPv4 pool; a full pool borrows from the other).
//   - The client attaches to one node only.
//   - Code in Node.Do that starts goroutines does not carry the namespace
//     into them; only sockets made on the Do goroutine itself are inside.
//   - Client-side state keyed by destination address lives until teardown:
//     the path-MTU cache goes with the lab's routes, and the client's TCP
//     metrics for the slot's prefixes are flushed at teardown (and at New).
//     Within one test, a PMTU the client has learnt stays learnt.
package netlab
