package collector

import "github.com/isp-checker/isp-checker/diagnose"

// The isp prober's metrics (none exists in blackbox_exporter):
//
//   - probe_isp_health_score: the health score, 0–1 (the weakest
//     dimension; 0 when the verdict is down).
//   - probe_isp_fault{segment}: one series per segment (none, lan, isp,
//     dns, remote), 1 for the diagnosed one and 0 for the others, so an
//     alert is `probe_isp_fault{segment!="none"} == 1`.
//   - probe_isp_verdict: 0 healthy, 1 degraded, 2 down (the exit code of
//     `isp-checker run`).
//   - probe_isp_dimension_score{dimension}: each measured dimension's
//     score, 0–1 (loss, latency, jitter, dns, bufferbloat; 0.5 at its
//     threshold).
//   - probe_isp_check_success{check,target}: 1 if that check passed
//     (gateway, ping, dns, http, speed; a ping passes when a reply came).
//
// probe_success is 0 only when the verdict is down. A diagnosis that did
// not run (its context was already done) has only the common metrics.
func init() { registerRenderer(renderISP) }

func renderISP(r *diagnose.ISPResult, e *Emitter) {
	if r.Verdict == "" || r.Grade == "" {
		return
	}
	e.Gauge("probe_isp_health_score", "Connection health from 0 to 1: the lowest dimension score, 0 when the verdict is down", r.Score)
	for _, s := range diagnose.Segments {
		e.Bool("probe_isp_fault", "1 for the segment the diagnosis places the fault in (none, lan, isp, dns, remote), 0 for the others", r.Fault == s, "segment", s)
	}
	e.Gauge("probe_isp_verdict", "Verdict of the diagnosis: 0 healthy, 1 degraded, 2 down", float64(diagnose.ExitCode(r.Verdict)))
	for _, d := range r.Dimensions.List() {
		if d.Measured {
			e.Gauge("probe_isp_dimension_score", "Score of one dimension of the connection from 0 to 1 (0.5 at its threshold)", d.Score, "dimension", d.Name)
		}
	}
	const help = "1 if the check of the diagnosis passed (a ping passes when a reply came)"
	if g := r.Checks.Gateway; g != nil {
		e.Bool("probe_isp_check_success", help, g.PacketsReceived > 0, "check", diagnose.CheckGateway, "target", g.Target)
	}
	for _, t := range r.Checks.Targets {
		if t != nil {
			e.Bool("probe_isp_check_success", help, t.PacketsReceived > 0, "check", diagnose.CheckPing, "target", t.Target)
		}
	}
	for _, d := range r.Checks.DNS {
		e.Bool("probe_isp_check_success", help, d.Result != nil && d.Result.Success, "check", diagnose.CheckDNS, "target", d.Server)
	}
	for _, h := range r.Checks.HTTP {
		if h != nil {
			e.Bool("probe_isp_check_success", help, h.Success, "check", diagnose.CheckHTTP, "target", h.Target)
		}
	}
	if tp := r.Checks.Throughput; tp != nil {
		e.Bool("probe_isp_check_success", help, tp.Success, "check", diagnose.CheckThroughput, "target", tp.Target)
	}
}
