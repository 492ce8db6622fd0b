package prober

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	probing "github.com/prometheus-community/pro-bing"

	"github.com/isp-checker/isp-checker/config"
)

// icmpConcurrentTargets returns n loopback targets: distinct 127.20.x.y
// addresses (a reply from any other probe's target would show up as a
// foreign reply), and every sixth one ::1 (all IPv6 probes share it, so
// only identifiers and tracker UUIDs keep them apart).
func icmpConcurrentTargets(n int) []string {
	targets := make([]string, n)
	for i := range targets {
		targets[i] = fmt.Sprintf("127.20.%d.%d", i/250, 1+i%250)
		if i%6 == 5 {
			targets[i] = "::1"
		}
	}
	return targets
}

// runConcurrentICMP runs one probe per target at once and returns the
// results in target order.
func icmpRunConcurrent(tb testing.TB, targets []string, m config.Module) []*ICMPResult {
	results := make([]*ICMPResult, len(targets))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	for i, target := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Run(ctx, Request{Target: target, Module: m, Logger: nil})
			results[i], _ = r.(*ICMPResult)
		}()
	}
	wg.Wait()
	return results
}

// checkConcurrent asserts that every probe got only its own replies: none
// twice, none from another target, never more than it sent, and that
// concurrent raw-socket probes had distinct identifiers. It returns the
// replies missing overall: loopback loses none unless the machine is so
// overloaded that a new raw socket's queue fills with other probes'
// packets before pro-bing attaches its BPF filter, and the probe's
// goroutines cannot drain it before their own replies arrive (see
// icmpPing's comment); the caller decides how many it tolerates.
func icmpCheckConcurrent(tb testing.TB, targets []string, results []*ICMPResult, packets int) (lost int) {
	tb.Helper()
	ids := map[int]string{}
	bad := 0
	for i, res := range results {
		if res == nil {
			tb.Fatalf("probe %d (%s) returned no ICMPResult", i, targets[i])
		}
		lost += res.PacketsSent - res.PacketsReceived
		if res.PacketsSent != packets || res.PacketsReceived > res.PacketsSent || res.Duplicates != 0 || res.ForeignReplies != 0 ||
			!res.Success && res.PacketsReceived > 0 {
			bad++
			if bad <= 5 {
				tb.Errorf("probe %d (%s): success %v sent %d received %d duplicates %d foreign %d error %q",
					i, targets[i], res.Success, res.PacketsSent, res.PacketsReceived, res.Duplicates, res.ForeignReplies, res.Error)
			}
		}
		if res.SocketMode == ICMPSocketPrivileged {
			if other, dup := ids[res.EchoID]; dup {
				tb.Errorf("echo id %d used by two concurrent probes (%s and %s)", res.EchoID, other, targets[i])
			}
			ids[res.EchoID] = targets[i]
		}
	}
	if bad > 0 {
		tb.Errorf("%d of %d probes got replies that were not exactly their own", bad, len(results))
	}
	return lost
}

// Hundreds of concurrent multi-packet probes on loopback: each gets exactly
// its own replies, concurrent probes never share an identifier, and every
// identifier is released at the end.
func TestICMPConcurrentNoCrossTalk(t *testing.T) {
	icmpNeedSocket(t)
	before := icmpIDs.inUseCount()
	const probes, packets = 300, 10
	targets := icmpConcurrentTargets(probes)
	m := icmpModule(t, 15*time.Second, fmt.Sprintf("packets: %d\ninterval: 10ms\nreply_timeout: 2s", packets))
	start := time.Now()
	results := icmpRunConcurrent(t, targets, m)
	t.Logf("%d probes × %d packets in %v (mode %s)", probes, packets, time.Since(start).Round(time.Millisecond), results[0].SocketMode)
	// Every reply, except on a machine overloaded to the point where the
	// kernel drops loopback packets: then at most 0.5 %.
	if lost := icmpCheckConcurrent(t, targets, results, packets); lost > probes*packets/200 {
		t.Errorf("%d of %d replies missing", lost, probes*packets)
	} else if lost > 0 {
		t.Logf("%d of %d replies missing (overloaded machine)", lost, probes*packets)
	}
	if n := icmpIDs.inUseCount(); n != before {
		t.Errorf("%d echo identifiers still in use after the probes ended (%d before)", n, before)
	}
}

// Why a shared identifier still cannot mix replies up: pro-bing puts a
// per-Pinger tracker UUID in every payload and drops replies carrying
// another one. Two raw-socket Pingers forced onto the same identifier, to
// two targets at once, each count only their own replies.
func TestICMPProBingTrackerSeparatesSharedID(t *testing.T) {
	if err := icmpTrySocket(true, false); err != nil {
		t.Skipf("raw ICMP sockets not allowed: %v", err)
	}
	const packets = 50
	targets := []string{"127.21.0.1", "127.21.0.2"}
	type tally struct{ own, other, dup int }
	tallies := make([]tally, len(targets))
	var wg sync.WaitGroup
	for i, target := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := probing.New(target)
			p.SetIPAddr(&net.IPAddr{IP: net.ParseIP(target)})
			p.SetPrivileged(true)
			p.SetLogger(probing.NoopLogger{})
			p.SetID(4242) // the same for both
			p.Count, p.Interval = packets, 2*time.Millisecond
			p.OnRecv = func(pkt *probing.Packet) {
				if pkt.IPAddr.IP.Equal(net.ParseIP(target)) {
					tallies[i].own++
				} else {
					tallies[i].other++
				}
			}
			p.OnDuplicateRecv = func(*probing.Packet) { tallies[i].dup++ }
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.RunWithContext(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i, tl := range tallies {
		if tl.own != packets || tl.other != 0 || tl.dup != 0 {
			t.Errorf("%s: own %d other %d duplicates %d, want %d/0/0", targets[i], tl.own, tl.other, tl.dup, packets)
		}
	}
}
