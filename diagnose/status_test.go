package diagnose_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/isp-checker/isp-checker/diagnose"
	dt "github.com/isp-checker/isp-checker/internal/diagnosetest"
	"github.com/isp-checker/isp-checker/prober"
)

// statusOf names every status of s: "gateway", "target 1", "hop 0", …
func statusOf(s diagnose.Statuses) map[string]string {
	m := map[string]string{"gateway": s.Gateway, "trace": s.Trace, "mtu": s.MTU, "speed": s.Throughput}
	for kind, list := range map[string][]string{"target": s.Targets, "hop": s.Hops, "dns": s.DNS, "http": s.HTTP} {
		for i, v := range list {
			m[fmt.Sprintf("%s %d", kind, i)] = v
		}
	}
	return m
}

// TestStatuses: every check's status comes from the thresholds the rules
// use (default: loss 5 %, gateway 50 ms, latency beyond the gateway
// 150 ms, jitter 30 ms), at and just past each threshold.
func TestStatuses(t *testing.T) {
	gateway := func(sent, received int, rtt, jitter float64) func(*diagnose.ISPResult) {
		return func(r *diagnose.ISPResult) { r.Checks.Gateway = dt.Ping(dt.Gateway, sent, received, rtt, jitter) }
	}
	// target sets the gateway's RTT to 50 ms and target i's ping.
	target := func(i, received int, rtt float64) func(*diagnose.ISPResult) {
		return func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.050, 0.001)
			r.Checks.Targets[i] = dt.Ping(r.Checks.Targets[i].Target, 30, received, rtt, 0.001)
		}
	}
	hop := func(i int, p *prober.ICMPResult) func(*diagnose.ISPResult) {
		return func(r *diagnose.ISPResult) { r.Checks.Hops[i].Ping = p }
	}
	tests := []struct {
		name   string
		change func(r *diagnose.ISPResult)
		check  string
		want   string
	}{
		{"clean gateway", nil, "gateway", diagnose.StatusOK},
		{"gateway loss at the threshold", gateway(20, 19, 0.001, 0.0001), "gateway", diagnose.StatusOK},
		{"gateway loss above the threshold", gateway(20, 18, 0.060, 0.040), "gateway", diagnose.StatusLossy},
		{"gateway at its latency threshold", gateway(30, 30, 0.050, 0.001), "gateway", diagnose.StatusOK},
		{"gateway above its latency threshold", gateway(30, 30, 0.051, 0.001), "gateway", diagnose.StatusSlow},
		{"gateway jitter above the threshold", gateway(30, 30, 0.002, 0.031), "gateway", diagnose.StatusSlow},
		{"one reply says nothing of jitter", gateway(1, 1, 0.002, 0.031), "gateway", diagnose.StatusOK},
		{"silent gateway", gateway(30, 0, 0, 0), "gateway", diagnose.StatusFail},
		{"gateway not pinged: no permission", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 0, 0, 0, 0)
			dt.NoPermission(&r.Checks.Gateway.Common)
		}, "gateway", diagnose.StatusUnmeasured},
		// 190 ms to a target is 140 ms beyond a 50 ms gateway: below the
		// threshold, though 190 ms is above it.
		{"target below the latency threshold beyond the gateway", target(1, 30, 0.190), "target 1", diagnose.StatusOK},
		{"target above the latency threshold beyond the gateway", target(1, 30, 0.210), "target 1", diagnose.StatusSlow},
		{"target lossy", target(2, 21, 0.020), "target 2", diagnose.StatusLossy},
		{"target silent", target(0, 0, 0), "target 0", diagnose.StatusFail},
		{"target no route", func(r *diagnose.ISPResult) { r.Checks.Targets[0] = dt.NoRoute(dt.Target1) }, "target 0", diagnose.StatusFail},
		// A router's latency is its own business; only its loss shows.
		{"slow router", hop(0, dt.Ping(dt.ISP1, 30, 30, 0.4, 0.1)), "hop 0", diagnose.StatusOK},
		{"lossy router", hop(1, dt.Lossy(dt.ISP2, 0.3, 0.009)), "hop 1", diagnose.StatusLossy},
		{"router that ignores ping", hop(0, dt.Ping(dt.ISP1, 30, 0, 0, 0)), "hop 0", diagnose.StatusSilent},
		{"trace", nil, "trace", diagnose.StatusOK},
		{"trace without permission", func(r *diagnose.ISPResult) { dt.NoPermission(&r.Checks.Trace.Common) }, "trace", diagnose.StatusUnmeasured},
		{"black hole", func(r *diagnose.ISPResult) { r.Checks.MTU = dt.MTU(dt.Target1, 1400, true) }, "mtu", diagnose.StatusBlackHole},
		{"resolver that rewrites NXDOMAIN", func(r *diagnose.ISPResult) {
			r.Checks.DNS[1].Integrity = dt.Integrity(dt.DNS2, "198.51.100.80")
		}, "dns 1", diagnose.StatusRewrites},
		{"silent resolver", func(r *diagnose.ISPResult) { r.Checks.DNS[0] = dt.DNS(dt.DNS1, false, 0) }, "dns 0", diagnose.StatusFail},
		{"resolver not asked", func(r *diagnose.ISPResult) { r.Checks.DNS[0].Result = nil }, "dns 0", diagnose.StatusUnmeasured},
		{"site refused", func(r *diagnose.ISPResult) { r.Checks.HTTP[1] = dt.HTTP(dt.Site2, false) }, "http 1", diagnose.StatusFail},
		{"the other site", func(r *diagnose.ISPResult) { r.Checks.HTTP[1] = dt.HTTP(dt.Site2, false) }, "http 0", diagnose.StatusOK},
		{"speed test not run", func(r *diagnose.ISPResult) {
			r.Checks.Throughput = dt.Speed(0.01, 0.02)
			r.Checks.Throughput.Success, r.Checks.Throughput.Reason = false, prober.ReasonNotRun
		}, "speed", diagnose.StatusUnmeasured},
	}
	for _, tc := range tests {
		if got := statusOf(diagnosed(tc.change).Statuses)[tc.check]; got != tc.want {
			t.Errorf("%s: %s status %q, want %q", tc.name, tc.check, got, tc.want)
		}
	}
}

// TestStatusesFollowTheChecks: one status per check, in the order of the
// checks, and none for a check that is absent.
func TestStatusesFollowTheChecks(t *testing.T) {
	r := diagnosed(func(r *diagnose.ISPResult) {
		r.Checks.Targets[1] = nil
		r.Checks.Gateway, r.Checks.MTU = nil, nil
	})
	s := r.Statuses
	if !slices.Equal(s.Targets, []string{"ok", "", "ok"}) || len(s.Hops) != 2 || len(s.DNS) != 2 || len(s.HTTP) != 2 ||
		s.Gateway != "" || s.MTU != "" || s.Throughput != "" {
		t.Errorf("statuses %+v", s)
	}
}
