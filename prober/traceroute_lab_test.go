package prober

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/netlab"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// traceModule builds a traceroute module from YAML options (indented under
// traceroute:), through the config loader as a user's file would be.
func traceModule(t *testing.T, timeout time.Duration, opts string) config.Module {
	t.Helper()
	return probeTestModule(t, "traceroute", timeout, opts)
}

// runTrace runs one trace with the module's timeout and returns its result
// and how long it took.
func runTrace(t *testing.T, target string, m config.Module) (*TracerouteResult, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	start := time.Now()
	r := Run(ctx, ProbeTraceroute, Request{Target: target, Module: &m, Logger: traceTestLogger(t)})
	took := time.Since(start)
	res, ok := r.(*TracerouteResult)
	if !ok {
		t.Fatalf("result is %T: %+v", r, r)
	}
	t.Logf("%s %s: %s (hops %d, reached %v, hash %d, error %q, took %v)",
		res.Protocol, target, res, res.HopCount, res.DestinationReached, res.PathHash, res.Error, took.Round(time.Millisecond))
	return res, took
}

// hopAddresses are the lab's ground truth: the addresses a trace to target
// must report, in order.
func hopAddresses(p *netlab.Path, target *netlab.Node, v6 bool) []string {
	var s []string
	for _, h := range p.Hops(target) {
		if v6 {
			s = append(s, h.IPv6.String())
		} else {
			s = append(s, h.IPv4.String())
		}
	}
	return s
}

func resultAddresses(res *TracerouteResult) []string {
	var s []string
	for _, h := range res.Hops {
		s = append(s, h.Address)
	}
	return s
}

// checkTrace asserts a trace reached the destination over exactly want, with
// every hop answering every probe except those listed in silent.
func checkTrace(t *testing.T, res *TracerouteResult, want []string, silent ...int) {
	t.Helper()
	if !res.Success || !res.DestinationReached {
		t.Errorf("destination not reached: %s", res.Error)
	}
	if res.HopCount != len(want) || len(res.Hops) != len(want) {
		t.Fatalf("hop count %d (%d hops), want %d", res.HopCount, len(res.Hops), len(want))
	}
	if got := resultAddresses(res); !slices.Equal(got, want) {
		t.Errorf("hop addresses %v, want %v", got, want)
	}
	for i, h := range res.Hops {
		if h.TTL != i+1 || h.Sent != res.PacketsPerHop {
			t.Errorf("hop %d: ttl %d, sent %d; want %d, %d", i+1, h.TTL, h.Sent, i+1, res.PacketsPerHop)
		}
		if slices.Contains(silent, h.TTL) {
			if h.Received != 0 || h.LossRatio != 1 || h.RTTMeanSeconds != 0 {
				t.Errorf("silent hop %d: %+v", h.TTL, h)
			}
			continue
		}
		if h.Received != h.Sent || h.LossRatio != 0 || h.RTTMeanSeconds <= 0 || len(h.RTTsSeconds) != h.Sent {
			t.Errorf("hop %d: received %d of %d, loss %v, rtt %v", h.TTL, h.Received, h.Sent, h.LossRatio, h.RTTMeanSeconds)
		}
		if h.Destination != (i == len(want)-1) {
			t.Errorf("hop %d: destination %v", h.TTL, h.Destination)
		}
	}
	if res.PathHash == 0 || res.PathHash >= 1<<PathHashBits {
		t.Errorf("path hash %d out of range", res.PathHash)
	}
}

var reTracerouteHop = regexp.MustCompile(`(?m)^\s*\d+\s+(\S+)`)

// debianTraceroute runs Debian's traceroute (if installed) as a second
// opinion on the hop addresses.
func debianTraceroute(t *testing.T, args ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("traceroute"); err != nil {
		t.Log("traceroute(8) not installed: skipping the comparison")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "traceroute", append([]string{"-n", "-q", "1", "-w", "1", "-m", "8"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("traceroute: %v\n%s", err, out)
	}
	var hops []string
	for _, m := range reTracerouteHop.FindAllStringSubmatch(string(out), -1) {
		hops = append(hops, m[1])
	}
	return hops
}

// TestTracerouteLab traces through a lab path with three hops:
//
//	client ── gw ── isp1 ── remote
//
// and checks hop count and addresses against the lab's own (and Debian's
// traceroute), the path hash, a silent hop, unreachable destinations, and
// the udp and tcp modes through a router that drops ICMP echo.
func TestTracerouteLab(t *testing.T) {
	// The access link is a relay link (zero delay unless a subtest sets
	// one), so the tcp listener subtest can give the path a round trip.
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1, Access: netlab.LinkOpts{Relay: true}})
	remote := p.Host("remote")
	isp1 := p.ISP[0]
	l := remote.Listen("tcp", ":8080")
	testserver.Serve(t, l, time.Second, func(net.Conn) {}) // a handshake, then close
	targets := []struct {
		name string
		addr string
		v6   bool
	}{
		{"ipv4", remote.IPv4().String(), false},
		{"ipv6", remote.IPv6().String(), true},
	}
	// hop_timeout is generous for a loaded machine; traces that are
	// answered completely end after one round trip anyway.
	const hopTimeout = 2 * time.Second
	module := func(opts string) config.Module {
		if !strings.Contains(opts, "hop_timeout") {
			opts += "\nhop_timeout: 2s"
		}
		return traceModule(t, 5*time.Second, "max_hops: 10\n"+opts)
	}
	clean := map[string]uint64{}

	// Addresses on the isp1–remote link that no node has: the client routes
	// the link's subnets into the lab, but the gateway has routes only for
	// the nodes' own addresses, so it answers "no route" at once.
	//
	// This runs first: Linux limits these IPv4 "no route" errors (ip_error)
	// with a per-source token bucket (1 s per error, burst 5) that it
	// shares with the ICMP rate limit, and the lab's icmp_ratelimit=0
	// empties that bucket whenever the router sends any other ICMP error
	// to the client. After the other subtests the gateway would stay
	// silent for about a second.
	t.Run("unreachable_no_route", func(t *testing.T) {
		lk := p.HostLinks[0]
		v4 := lk.Prefix4.Addr().As4()
		v4[3] += 3 // the /30's last address: neither end's
		v6 := lk.Prefix6.Addr().As16()
		v6[15] = 0x99
		gw := p.Hops(remote)[0]
		for _, tg := range []struct {
			name, addr, gw, code string
		}{
			{"ipv4", netip.AddrFrom4(v4).String(), gw.IPv4.String(), "network"},
			{"ipv6", netip.AddrFrom16(v6).String(), gw.IPv6.String(), "no_route"},
		} {
			labRouted(t, p, tg.addr)
			res, took := runTrace(t, tg.addr, module(""))
			checkUnreachable(t, res, []string{tg.gw}, tg.code)
			if took >= hopTimeout {
				t.Errorf("%s: took %v; an unreachable answered by the gateway should end the trace at once", tg.name, took)
			}
		}
	})

	t.Run("icmp", func(t *testing.T) {
		for _, tg := range targets {
			want := hopAddresses(p, remote, tg.v6)
			res, took := runTrace(t, tg.addr, module(""))
			checkTrace(t, res, want)
			if took >= hopTimeout {
				t.Errorf("%s: a fully answered trace took %v: it should end once every hop answered, not after hop_timeout %v", tg.name, took, hopTimeout)
			}
			res2, _ := runTrace(t, tg.addr, module(""))
			if res2.PathHash != res.PathHash {
				t.Errorf("%s: same path, different hashes: %d and %d", tg.name, res.PathHash, res2.PathHash)
			}
			clean[tg.name] = res.PathHash
			args := []string{"-I", tg.addr}
			if tg.v6 {
				args = append([]string{"-6"}, args...)
			}
			if deb := debianTraceroute(t, args...); deb != nil && !slices.Equal(deb, want) {
				t.Errorf("%s: Debian traceroute saw %v, the lab says %v", tg.name, deb, want)
			}
		}
		if clean["ipv4"] == clean["ipv6"] {
			t.Errorf("IPv4 and IPv6 paths have the same hash %d", clean["ipv4"])
		}
	})

	// Paris traceroute: every probe of a trace that reaches the destination
	// (there, all TTLs from 3 up) belongs to the same flow: addresses,
	// protocol, ports or ICMP type/code/checksum/identifier, length, TOS,
	// IPv6 flow label. Only the probe's key differs.
	t.Run("paris_flow", func(t *testing.T) {
		for _, tg := range targets {
			for _, mode := range []struct {
				opts  string
				proto int
			}{{"", protoICMP}, {"protocol: udp", protoUDP}, {"protocol: tcp", protoTCP}} {
				proto := mode.proto
				if tg.v6 && proto == protoICMP {
					proto = protoICMPv6
				}
				c := startTraceCapture(t, remote)
				// Silent isp1 makes the trace wait, so every TTL is sent.
				rule := isp1.Silent()
				res, _ := runTrace(t, tg.addr, module(mode.opts+"\nhop_timeout: 300ms\npackets_per_hop: 2"))
				_ = rule.Remove()
				time.Sleep(50 * time.Millisecond) // let the capture drain
				pkts := c.close()
				if !res.DestinationReached {
					t.Fatalf("%s %q: not reached", tg.name, mode.opts)
				}
				// TTLs 3-10 reach remote, 2 probes each.
				checkParisFlow(t, pkts, proto, 2*(10-3+1))
			}
		}
	})

	// Concurrent traces (every mode, both families, three of each) share
	// the host's ICMP: each must see only its own answers.
	t.Run("concurrent", func(t *testing.T) {
		type job struct {
			addr, opts string
			want       []string
		}
		var jobs []job
		for _, tg := range targets {
			for _, opts := range []string{"", "protocol: udp", "protocol: tcp"} {
				for range 3 {
					jobs = append(jobs, job{tg.addr, opts, hopAddresses(p, remote, tg.v6)})
				}
			}
		}
		results := make([]*TracerouteResult, len(jobs))
		var wg sync.WaitGroup
		for i, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := module(j.opts)
				ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
				defer cancel()
				results[i], _ = Run(ctx, ProbeTraceroute, Request{Target: j.addr, Module: &m}).(*TracerouteResult)
			}()
		}
		wg.Wait()
		for i, j := range jobs {
			res := results[i]
			if res == nil {
				t.Fatalf("job %d: no traceroute result", i)
			}
			checkTrace(t, res, j.want)
			if res.Duplicates != 0 {
				t.Errorf("%s %s: %d duplicates", res.Protocol, j.addr, res.Duplicates)
			}
		}
	})

	t.Run("silent_hop", func(t *testing.T) {
		rule := isp1.Silent()
		defer rule.Remove()
		for _, tg := range targets {
			want := hopAddresses(p, remote, tg.v6)
			want[1] = TracerouteSilentAddress
			// The trace waits out hop_timeout for the silent hop.
			res, took := runTrace(t, tg.addr, module("hop_timeout: 1s"))
			checkTrace(t, res, want, 2)
			if took > 5*time.Second {
				t.Errorf("%s: took %v, longer than the module timeout", tg.name, took)
			}
			if res.PathHash == clean[tg.name] {
				t.Errorf("%s: a silent hop did not change the path hash", tg.name)
			}
			if took < time.Second {
				t.Errorf("%s: took %v: it cannot know hop 2 is silent before hop_timeout (1s)", tg.name, took)
			}
			res2, _ := runTrace(t, tg.addr, module("hop_timeout: 1s"))
			if res2.PathHash != res.PathHash {
				t.Errorf("%s: same silent path, different hashes: %d and %d", tg.name, res.PathHash, res2.PathHash)
			}
		}
	})

	// isp1 drops every echo request it would forward (and those for
	// itself): icmp traces stop at isp1 (which still answers TTL 2: the
	// TTL runs out before the forward filter), udp and tcp get through.
	t.Run("udp_tcp_through_icmp_filter", func(t *testing.T) {
		rule := isp1.DropICMPEcho()
		defer rule.Remove()
		for _, tg := range targets {
			want := hopAddresses(p, remote, tg.v6)
			res, took := runTrace(t, tg.addr, module("hop_timeout: 1s"))
			if res.DestinationReached || res.Success || res.HopCount != 2 || !slices.Equal(resultAddresses(res), want[:2]) {
				t.Errorf("%s icmp through an echo filter: reached %v, hops %v; want not reached, %v", tg.name, res.DestinationReached, resultAddresses(res), want[:2])
			}
			if took > 5*time.Second {
				t.Errorf("%s icmp: took %v, longer than the module timeout", tg.name, took)
			}
			for _, mode := range []string{"protocol: udp", "protocol: tcp", "protocol: tcp\nport: 8080", "protocol: udp\nport: 53"} {
				t.Run(tg.name+"/"+strings.ReplaceAll(mode, "\n", ","), func(t *testing.T) {
					res, _ := runTrace(t, tg.addr, module(mode))
					checkTrace(t, res, want)
					if res.SourcePort == 0 || res.Port == 0 {
						t.Errorf("ports not reported: %d → %d", res.SourcePort, res.Port)
					}
				})
			}
		}
	})

	// A listening destination at a real distance (10 ms round trip on the
	// access link, gw–isp1): its
	// first SYN opens a half-open connection that lives until our kernel's
	// RST (for the SYN-ACK) arrives, a round trip later; the other SYNs of
	// the trace (same ports) arrive before that. With consecutive sequence
	// numbers they fall inside its window and each gets a RST of its own;
	// with unrelated ones Linux would answer only the first (1 of 3
	// received: a false 67 % loss at the destination).
	t.Run("tcp_listener_rtt", func(t *testing.T) {
		p.Uplinks[0].SetDelay(5 * time.Millisecond)
		defer p.Uplinks[0].SetDelay(0)
		for _, tg := range targets {
			res, _ := runTrace(t, tg.addr, module("protocol: tcp\nport: 8080"))
			checkTrace(t, res, hopAddresses(p, remote, tg.v6))
			// Latency starts on the access link, behind hop 1: per-hop
			// RTTs show where.
			for _, h := range res.Hops {
				behind := h.TTL >= 2
				if behind && h.RTTMinSeconds < 0.010 || !behind && h.RTTMaxSeconds >= 0.010 {
					t.Errorf("%s: hop %d RTT %.4f-%.4fs; the 10ms round trip is behind hop 1", tg.name, h.TTL, h.RTTMinSeconds, h.RTTMaxSeconds)
				}
			}
		}
	})

	// isp1 silently drops everything for remote: the trace sees gw and
	// isp1, then nothing, and must end inside the module timeout even
	// though hop_timeout is longer.
	t.Run("unreachable_silent", func(t *testing.T) {
		rule := isp1.NFT(netlab.ChainForward,
			fmt.Sprintf("ip daddr %s drop", remote.IPv4()),
			fmt.Sprintf("ip6 daddr %s drop", remote.IPv6()))
		defer rule.Remove()
		for _, tg := range targets {
			want := hopAddresses(p, remote, tg.v6)
			const timeout = 1500 * time.Millisecond
			res, took := runTrace(t, tg.addr, traceModule(t, timeout, "hop_timeout: 10s\nmax_hops: 10"))
			if res.Success || res.DestinationReached || res.HopCount != 2 || !slices.Equal(resultAddresses(res), want[:2]) {
				t.Errorf("%s: success %v, reached %v, hops %v; want failure, not reached, %v", tg.name, res.Success, res.DestinationReached, resultAddresses(res), want[:2])
			}
			if took >= timeout {
				t.Errorf("%s: took %v, not inside the timeout %v", tg.name, took, timeout)
			}
			if !strings.Contains(res.Error, "destination not reached") {
				t.Errorf("%s: error %q", tg.name, res.Error)
			}
		}
	})

	// isp1 refuses to forward to remote with an ICMP error: TTL 2 still
	// expires at isp1 (the TTL is checked before the forward filter), TTL 3
	// gets isp1's destination-unreachable, which ends the trace at once.
	t.Run("unreachable_icmp", func(t *testing.T) {
		rule := isp1.NFT(netlab.ChainForward,
			fmt.Sprintf("ip daddr %s reject with icmp type host-unreachable", remote.IPv4()),
			fmt.Sprintf("ip6 daddr %s reject with icmpv6 type addr-unreachable", remote.IPv6()))
		defer rule.Remove()
		for _, tg := range targets {
			want := hopAddresses(p, remote, tg.v6)[:2]
			want = append(want, want[1])
			res, took := runTrace(t, tg.addr, module(""))
			checkUnreachable(t, res, want, map[bool]string{false: "host", true: "address"}[tg.v6])
			if took >= hopTimeout {
				t.Errorf("%s: took %v; an unreachable answered by a router should end the trace at once", tg.name, took)
			}
		}
	})

}

// checkUnreachable asserts a trace ended at a router that answered every
// probe of its TTL with destination-unreachable code.
func checkUnreachable(t *testing.T, res *TracerouteResult, want []string, code string) {
	t.Helper()
	if res.Success || res.DestinationReached {
		t.Errorf("success %v, reached %v; want neither", res.Success, res.DestinationReached)
	}
	if got := resultAddresses(res); res.HopCount != len(want) || !slices.Equal(got, want) {
		t.Fatalf("hops %v (count %d), want %v", got, res.HopCount, want)
	}
	if h := res.Hops[len(res.Hops)-1]; h.Unreachable != code || h.Received != h.Sent || h.Destination {
		t.Errorf("last hop %+v: want every probe answered %s unreachable", h, code)
	}
	if res.Unreachable == "" || !strings.Contains(res.Error, "unreachable") {
		t.Errorf("unreachable %q, error %q", res.Unreachable, res.Error)
	}
}

// labRouted stops the test unless the client's route to addr leads into the
// lab: probes must never leave it (DESIGN.md).
func labRouted(t *testing.T, p *netlab.Path, addr string) {
	t.Helper()
	out, err := exec.Command("ip", "route", "get", addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), " dev "+p.LAN.B.Name+" ") {
		t.Fatalf("%s is not routed into the lab (via %s): refusing to probe it: %v\n%s", addr, p.LAN.B.Name, err, out)
	}
}
