package collector

import "github.com/isp-checker/isp-checker/prober"

func init() { registerRenderer(renderUnix) }

// renderUnix writes the unix prober's metrics, blackbox_exporter's: those of
// the dialogue and, with TLS, the TLS metrics. There is no resolution, so no
// probe_ip_* metrics.
func renderUnix(r *prober.UnixResult, e *Emitter) {
	renderDialogue(r.Connected, &r.Dialogue, e)
}
