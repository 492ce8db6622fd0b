package collector

import "github.com/isp-checker/isp-checker/prober"

// RenderUnix writes the unix prober's metrics, blackbox_exporter's: those of
// the dialogue and, with TLS, the TLS metrics. There is no resolution, so no
// probe_ip_* metrics.
func RenderUnix(r *prober.UnixResult, e *Emitter) {
	renderDialogue(r.Connected, &r.Dialogue, e)
}
