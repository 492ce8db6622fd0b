package collector

import (
	"github.com/isp-checker/isp-checker/internal/rpm"
	"github.com/isp-checker/isp-checker/prober"
)

// The responsiveness prober's metrics (the IETF responsiveness test). A
// direction's RPM and latency components are present only when it has a
// figure: a stage that never stabilised its goodput has none, and shows
// probe_responsiveness_stable 0 instead of a number. The overall figure
// carries direction="all" (one metric name keeps one set of labels).

// Values of probe_responsiveness_grade: Apple networkQuality's words.
var rpmGrades = map[string]float64{"": 0, "Low": 1, "Medium": 2, "High": 3}

// RenderResponsiveness writes the responsiveness prober's metrics.
func RenderResponsiveness(r *prober.ResponsivenessResult, e *Emitter) {
	e.Gauge("probe_responsiveness_wait_seconds", "Time the probe waited for another throughput or responsiveness probe of this exporter to finish", r.WaitSeconds)
	if r.IdleProbes > 0 {
		e.Gauge("probe_responsiveness_idle_latency_seconds",
			"Round trip of a new connection before any load: the mean of the trimmed TCP, TLS and HTTP times of the idle foreign probes", r.IdleRoundTripSeconds)
	}
	for i := range r.Stages {
		st := &r.Stages[i]
		dir := st.Direction
		e.Gauge("probe_responsiveness_goodput_bytes_per_second",
			"Goodput the load-generating connections reached: the last moving average, in bytes per second", st.GoodputBytesPerSecond, "direction", dir)
		e.Gauge("probe_responsiveness_connections", "Most load-generating connections running at once", float64(st.Connections), "direction", dir)
		e.Bool("probe_responsiveness_goodput_saturated", "Whether the goodput passed the draft's stability rule (probing starts there)", st.GoodputSaturated, "direction", dir)
		e.Bool("probe_responsiveness_stable", "Whether the responsiveness passed the draft's stability rule", st.Stable, "direction", dir)
		e.Gauge("probe_responsiveness_confidence", "The draft's confidence in the figure: 0 none, 1 low, 2 medium, 3 high", confidence(st.Confidence), "direction", dir)
		e.Gauge("probe_responsiveness_probe_errors", "Latency probes that failed or timed out during the stage", float64(st.ProbeErrors), "direction", dir)
		if !st.HasFigure() {
			continue
		}
		e.Gauge("probe_responsiveness_rpm", "Responsiveness in round trips per minute (draft-ietf-ippm-responsiveness-09), by direction; direction=\"all\" pools them",
			st.RPM, "direction", dir)
		kinds := []struct {
			kind string
			v    float64
		}{{"tcp_foreign", st.TCPForeignSeconds}, {"tls_foreign", st.TLSForeignSeconds}, {"http_foreign", st.HTTPForeignSeconds}, {"http_self", st.HTTPSelfSeconds}}
		for _, k := range kinds {
			if k.kind == "tls_foreign" && r.TLSVersion == "" {
				continue
			}
			e.Gauge("probe_responsiveness_latency_seconds",
				"Trimmed mean of each kind of latency probe under load (tls_foreign per TLS round trip), the components of the RPM", k.v, "kind", k.kind, "direction", dir)
		}
		e.Gauge("probe_responsiveness_probes", "Latency probes the figure is computed from (the last moving-average window), by kind (foreign, self)",
			float64(st.ForeignSamples), "kind", "foreign", "direction", dir)
		e.Gauge("probe_responsiveness_probes", "Latency probes the figure is computed from (the last moving-average window), by kind (foreign, self)",
			float64(st.SelfSamples), "kind", "self", "direction", dir)
	}
	if len(r.Stages) > 0 {
		e.Bool("probe_responsiveness_stable", "Whether the responsiveness passed the draft's stability rule", r.Stable, "direction", "all")
	}
	if r.RPM > 0 {
		e.Gauge("probe_responsiveness_rpm", "Responsiveness in round trips per minute (draft-ietf-ippm-responsiveness-09), by direction; direction=\"all\" pools them",
			r.RPM, "direction", "all")
	}
	e.Gauge("probe_responsiveness_grade", "Responsiveness grade as Apple's networkQuality words it: 0 no figure, 1 Low (below 200 RPM), 2 Medium (200-999), 3 High (1000 and up)",
		rpmGrades[r.Level])
}

func confidence(s string) float64 {
	for c := rpm.ConfidenceNone; c <= rpm.ConfidenceHigh; c++ {
		if c.String() == s {
			return float64(c)
		}
	}
	return 0
}
