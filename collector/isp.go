package collector

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/diagnose"
	"github.com/isp-checker/isp-checker/prober"
)

// RenderISP writes the isp prober's metrics (none exists in blackbox_exporter):
//
//   - probe_isp_health_score: the health score, 0–1 (the weakest
//     dimension; 0 when the verdict is down). Absent when the verdict is
//     unknown: nothing was measured to score.
//   - probe_isp_fault{segment}: one series per segment (none, lan, isp,
//     dns, remote, unknown), 1 for the diagnosed one and 0 for the others,
//     so an alert is `probe_isp_fault{segment=~"lan|isp|dns|remote"} == 1`.
//   - probe_isp_verdict: 0 healthy, 1 degraded, 2 down, 4 unknown (the
//     exit code of `isp-checker run`; compare with ==, since 4 is not
//     "worse than down").
//   - probe_isp_dimension_score{dimension}: each measured dimension's
//     score, 0–1 (loss, latency, jitter, dns, bufferbloat; 0.5 at its
//     threshold); a dimension not measured has no series.
//   - probe_isp_check_success{check,target}: 1 if that check passed
//     (gateway, ping, dns, http, mtu, speed; a ping passes when a reply
//     came, mtu when no black hole was found). A check that could not run
//     (no permission, no socket, no time) has no series: it is neither a
//     pass nor a failure.
//
// probe_success is 0 when the verdict is down or unknown.
func RenderISP(r *diagnose.ISPResult, e *Emitter) {
	if r.Verdict == "" {
		return
	}
	if r.Score != nil {
		e.Gauge("probe_isp_health_score", "Connection health from 0 to 1: the lowest dimension score, 0 when the verdict is down; absent when unknown", *r.Score)
	}
	for _, s := range diagnose.Segments {
		e.Bool("probe_isp_fault", "1 for the segment the diagnosis places the fault in (none, lan, isp, dns, remote, unknown), 0 for the others", r.Fault == s, "segment", s)
	}
	e.Gauge("probe_isp_verdict", "Verdict of the diagnosis: 0 healthy, 1 degraded, 2 down, 4 unknown", float64(diagnose.ExitCode(r.Verdict)))
	for _, d := range r.Dimensions.List() {
		if d.Measured && d.Score != nil {
			e.Gauge("probe_isp_dimension_score", "Score of one dimension of the connection from 0 to 1 (0.5 at its threshold)", *d.Score, "dimension", d.Name)
		}
	}
	check := func(name string, c *prober.Common, ok bool) {
		if c != nil && !prober.Unmeasured(c.Reason) {
			e.Bool("probe_isp_check_success", "1 if the check of the diagnosis passed (a ping passes when a reply came)", ok, "check", name, "target", c.Target)
		}
	}
	if g := r.Checks.Gateway; g != nil {
		check(diagnose.CheckGateway, &g.Common, g.PacketsReceived > 0)
	}
	for _, t := range r.Checks.Targets {
		if t != nil {
			check(diagnose.CheckPing, &t.Common, t.PacketsReceived > 0)
		}
	}
	for _, d := range r.Checks.DNS {
		if d.Result != nil {
			check(diagnose.CheckDNS, &prober.Common{Target: d.Server, Reason: d.Result.Reason}, d.Result.Success)
		}
	}
	for _, h := range r.Checks.HTTP {
		if h != nil {
			check(diagnose.CheckHTTP, &h.Common, h.Success)
		}
	}
	if m := r.Checks.MTU; m != nil {
		check(diagnose.CheckMTU, &m.Common, m.Success && !m.BlackHole)
	}
	if tp := r.Checks.Throughput; tp != nil {
		check(diagnose.CheckThroughput, &tp.Common, tp.Success)
	}
	if rr := r.Checks.Responsiveness; rr != nil {
		check(diagnose.CheckRPM, &rr.Common, rr.Success)
	}
}

// ISPGatherer gathers a diagnosis's probe_isp_* metrics, as the isp module
// of the exporter renders them: what `isp-checker run --push` sends to a
// Pushgateway (probe_success and the other common metrics stay behind: a
// pushed group is one job's, not a probe's).
func ISPGatherer(r *diagnose.ISPResult, logger *slog.Logger) prometheus.Gatherer {
	e := NewEmitter(logger)
	RenderISP(r, e)
	return e
}
