package collector

import "github.com/isp-checker/isp-checker/prober"

// RenderMTU writes the mtu prober's metrics, once a path MTU was found: the path MTU, the
// largest size probed (the outgoing interface's MTU, or max_size: the path
// MTU equals it when nothing on the path is smaller), and whether sizes
// above the path MTU vanished without an ICMP error (a black hole).
func RenderMTU(r *prober.MTUResult, e *Emitter) {
	if r.PathMTUBytes == 0 {
		return
	}
	e.Gauge("probe_path_mtu_bytes", "Largest packet (IP header included) that reached the target and came back, in bytes", float64(r.PathMTUBytes))
	e.Gauge("probe_path_mtu_max_size_bytes", "Largest packet size probed: the outgoing interface's MTU or the module's max_size, in bytes", float64(r.MaxSizeBytes))
	e.Bool("probe_path_mtu_black_hole", "Whether packets above the path MTU vanished without an ICMP error (a path-MTU black hole)", r.BlackHole)
}
