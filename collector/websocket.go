package collector

import "github.com/isp-checker/isp-checker/prober"

// RenderWebsocket writes the websocket prober's metrics with
// blackbox_exporter's names, meanings and presence rules, plus the TLS
// metrics of a wss:// handshake (blackbox_exporter has none for websocket).
func RenderWebsocket(r *prober.WebsocketResult, e *Emitter) {
	for _, phase := range prober.WebsocketPhases {
		if v, ok := r.PhaseSeconds[phase]; ok {
			e.Gauge("probe_websocket_duration_seconds", "Duration of websocket request by phase", v, "phase", phase)
		}
	}
	e.Gauge("probe_websocket_status_code", "Response HTTP status code", float64(r.StatusCode))
	e.Bool("probe_websocket_connection_upgraded", "Indicates if the websocket connection was successfully upgraded", r.Upgraded)
	e.Bool("probe_websocket_failed_due_to_regex", "Indicates if probe failed due to regex", r.FailedDueToRegex)
	renderTLS(r.TLS, e)
}
