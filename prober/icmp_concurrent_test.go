package prober

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/scratchns"
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

// runConcurrentICMP runs one probe per target at once, every request
// pointing at the one module m as /probe's do, and returns the results in
// target order; do, when set, runs each probe (e.g. on a thread in another
// network namespace). The probes must leave m as it was.
func icmpRunConcurrent(tb testing.TB, targets []string, m config.Module, do func(func())) []*ICMPResult {
	before := m
	results := make([]*ICMPResult, len(targets))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	for i, target := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probe := func() {
				r := Run(ctx, ProbeICMP, Request{Target: target, Module: &m, Logger: nil})
				results[i], _ = r.(*ICMPResult)
			}
			if do != nil {
				do(probe)
				return
			}
			probe()
		}()
	}
	wg.Wait()
	if !reflect.DeepEqual(m, before) {
		tb.Errorf("the probes changed their shared module:\n got %+v\nwant %+v", m.ICMP, before.ICMP)
	}
	return results
}

// checkConcurrent asserts that every probe got only its own replies: none
// twice, none from another target, never more than it sent, and that
// concurrent raw-socket probes had distinct identifiers. It returns the
// replies missing overall (on loopback, with the echo engine: none).
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
// its own replies, none is lost, concurrent probes never share an
// identifier, and every identifier is released at the end.
func TestICMPConcurrentNoCrossTalk(t *testing.T) {
	icmpNeedSocket(t)
	icmpConcurrentNoCrossTalk(t, "auto", nil)
}

// The same on datagram sockets, in a namespace of the test's own whose
// ping_group_range admits root's group: every probe of an IP version then
// shares the socket's one identifier, and only the tokens in the payloads
// keep them apart. Each probe runs on a thread inside that namespace.
func TestICMPConcurrentNoCrossTalkUnprivileged(t *testing.T) {
	ns := scratchns.New(t)
	icmpConcurrentNoCrossTalk(t, "unprivileged", func(f func()) {
		if err := ns.Do(f); err != nil {
			t.Error(err)
		}
	})
}

func icmpConcurrentNoCrossTalk(t *testing.T, socket string, do func(func())) {
	before := icmpIDs.inUseCount()
	const probes, packets = 300, 10
	targets := icmpConcurrentTargets(probes)
	m := icmpModule(t, 15*time.Second, fmt.Sprintf("packets: %d\ninterval: 10ms\nreply_timeout: 2s\nsocket: %s", packets, socket))
	start := time.Now()
	results := icmpRunConcurrent(t, targets, m, do)
	t.Logf("%d probes × %d packets in %v (mode %s)", probes, packets, time.Since(start).Round(time.Millisecond), results[0].SocketMode)
	if lost := icmpCheckConcurrent(t, targets, results, packets); lost > 0 {
		t.Errorf("%d of %d replies missing", lost, probes*packets)
	}
	if socket != "auto" && results[0].SocketMode != socket {
		t.Errorf("socket mode %s, want %s", results[0].SocketMode, socket)
	}
	if n := icmpIDs.inUseCount(); n != before {
		t.Errorf("%d echo identifiers still in use after the probes ended (%d before)", n, before)
	}
}
