package collector

import (
	"maps"
	"slices"

	"github.com/isp-checker/isp-checker/prober"
)

// RenderTCP writes the tcp prober's metrics: blackbox_exporter's, plus
// isp-checker's probe_tcp_connect_duration_seconds.
func RenderTCP(r *prober.TCPResult, e *Emitter) {
	e.Bool("probe_failed_due_to_regex", "Indicates if probe failed due to regex", r.FailedDueToRegex)
	if r.Connected {
		e.Gauge("probe_tcp_connect_duration_seconds", "Returns the time taken to establish the TCP connection in seconds", r.ConnectSeconds)
	}
	if len(r.ExpectLabels) > 0 {
		labels := make([]string, 0, 2*len(r.ExpectLabels))
		for _, name := range slices.Sorted(maps.Keys(r.ExpectLabels)) {
			labels = append(labels, name, r.ExpectLabels[name])
		}
		e.Gauge("probe_expect_info", "Explicit content matched", 1, labels...)
	}
	renderTLS(r.TLS, e)
}
