package collector

import (
	"github.com/isp-checker/isp-checker/prober"
)

// RenderGRPC writes the grpc prober's metrics with blackbox_exporter's names
// and meanings. Unlike blackbox_exporter, probe_grpc_status_code and
// probe_grpc_healthcheck_response are absent when no call was made (a bad
// target, a failed or refused resolution), where blackbox shows a status
// code of 0, which would read as OK; and the TLS metrics are present
// whenever the server sent certificates, also when verification failed.
func RenderGRPC(r *prober.GRPCResult, e *Emitter) {
	const durationHelp = "Duration of gRPC request by phase"
	if r.Resolved {
		e.Gauge("probe_grpc_duration_seconds", durationHelp, r.DNSLookupSeconds, "phase", "resolve")
	}
	if r.Called {
		e.Gauge("probe_grpc_duration_seconds", durationHelp, r.CheckSeconds, "phase", "check")
		e.Gauge("probe_grpc_status_code", "Response gRPC status code", float64(r.StatusCode))
		for _, s := range prober.GRPCServingStatuses {
			e.Bool("probe_grpc_healthcheck_response", "Response HealthCheck response", r.ServingStatus == s, "serving_status", s)
		}
	}
	e.Bool("probe_grpc_ssl", "Indicates if SSL was used for the connection", r.SSL)
	renderTLS(r.TLS, e)
}
