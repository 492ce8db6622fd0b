package collector

import "github.com/isp-checker/isp-checker/prober"

// RenderThroughput writes the throughput prober's metrics (none exists in blackbox_exporter). The
// transfer's are present once the transfer ran; the latency ones only when
// at least one sample of that phase was answered (a missing idle or loaded
// latency is absent, not 0, so it cannot pass for a perfect link).
func RenderThroughput(r *prober.ThroughputResult, e *Emitter) {
	dir := r.Direction
	e.Gauge("probe_throughput_wait_seconds", "Time the probe waited for another throughput probe of this exporter to finish", r.WaitSeconds)
	if r.TransferSeconds > 0 {
		e.Gauge("probe_throughput_bytes_per_second",
			"Transfer rate in bytes per second over the steady part of the transfer (after the ramp-up)", r.BytesPerSecond, "direction", dir)
		e.Gauge("probe_throughput_bytes", "Payload bytes transferred", float64(r.Bytes), "direction", dir)
		e.Gauge("probe_throughput_transfer_seconds", "Duration of the transfer in seconds", r.TransferSeconds, "direction", dir)
		e.Gauge("probe_throughput_connections", "Parallel connections (streams) of the transfer", float64(r.Connections), "direction", dir)
	}
	if r.LatencyIdleSamples+r.LatencyIdleLost > 0 {
		e.Gauge("probe_latency_samples", "Latency samples answered, by phase (idle or loaded)", float64(r.LatencyIdleSamples), "phase", "idle")
		e.Gauge("probe_latency_lost_samples", "Latency samples not answered in time, by phase (idle or loaded)", float64(r.LatencyIdleLost), "phase", "idle")
	}
	if r.LatencyLoadedSamples+r.LatencyLoadedLost > 0 {
		e.Gauge("probe_latency_samples", "Latency samples answered, by phase (idle or loaded)", float64(r.LatencyLoadedSamples), "phase", "loaded")
		e.Gauge("probe_latency_lost_samples", "Latency samples not answered in time, by phase (idle or loaded)", float64(r.LatencyLoadedLost), "phase", "loaded")
	}
	if r.LatencyIdleSamples > 0 {
		e.Gauge("probe_latency_idle_seconds", "Median round-trip time to the target's host before the transfer, in seconds", r.LatencyIdleSeconds)
	}
	if r.LatencyLoadedSamples > 0 {
		e.Gauge("probe_latency_loaded_seconds", "Median round-trip time to the target's host during the transfer, in seconds", r.LatencyLoadedSeconds, "direction", dir)
		e.Gauge("probe_throughput_rpm",
			"Round trips per minute under load: 60 over the 95% trimmed mean of the loaded round-trip times", r.ResponsivenessRPM, "direction", dir)
	}
}
