package prober

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/netlab"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// TestICMPLab checks the icmp prober against ground truth built in the lab:
// client ── gw ══ isp1 ── remote, where ══ (the access link) is a relay
// link whose delay and jitter the subtests set, and whose gateway end drops
// a chosen fraction of the echo requests with nftables.
func TestICMPLab(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1, Access: netlab.LinkOpts{Relay: true}})
	remote := p.Host("remote")
	access := p.Uplinks[0]
	// A reply from remote crosses gw and isp1: its TTL is 64 less one per router.
	wantHops := 64 - len(p.Routers())

	t.Run("clean", func(t *testing.T) {
		for _, target := range []string{remote.IPv4().String(), remote.IPv6().String()} {
			res, _ := runICMPProbe(t, target, icmpModule(t, 5*time.Second, "packets: 50\ninterval: 5ms"), nil)
			icmpCheckClean(t, res, 50)
			if res.HopLimit == nil || *res.HopLimit != wantHops {
				t.Errorf("%s: hop limit %v, want %d (64 - %d routers)", target, res.HopLimit, wantHops, len(p.Routers()))
			}
		}
	})

	// blackbox's ttl and dont_fragment, against the path's known hop count
	// and MTU (1500 on every link): a TTL that expires at a router gets no
	// echo reply; one that reaches the host does. With DF a 1472-byte
	// payload (a 1500-byte packet) passes and 1473 bytes cannot be sent;
	// without DF 1473 bytes are fragmented and answered.
	//
	// On a raw socket the router's time-exceeded reaches the probe, and
	// its error names that router (the last one before the target, by the
	// address of one of its links).
	t.Run("ttl and dont_fragment", func(t *testing.T) {
		target := remote.IPv4().String()
		routers := p.Routers()
		hops := len(routers) + 1
		var lastAddrs []string
		for _, e := range routers[len(routers)-1].Ends() {
			lastAddrs = append(lastAddrs, "time exceeded from "+e.IPv4.String())
		}
		for _, tc := range []struct {
			opts, rawErr string
			ok           bool
		}{
			{fmt.Sprintf("ttl: %d", hops), "", true},
			{fmt.Sprintf("ttl: %d\nreply_timeout: 300ms", hops-1), strings.Join(lastAddrs, "|"), false},
			{"dont_fragment: true\npayload_size: 1472", "", true},
			{"dont_fragment: true\npayload_size: 1473", "message too long", false},
			{"payload_size: 1473", "", true},
		} {
			res, _ := runICMPProbe(t, target, icmpModule(t, 2*time.Second, tc.opts), nil)
			t.Logf("%q: success %v received %d error %q", tc.opts, res.Success, res.PacketsReceived, res.Error)
			if res.Success != tc.ok {
				t.Errorf("%q: success %v, want %v (error %q)", tc.opts, res.Success, tc.ok, res.Error)
			}
			if tc.rawErr != "" && res.SocketMode == ICMPSocketPrivileged &&
				!slices.ContainsFunc(strings.Split(tc.rawErr, "|"), func(w string) bool { return strings.Contains(res.Error, w) }) {
				t.Errorf("%q: error %q, want it to say %q", tc.opts, res.Error, tc.rawErr)
			}
		}
	})

	// Loss is injected on the requests only (egress of the gateway's
	// access end), so the echo loss equals the injected ratio. 100 packets
	// at ratio p lose a binomial number: standard deviation
	// sqrt(p(1-p)/100) = 0.043 at p = 0.25, so the tolerance is 4σ = ±0.17
	// (a false alarm once in ~16000 runs). 0 and 1 are exact.
	t.Run("loss", func(t *testing.T) {
		const n = 100
		for _, tc := range []struct {
			ratio  float64
			target string
		}{
			{0, remote.IPv4().String()},
			{0.25, remote.IPv4().String()},
			{0.25, remote.IPv6().String()},
			{1, remote.IPv4().String()},
		} {
			tol := 4 * math.Sqrt(tc.ratio*(1-tc.ratio)/n)
			var rule *netlab.Rule
			if tc.ratio == 1 {
				// netlab's Loss(1) builds an nft rule nft rejects
				// ("< 1000000" is out of numgen's range); a firewall
				// dropping every echo request is the same ground truth.
				rule = remote.DropICMPEcho()
			} else {
				rule = access.A.Loss(tc.ratio)
			}
			opts := fmt.Sprintf("packets: %d\ninterval: 10ms", n)
			timeout := 2 * time.Second
			if tc.ratio < 1 {
				opts += "\nreply_timeout: 500ms" // the all-lost probe runs to its timeout
				timeout = 5 * time.Second
			}
			res, took := runICMPProbe(t, tc.target, icmpModule(t, timeout, opts), nil)
			if err := rule.Remove(); err != nil {
				t.Fatal(err)
			}
			t.Logf("injected loss %.2f to %s: measured %.2f (%d/%d lost), tolerance ±%.3f; took %v",
				tc.ratio, tc.target, res.LossRatio, res.PacketsSent-res.PacketsReceived, res.PacketsSent, tol, took.Round(time.Millisecond))
			if res.PacketsSent != n || math.Abs(res.LossRatio-tc.ratio) > tol || res.Duplicates != 0 {
				t.Errorf("loss %.2f injected: sent %d, loss ratio %.3f, duplicates %d; want %d, %.2f ± %.3f, 0",
					tc.ratio, res.PacketsSent, res.LossRatio, res.Duplicates, n, tc.ratio, tol)
			}
			if tc.ratio == 1 && (res.Success || took >= timeout) {
				t.Errorf("all lost: success %v, took %v of its %v timeout", res.Success, took, timeout)
			}
			if tc.ratio < 1 && !res.Success {
				t.Errorf("loss %.2f: probe failed: %s", tc.ratio, res.Error)
			}
		}
	})

	// A one-way delay of 25 ms each way puts the RTT at 50 ms plus the
	// relay's and the stack's overhead. Nothing can come back faster than
	// 50 ms; the mean may exceed it by at most 15 ms (a generous bound for a
	// loaded 2-core machine; it is usually < 1 ms). TCP connects take one
	// RTT, too. iputils ping, run at the same time on the same path (so
	// both see the same relay and the same load), agrees with the probe
	// within 0.2 ms: both take the kernel's receive timestamp and the clock
	// just before sending. The minima are compared: the relay only ever adds
	// delay, and its wake-ups make the RTTs bimodal (50.3 ms and 51-52 ms
	// here), so two streams' medians can fall in different modes, while
	// both minima sit on the path's floor. Time the probe added to every
	// echo would lift its minimum. The means agree within 10 ms.
	t.Run("delay", func(t *testing.T) {
		const want, tol = 50 * time.Millisecond, 15 * time.Millisecond
		access.SetDelay(want / 2)
		defer access.SetDelay(0)
		target := remote.IPv4().String()
		var ping icmpPingRun
		pingDone := make(chan struct{})
		go func() {
			defer close(pingDone)
			ping = icmpIputilsPing(t, target, 100)
		}()
		res, _ := runICMPProbe(t, target, icmpModule(t, 5*time.Second, "packets: 100\ninterval: 20ms"), nil)
		<-pingDone
		icmpCheckClean(t, res, 100)
		icmpCheckRTT(t, "icmp", res, want, tol)

		l := remote.Listen("tcp", ":7")
		testserver.Serve(t, l, time.Second, func(net.Conn) {}) // a handshake, then close
		tcp, _ := runICMPProbe(t, target, icmpModule(t, 5*time.Second, "protocol: tcp\nport: 7\npackets: 10\ninterval: 20ms"), nil)
		icmpCheckClean(t, tcp, 10)
		icmpCheckRTT(t, "tcp", tcp, want, tol)

		if ping.err != nil {
			t.Fatal(ping.err)
		}
		ours, oursMin := icmpSeconds(res.RTTMeanSeconds), icmpSeconds(res.RTTMinSeconds)
		diff, diffMin := (ours - ping.mean).Abs(), (oursMin - ping.min).Abs()
		t.Logf("same path, same time: probe mean %v min %v, iputils ping mean %v min %v; differences %v, %v (margins 10ms, 0.2ms)",
			ours, oursMin, ping.mean, ping.min, diff, diffMin)
		if diff > 10*time.Millisecond {
			t.Errorf("probe mean RTT %v and ping's %v differ by %v, more than 10ms:\n%s", ours, ping.mean, diff, ping.out)
		}
		if diffMin > 200*time.Microsecond {
			t.Errorf("probe minimum RTT %v and ping's %v differ by %v, more than 0.2ms:\n%s", oursMin, ping.min, diffMin, ping.out)
		}
	})

	// Jitter: the relay adds a uniform [0, J) delay per packet and
	// direction, so an RTT varies by U1+U2 and consecutive RTTs differ by
	// 7J/15 on average. For 100 packets the estimate's standard deviation is
	// 0.04·J (simulated), so the tolerance is 4σ = 0.16·J plus 1 ms for the
	// relay's own scheduling noise.
	t.Run("jitter", func(t *testing.T) {
		const j = 15 * time.Millisecond
		access.SetJitter(j)
		defer access.SetJitter(0)
		res, _ := runICMPProbe(t, remote.IPv4().String(), icmpModule(t, 5*time.Second, "packets: 100\ninterval: 20ms"), nil)
		icmpCheckClean(t, res, 100)
		want := 7 * j.Seconds() / 15
		tol := 0.16*j.Seconds() + 0.001
		t.Logf("jitter [0,%v) per direction: measured %v, expected %v ± %v", j, icmpSeconds(res.JitterSeconds), icmpSeconds(want), icmpSeconds(tol))
		if math.Abs(res.JitterSeconds-want) > tol {
			t.Errorf("jitter %v, want %v ± %v", icmpSeconds(res.JitterSeconds), icmpSeconds(want), icmpSeconds(tol))
		}
	})

	// Unprivileged datagram ICMP, in a namespace whose ping_group_range
	// lets root's group in (the sysctl is per namespace, so the host's stays
	// closed). The kernel picks each socket's identifier and demultiplexes
	// the replies: 50 concurrent probes each get exactly their own.
	t.Run("unprivileged", func(t *testing.T) {
		remote.Sysctl("net.ipv4.ping_group_range", "0 2147483647")
		const probes, packets = 50, 5
		results := make([]*ICMPResult, probes)
		var wg sync.WaitGroup
		for i := range probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				socket := []string{"auto", "unprivileged"}[i%2]
				target := fmt.Sprintf("127.0.%d.%d", i/200, 1+i%200)
				if i%5 == 0 {
					target = "::1"
				}
				_ = remote.Do(func() error {
					results[i], _ = runICMPProbe(t, target, icmpModule(t, 3*time.Second,
						fmt.Sprintf("packets: %d\ninterval: 10ms\nsocket: %s", packets, socket)), nil)
					return nil
				})
			}()
		}
		wg.Wait()
		for i, res := range results {
			if res == nil {
				t.Fatalf("probe %d did not run", i)
			}
			if res.SocketMode != ICMPSocketUnprivileged || res.EchoID != 0 {
				t.Errorf("probe %d: socket mode %q echo id %d, want unprivileged, kernel-chosen", i, res.SocketMode, res.EchoID)
			}
			if res.HopLimit == nil || *res.HopLimit != 64 {
				t.Errorf("probe %d: hop limit %v, want 64 (loopback) from the datagram socket too", i, res.HopLimit)
			}
			icmpCheckClean(t, res, packets)
		}
	})
}

func icmpCheckRTT(t *testing.T, what string, res *ICMPResult, want, tol time.Duration) {
	t.Helper()
	lo, mean := icmpSeconds(res.RTTMinSeconds), icmpSeconds(res.RTTMeanSeconds)
	t.Logf("%s: injected RTT %v: min/mean/max %v/%v/%v", what, want, lo, mean, icmpSeconds(res.RTTMaxSeconds))
	if lo < want || mean > want+tol {
		t.Errorf("%s: RTT min %v mean %v, want min >= %v and mean <= %v", what, lo, mean, want, want+tol)
	}
}

var icmpPingRTTLine = regexp.MustCompile(`rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/`)

// icmpPingRun is what one iputils ping run reported.
type icmpPingRun struct {
	min, mean time.Duration // from the summary, to the µs
	out       string
	err       error
}

// icmpIputilsPing runs iputils ping from the test process (the lab's
// client), count packets 20 ms apart, and returns its mean and its
// per-reply RTTs. It may run on another goroutine than the test's: it
// reports errors in the result.
func icmpIputilsPing(t *testing.T, target string, count int) icmpPingRun {
	if _, err := exec.LookPath("ping"); err != nil {
		return icmpPingRun{err: errors.New("iputils ping not installed")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.02", "-W", "2", target).CombinedOutput()
	r := icmpPingRun{out: string(out)}
	if err != nil {
		r.err = fmt.Errorf("ping: %w\n%s", err, out)
		return r
	}
	m := icmpPingRTTLine.FindSubmatch(out)
	if m == nil {
		r.err = fmt.Errorf("no RTT summary in ping output:\n%s", out)
		return r
	}
	ms := func(b []byte) time.Duration {
		v, _ := strconv.ParseFloat(string(b), 64)
		return time.Duration(v * float64(time.Millisecond))
	}
	r.min, r.mean = ms(m[1]), ms(m[2])
	return r
}
