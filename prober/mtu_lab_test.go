package prober

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/netlab"
)

// mtuModule builds an mtu module from YAML options through the config
// loader.
func mtuModule(t *testing.T, timeout time.Duration, opts string) config.Module {
	t.Helper()
	return probeTestModule(t, "mtu", timeout, opts)
}

func runMTU(t *testing.T, target string, m config.Module) (*MTUResult, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	start := time.Now()
	r := Run(ctx, ProbeMTU, Request{Target: target, Module: &m, Logger: traceTestLogger(t)})
	took := time.Since(start)
	res, ok := r.(*MTUResult)
	if !ok {
		t.Fatalf("result is %T: %+v", r, r)
	}
	t.Logf("mtu %s: %d bytes (method %s, black hole %v, icmp %d from %q, rounds %d, probes %d, ok %v, too big %v, error %q), took %v",
		target, res.PathMTUBytes, res.Method, res.BlackHole, res.ICMPMTUBytes, res.ICMPFrom, res.Rounds, res.ProbesSent,
		res.SizesOK, res.SizesTooBig, res.Error, took.Round(time.Millisecond))
	return res, took
}

// TestMTULab measures the path MTU through
//
//	client ── gw ── isp1 ══ isp2 ── remote
//
// where ══ has an MTU of 1400 bytes and every other link 1500: to isp1
// (before the narrow link) the path MTU is 1500, to remote 1400, found from
// isp1's fragmentation-needed / packet-too-big, and again, by the size
// search, when isp1 sends none (a black hole).
func TestMTULab(t *testing.T) {
	const narrow = 1400
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 2, Core: netlab.LinkOpts{MTU: narrow}})
	remote := p.Host("remote")
	hops := p.Hops(remote)
	isp1 := hops[1]
	module := mtuModule(t, 5*time.Second, "reply_timeout: 1s")
	type target struct {
		name string
		addr string
		v6   bool
	}
	remotes := []target{{"ipv4", remote.IPv4().String(), false}, {"ipv6", remote.IPv6().String(), true}}

	t.Run("clean", func(t *testing.T) {
		for _, tg := range []target{{"ipv4", isp1.IPv4.String(), false}, {"ipv6", isp1.IPv6.String(), true}} {
			res, _ := runMTU(t, tg.addr, module)
			if !res.Success || res.PathMTUBytes != 1500 || res.Method != MTUMethodLocal || res.BlackHole || res.MaxSizeBytes != 1500 {
				t.Errorf("%s: success %v, path MTU %d, method %s, black hole %v, max %d; want 1500 (%s), no black hole, max 1500: %s",
					tg.name, res.Success, res.PathMTUBytes, res.Method, res.BlackHole, res.MaxSizeBytes, MTUMethodLocal, res.Error)
			}
		}
	})

	// The routers' errors come from isp1, whose link to isp2 is the
	// narrow one.
	t.Run("icmp", func(t *testing.T) {
		for _, tg := range remotes {
			from := isp1.IPv4.String()
			if tg.v6 {
				from = isp1.IPv6.String()
			}
			res, _ := runMTU(t, tg.addr, module)
			if !res.Success || res.PathMTUBytes != narrow || res.Method != MTUMethodICMP || res.BlackHole {
				t.Errorf("%s: success %v, path MTU %d, method %s, black hole %v; want %d found by icmp: %s",
					tg.name, res.Success, res.PathMTUBytes, res.Method, res.BlackHole, narrow, res.Error)
			}
			if res.ICMPMTUBytes != narrow || res.ICMPFrom != from {
				t.Errorf("%s: ICMP said %d from %s, want %d from %s", tg.name, res.ICMPMTUBytes, res.ICMPFrom, narrow, from)
			}
			// Answered completely, the search needs one round.
			if res.Rounds != 1 {
				t.Errorf("%s: %d rounds, want 1", tg.name, res.Rounds)
			}
		}
	})

	// This runs after the icmp subtest on purpose: the client's kernel has
	// now cached a path MTU of 1400 for remote, which "probe" path-MTU
	// discovery must ignore, or sizes above it would be refused locally
	// and no black hole seen.
	t.Run("black_hole", func(t *testing.T) {
		for _, tg := range remotes {
			args := []string{"route", "get", tg.addr}
			if tg.v6 {
				args = append([]string{"-6"}, args...)
			}
			if out := p.Client.MustRun("ip", args...); !strings.Contains(out, fmt.Sprintf("mtu %d", narrow)) {
				t.Logf("%s: the client has no cached path MTU (the test still runs, but proves less): %s", tg.name, out)
			} else {
				t.Logf("%s: cached by the client's kernel: %s", tg.name, strings.TrimSpace(out))
			}
		}
		rule := p.ISP[0].BlackholePMTU()
		defer rule.Remove()
		for _, tg := range remotes {
			res, took := runMTU(t, tg.addr, module)
			if !res.Success || res.PathMTUBytes != narrow || res.Method != MTUMethodSearch || !res.BlackHole || res.ICMPMTUBytes != 0 {
				t.Errorf("%s: success %v, path MTU %d, method %s, black hole %v, icmp %d; want %d found by search, black hole, no icmp: %s",
					tg.name, res.Success, res.PathMTUBytes, res.Method, res.BlackHole, res.ICMPMTUBytes, narrow, res.Error)
			}
			if took >= module.Timeout {
				t.Errorf("%s: took %v, not inside the timeout %v", tg.name, took, module.Timeout)
			}
		}
	})

	// A target that does not answer ping: the probe fails inside its
	// timeout and says why.
	t.Run("no_echo", func(t *testing.T) {
		rule := remote.DropICMPEcho()
		defer rule.Remove()
		m := mtuModule(t, 2*time.Second, "reply_timeout: 500ms")
		res, took := runMTU(t, remote.IPv4().String(), m)
		if res.Success || res.PathMTUBytes != 0 || !strings.Contains(res.Error, "does not answer ping") {
			t.Errorf("success %v, path MTU %d, error %q", res.Success, res.PathMTUBytes, res.Error)
		}
		if took >= m.Timeout {
			t.Errorf("took %v, not inside the timeout %v", took, m.Timeout)
		}
	})
}
