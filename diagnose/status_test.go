package diagnose_test

import (
	"slices"
	"testing"

	"github.com/isp-checker/isp-checker/diagnose"
	dt "github.com/isp-checker/isp-checker/diagnose/diagnosetest"
	"github.com/isp-checker/isp-checker/prober"
)

// TestStatuses: every check's status comes from the thresholds the rules
// use (default: loss 5 %, gateway 50 ms, latency beyond the gateway
// 150 ms, jitter 30 ms), at and just past each threshold.
func TestStatuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *diagnose.ISPResult)
		got    func(s diagnose.Statuses) string
		want   string
	}{
		{"clean gateway", nil, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusOK},
		{"gateway loss at the threshold", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 20, 19, 0.001, 0.0001)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusOK},
		{"gateway loss above the threshold", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 20, 18, 0.060, 0.040)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusLossy},
		{"gateway at its latency threshold", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.050, 0.001)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusOK},
		{"gateway above its latency threshold", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.051, 0.001)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusSlow},
		{"gateway jitter above the threshold", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.002, 0.031)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusSlow},
		{"one reply says nothing of jitter", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 1, 1, 0.002, 0.031)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusOK},
		{"silent gateway", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 0, 0, 0)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusFail},
		{"gateway not pinged: no permission", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 0, 0, 0, 0)
			dt.NoPermission(&r.Checks.Gateway.Common)
		}, func(s diagnose.Statuses) string { return s.Gateway }, diagnose.StatusUnmeasured},
		// 190 ms to a target is 140 ms beyond a 50 ms gateway: below the
		// threshold, though 190 ms is above it.
		{"target below the latency threshold beyond the gateway", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.050, 0.001)
			r.Checks.Targets[1] = dt.Ping(dt.Target2, 30, 30, 0.190, 0.001)
		}, func(s diagnose.Statuses) string { return s.Targets[1] }, diagnose.StatusOK},
		{"target above the latency threshold beyond the gateway", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.050, 0.001)
			r.Checks.Targets[1] = dt.Ping(dt.Target2, 30, 30, 0.210, 0.001)
		}, func(s diagnose.Statuses) string { return s.Targets[1] }, diagnose.StatusSlow},
		{"target lossy", func(r *diagnose.ISPResult) {
			r.Checks.Targets[2] = dt.Lossy(dt.Target3, 0.3, 0.02)
		}, func(s diagnose.Statuses) string { return s.Targets[2] }, diagnose.StatusLossy},
		{"target silent", func(r *diagnose.ISPResult) {
			r.Checks.Targets[0] = dt.Ping(dt.Target1, 30, 0, 0, 0)
		}, func(s diagnose.Statuses) string { return s.Targets[0] }, diagnose.StatusFail},
		{"target no route", func(r *diagnose.ISPResult) {
			r.Checks.Targets[0] = dt.NoRoute(dt.Target1)
		}, func(s diagnose.Statuses) string { return s.Targets[0] }, diagnose.StatusFail},
		// A router's latency is its own business; only its loss shows.
		{"slow router", func(r *diagnose.ISPResult) {
			r.Checks.Hops[0].Ping = dt.Ping(dt.ISP1, 30, 30, 0.4, 0.1)
		}, func(s diagnose.Statuses) string { return s.Hops[0] }, diagnose.StatusOK},
		{"lossy router", func(r *diagnose.ISPResult) {
			r.Checks.Hops[1].Ping = dt.Lossy(dt.ISP2, 0.3, 0.009)
		}, func(s diagnose.Statuses) string { return s.Hops[1] }, diagnose.StatusLossy},
		{"router that ignores ping", func(r *diagnose.ISPResult) {
			r.Checks.Hops[0].Ping = dt.Ping(dt.ISP1, 30, 0, 0, 0)
		}, func(s diagnose.Statuses) string { return s.Hops[0] }, diagnose.StatusSilent},
		{"trace", nil, func(s diagnose.Statuses) string { return s.Trace }, diagnose.StatusOK},
		{"trace without permission", func(r *diagnose.ISPResult) {
			r.Checks.Trace.Success = false
			dt.NoPermission(&r.Checks.Trace.Common)
		}, func(s diagnose.Statuses) string { return s.Trace }, diagnose.StatusUnmeasured},
		{"black hole", func(r *diagnose.ISPResult) {
			r.Checks.MTU = dt.MTU(dt.Target1, 1400, true)
		}, func(s diagnose.Statuses) string { return s.MTU }, diagnose.StatusBlackHole},
		{"resolver that rewrites NXDOMAIN", func(r *diagnose.ISPResult) {
			r.Checks.DNS[1].Integrity = dt.Integrity(dt.DNS2, "198.51.100.80")
		}, func(s diagnose.Statuses) string { return s.DNS[0] + " " + s.DNS[1] }, "ok rewrites"},
		{"silent resolver", func(r *diagnose.ISPResult) {
			r.Checks.DNS[0] = dt.DNS(dt.DNS1, false, 0)
		}, func(s diagnose.Statuses) string { return s.DNS[0] }, diagnose.StatusFail},
		{"resolver not asked", func(r *diagnose.ISPResult) {
			r.Checks.DNS[0].Result = nil
		}, func(s diagnose.Statuses) string { return s.DNS[0] }, diagnose.StatusUnmeasured},
		{"site refused", func(r *diagnose.ISPResult) {
			r.Checks.HTTP[1] = dt.HTTP(dt.Site2, false)
		}, func(s diagnose.Statuses) string { return s.HTTP[0] + " " + s.HTTP[1] }, "ok fail"},
		{"speed test not run", func(r *diagnose.ISPResult) {
			r.Checks.Throughput = dt.Speed(0.01, 0.02)
			r.Checks.Throughput.Success, r.Checks.Throughput.Reason = false, prober.ReasonNotRun
		}, func(s diagnose.Statuses) string { return s.Throughput }, diagnose.StatusUnmeasured},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := dt.Healthy()
			if tc.change != nil {
				tc.change(r)
			}
			diagnose.Diagnose(r)
			if got := tc.got(r.Statuses); got != tc.want {
				t.Errorf("status %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStatusesFollowTheChecks: one status per check, in the order of the
// checks, and none for a check that is absent.
func TestStatusesFollowTheChecks(t *testing.T) {
	r := dt.Healthy()
	r.Checks.Targets[1] = nil
	r.Checks.Gateway, r.Checks.MTU = nil, nil
	diagnose.Diagnose(r)
	s := r.Statuses
	if !slices.Equal(s.Targets, []string{"ok", "", "ok"}) || len(s.Hops) != 2 || len(s.DNS) != 2 || len(s.HTTP) != 2 ||
		s.Gateway != "" || s.MTU != "" || s.Throughput != "" {
		t.Errorf("statuses %+v", s)
	}
}
