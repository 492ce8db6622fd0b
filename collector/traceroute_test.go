package collector

import (
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/prober"
)

func traceResult() *prober.TracerouteResult {
	r := &prober.TracerouteResult{
		Protocol: "icmp", FirstHop: 1, MaxHops: 30, PacketsPerHop: 3, PacketsSent: 90,
		HopCount: 3, DestinationReached: true, PathHash: 1<<53 - 1,
		Hops: []prober.TracerouteHop{
			{TTL: 1, Address: "198.51.100.33", Sent: 3, Received: 3, RTTMeanSeconds: 0.001},
			{TTL: 2, Address: "*", Sent: 3, Received: 0, LossRatio: 1},
			{TTL: 3, Address: "203.0.113.34", Sent: 3, Received: 2, LossRatio: 1.0 / 3, RTTMeanSeconds: 0.003, Destination: true},
		},
	}
	r.Success = true
	r.IPAddr, r.IPProtocol, r.Resolved = "203.0.113.34", 4, true
	return r
}

func TestTracerouteMetrics(t *testing.T) {
	got := renderSamples(t, traceResult(), RenderTraceroute)
	want := map[string]float64{
		"probe_traceroute_hops":                                         3,
		"probe_traceroute_destination_reached":                          1,
		"probe_traceroute_path_hash":                                    1<<53 - 1,
		"probe_traceroute_hop_loss_ratio{address=198.51.100.33,hop=1}":  0,
		"probe_traceroute_hop_loss_ratio{address=*,hop=2}":              1,
		"probe_traceroute_hop_loss_ratio{address=203.0.113.34,hop=3}":   1.0 / 3,
		"probe_traceroute_hop_rtt_seconds{address=198.51.100.33,hop=1}": 0.001,
		"probe_traceroute_hop_rtt_seconds{address=203.0.113.34,hop=3}":  0.003,
		"probe_success": 1,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["probe_traceroute_hop_rtt_seconds{address=*,hop=2}"]; ok {
		t.Error("a silent hop has an RTT")
	}
	// The hash survives the float64 gauge exactly.
	if uint64(got["probe_traceroute_path_hash"]) != 1<<53-1 {
		t.Errorf("path hash %v", got["probe_traceroute_path_hash"])
	}
}

func TestTracerouteMetricsDropAddress(t *testing.T) {
	r := traceResult()
	r.DropAddressLabel = true
	got := renderSamples(t, r, RenderTraceroute)
	for _, k := range []string{"probe_traceroute_hop_loss_ratio{hop=1}", "probe_traceroute_hop_loss_ratio{hop=2}", "probe_traceroute_hop_rtt_seconds{hop=3}"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	for k := range got {
		if strings.Contains(k, "address=") {
			t.Errorf("address label kept: %s", k)
		}
	}
}

// A trace that sent nothing (no raw socket) has no traceroute metrics: no
// hop count or destination_reached 0 that would look like a real path.
func TestTracerouteMetricsNotRun(t *testing.T) {
	r := &prober.TracerouteResult{Protocol: "icmp"}
	r.IPAddr, r.IPProtocol, r.Resolved = "203.0.113.34", 4, true
	r.Error = "cannot trace target: raw socket not allowed"
	for k := range renderSamples(t, r, RenderTraceroute) {
		if strings.HasPrefix(k, "probe_traceroute_") {
			t.Errorf("unexpected %s", k)
		}
	}
}
