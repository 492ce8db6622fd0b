package collector

import (
	"maps"
	"slices"

	"github.com/isp-checker/isp-checker/prober"
)

// RenderTCP writes the tcp prober's metrics: blackbox_exporter's, plus
// isp-checker's probe_tcp_connect_duration_seconds.
func RenderTCP(r *prober.TCPResult, e *Emitter) {
	if r.Connected {
		e.Gauge("probe_tcp_connect_duration_seconds", "Returns the time taken to establish the TCP connection in seconds", r.ConnectSeconds)
	}
	renderDialogue(r.Connected, &r.Dialogue, e)
}

// renderDialogue writes the metrics of a query_response dialogue (tcp,
// unix): blackbox_exporter's, which writes both failed_due_to gauges on
// every probe that connected, and the TLS metrics after a handshake.
func renderDialogue(connected bool, d *prober.Dialogue, e *Emitter) {
	if connected {
		e.Bool("probe_failed_due_to_regex", "Indicates if probe failed due to regex", d.FailedDueToRegex)
		e.Bool("probe_failed_due_to_bytes", "Indicates if probe failed due to bytes", d.FailedDueToBytes)
	}
	if len(d.ExpectLabels) > 0 {
		labels := make([]string, 0, 2*len(d.ExpectLabels))
		for _, name := range slices.Sorted(maps.Keys(d.ExpectLabels)) {
			labels = append(labels, name, d.ExpectLabels[name])
		}
		e.Gauge("probe_expect_info", "Explicit content matched", 1, labels...)
	}
	renderTLS(d.TLS, e)
}
