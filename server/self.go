package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
)

// SelfMetrics are the exporter's own metrics, served on /metrics.
type SelfMetrics struct {
	probes   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	rejected *prometheus.CounterVec
	denied   prometheus.Counter
	// moduleUnknown is rejected{reason="unknown_module"} under
	// blackbox_exporter's name, for dashboards and alerts written for it.
	moduleUnknown prometheus.Counter
}

// NewSelfMetrics creates the exporter's metrics and registers them, with the
// build info, Go and process collectors, in reg.
func NewSelfMetrics(reg prometheus.Registerer) *SelfMetrics {
	m := &SelfMetrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isp_checker_probes_total",
			Help: "Probes run, by module and result (success or failure).",
		}, []string{"module", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "isp_checker_probe_duration_seconds",
			Help:    "How long probes took, by module.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60},
		}, []string{"module"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "isp_checker_probes_in_flight",
			Help: "Probes running now.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isp_checker_probes_rejected_total",
			Help: "Probe requests refused before running, by reason.",
		}, []string{"reason"}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "isp_checker_target_policy_denied_total",
			Help: "Connections or packets refused by the target policy (SSRF guard).",
		}),
		moduleUnknown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_module_unknown_total",
			Help: "Count of unknown modules requested by probes (blackbox_exporter's name for isp_checker_probes_rejected_total{reason=\"unknown_module\"}).",
		}),
	}
	for _, reason := range []string{"concurrency", "unknown_module", "missing_target", "bad_request"} {
		m.rejected.WithLabelValues(reason)
	}
	reg.MustRegister(m.probes, m.duration, m.inFlight, m.rejected, m.denied, m.moduleUnknown,
		versioncollector.NewCollector("isp_checker"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newEchoEngineCollector(),
	)
	return m
}
