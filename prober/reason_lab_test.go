package prober

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/netlab"
)

// TestReasonLab tells this host's own "no route" from a router's
// destination-unreachable, in the lab client ── gw ── isp1 ── remote:
// routes the client's table refuses (unreachable, prohibit, blackhole) are
// no_route, for ping and TCP alike, and the ping ends in its time; the
// same errnos handed to a TCP connect by isp1's ICMP answer (host and net
// unreachable, administratively prohibited) are a measurement of the path,
// with no reason, and a ping through it is plain loss.
func TestReasonLab(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	remote := p.Host("remote")
	remote.Listen("tcp", ":80")
	targets := []string{remote.IPv4().String(), remote.IPv6().String()}
	ping := icmpModule(t, 2*time.Second, "packets: 3\ninterval: 100ms\nsocket: privileged")
	tcp := probeTestModule(t, "tcp", 2*time.Second, "")

	for _, route := range []string{"unreachable", "prohibit", "blackhole"} {
		t.Run(route+" route", func(t *testing.T) {
			for _, target := range targets {
				prefix := target + "/32"
				if strings.Contains(target, ":") {
					prefix = target + "/128"
				}
				clientRoute(t, p, "add", route, prefix)
				t.Cleanup(func() { _, _ = p.Client.Run(context.Background(), "ip", "route", "del", route, prefix) })
				res := icmpWithin(t, target, ping)
				if res.Reason != ReasonNoRoute || res.PacketsSent != 0 || !strings.Contains(res.Error, "this host has no route to "+target) {
					t.Errorf("ping %s: reason %q, %d sent, error %q; want no_route, nothing sent", target, res.Reason, res.PacketsSent, res.Error)
				}
				tr := tcpTestRun(t, 3*time.Second, net.JoinHostPort(target, "80"), tcp)
				if tr.Success || tr.Reason != ReasonNoRoute {
					t.Errorf("tcp %s: success %v, reason %q (error %q); want no_route", target, tr.Success, tr.Reason, tr.Error)
				}
				clientRoute(t, p, "del", route, prefix)
			}
		})
	}

	for _, tc := range []struct{ name, v4, v6 string }{
		{"host unreachable", "icmp type host-unreachable", "icmpv6 type addr-unreachable"},
		{"net unreachable", "icmp type net-unreachable", "icmpv6 type no-route"},
		{"administratively prohibited", "icmp type admin-prohibited", "icmpv6 type admin-prohibited"},
	} {
		t.Run("router answers "+tc.name, func(t *testing.T) {
			r := p.ISP[0].NFT(netlab.ChainForward,
				"ip daddr "+targets[0]+" reject with "+tc.v4,
				"ip6 daddr "+targets[1]+" reject with "+tc.v6)
			defer func() {
				if err := r.Remove(); err != nil {
					t.Fatal(err)
				}
			}()
			for _, target := range targets {
				tr := tcpTestRun(t, 3*time.Second, net.JoinHostPort(target, "80"), tcp)
				if tr.Success || tr.Reason != "" || tr.DurationSeconds > 1.5 {
					t.Errorf("tcp %s: success %v, reason %q after %.2fs (error %q); want a prompt failure with no reason (a router's answer)",
						target, tr.Success, tr.Reason, tr.DurationSeconds, tr.Error)
				}
				res := icmpWithin(t, target, ping)
				if res.Reason != "" || res.PacketsSent != 3 || res.PacketsReceived != 0 {
					t.Errorf("ping %s: reason %q, %d sent, %d received (error %q); want 3 sent, none answered, no reason",
						target, res.Reason, res.PacketsSent, res.PacketsReceived, res.Error)
				}
			}
		})
	}
}

// clientRoute adds or deletes a route of type kind in the client.
func clientRoute(t *testing.T, p *netlab.Path, op, kind, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Client.Run(ctx, "ip", "route", op, kind, prefix); err != nil && op == "add" {
		t.Fatal(err)
	}
}

// icmpWithin runs a ping and fails the test if it has not returned a
// second after its module's timeout (the probe would hang otherwise).
func icmpWithin(t *testing.T, target string, m config.Module) *ICMPResult {
	t.Helper()
	done := make(chan *ICMPResult, 1)
	go func() { res, _ := runICMPProbe(t, target, m, nil); done <- res }()
	select {
	case res := <-done:
		return res
	case <-time.After(m.Timeout + time.Second):
		t.Fatalf("ping %s has not returned %v after its %v timeout", target, time.Second, m.Timeout)
	}
	return nil
}
