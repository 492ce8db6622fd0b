package collector

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/isp-checker/isp-checker/prober"
)

func renderThroughputText(t *testing.T, r *prober.ThroughputResult, expected string, names ...string) {
	t.Helper()
	em := NewEmitter(nil)
	Render(r, RendererOf(RenderThroughput), em)
	reg := prometheus.NewRegistry()
	reg.MustRegister(em)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), names...); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestRenderThroughput(t *testing.T) {
	r := &prober.ThroughputResult{
		Direction: "download", Connections: 4, Bytes: 9568412, BytesPerSecond: 2.386e6, TransferSeconds: 4,
		LatencyProtocol: "tcp", LatencyIdleSeconds: 0.0003, LatencyLoadedSeconds: 0.185, ResponsivenessRPM: 331,
		LatencyIdleSamples: 10, LatencyLoadedSamples: 30, LatencyLoadedLost: 1, WaitSeconds: 0.5,
	}
	r.Success = true
	r.IPProtocol, r.IPAddr, r.Resolved = 4, "203.0.113.2", true
	renderThroughputText(t, r, `
# HELP probe_throughput_bytes Payload bytes transferred
# TYPE probe_throughput_bytes gauge
probe_throughput_bytes{direction="download"} 9.568412e+06
# HELP probe_throughput_bytes_per_second Transfer rate in bytes per second over the steady part of the transfer (after the ramp-up)
# TYPE probe_throughput_bytes_per_second gauge
probe_throughput_bytes_per_second{direction="download"} 2.386e+06
# HELP probe_throughput_connections Parallel connections (streams) of the transfer
# TYPE probe_throughput_connections gauge
probe_throughput_connections{direction="download"} 4
# HELP probe_throughput_transfer_seconds Duration of the transfer in seconds
# TYPE probe_throughput_transfer_seconds gauge
probe_throughput_transfer_seconds{direction="download"} 4
# HELP probe_throughput_wait_seconds Time the probe waited for another throughput probe of this exporter to finish
# TYPE probe_throughput_wait_seconds gauge
probe_throughput_wait_seconds 0.5
# HELP probe_latency_idle_seconds Median round-trip time to the target's host before the transfer, in seconds
# TYPE probe_latency_idle_seconds gauge
probe_latency_idle_seconds 0.0003
# HELP probe_latency_loaded_seconds Median round-trip time to the target's host during the transfer, in seconds
# TYPE probe_latency_loaded_seconds gauge
probe_latency_loaded_seconds{direction="download"} 0.185
# HELP probe_latency_samples Latency samples answered, by phase (idle or loaded)
# TYPE probe_latency_samples gauge
probe_latency_samples{phase="idle"} 10
probe_latency_samples{phase="loaded"} 30
# HELP probe_latency_lost_samples Latency samples not answered in time, by phase (idle or loaded)
# TYPE probe_latency_lost_samples gauge
probe_latency_lost_samples{phase="idle"} 0
probe_latency_lost_samples{phase="loaded"} 1
# HELP probe_throughput_rpm Round trips per minute under load: 60 over the 95% trimmed mean of the loaded round-trip times
# TYPE probe_throughput_rpm gauge
probe_throughput_rpm{direction="download"} 331
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 1
# HELP probe_ip_protocol Specifies whether probe ip protocol is IP4 or IP6
# TYPE probe_ip_protocol gauge
probe_ip_protocol 4
`, "probe_throughput_bytes", "probe_throughput_bytes_per_second", "probe_throughput_connections",
		"probe_throughput_transfer_seconds", "probe_throughput_wait_seconds", "probe_latency_idle_seconds",
		"probe_latency_loaded_seconds", "probe_latency_samples", "probe_latency_lost_samples", "probe_throughput_rpm",
		"probe_success", "probe_ip_protocol")
}

// A probe that failed before the transfer reports neither a rate nor a
// latency it never measured.
func TestRenderThroughputFailed(t *testing.T) {
	r := &prober.ThroughputResult{Direction: "upload", Connections: 4, LatencyProtocol: "tcp"}
	r.Error = "another throughput probe is running"
	renderThroughputText(t, r, `
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 0
# HELP probe_throughput_wait_seconds Time the probe waited for another throughput probe of this exporter to finish
# TYPE probe_throughput_wait_seconds gauge
probe_throughput_wait_seconds 0
`, "probe_success", "probe_throughput_wait_seconds", "probe_throughput_bytes", "probe_throughput_bytes_per_second",
		"probe_latency_idle_seconds", "probe_latency_loaded_seconds", "probe_throughput_rpm", "probe_latency_samples")

	// Idle latency measured, the transfer failed at once: idle only.
	r.LatencyIdleSamples, r.LatencyIdleSeconds = 5, 0.01
	r.TransferSeconds = 0.1
	renderThroughputText(t, r, `
# HELP probe_latency_idle_seconds Median round-trip time to the target's host before the transfer, in seconds
# TYPE probe_latency_idle_seconds gauge
probe_latency_idle_seconds 0.01
# HELP probe_throughput_bytes Payload bytes transferred
# TYPE probe_throughput_bytes gauge
probe_throughput_bytes{direction="upload"} 0
`, "probe_latency_idle_seconds", "probe_latency_loaded_seconds", "probe_throughput_rpm", "probe_throughput_bytes")
}
