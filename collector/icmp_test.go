package collector

import (
	"testing"

	"github.com/isp-checker/isp-checker/internal/samples"
	"github.com/isp-checker/isp-checker/prober"
)

// Which metrics each kind of result has, and their values.
func TestICMPRender(t *testing.T) {
	hop := 57
	ok := &prober.ICMPResult{
		Common:          prober.Common{Success: true, Resolved: true, DNSLookupSeconds: 0.002, IPProtocol: 4, IPAddr: "192.0.2.1"},
		MultiPacket:     true,
		PacketsPlanned:  4,
		PacketsSent:     4,
		PacketsReceived: 3, Duplicates: 1, LossRatio: 0.25,
		SetupSeconds: 0.001, RTTMinSeconds: 0.01, RTTMaxSeconds: 0.03, RTTMeanSeconds: 0.02, RTTStddevSeconds: 0.008, JitterSeconds: 0.005,
		HopLimit: &hop,
	}
	one := &prober.ICMPResult{
		Common:      prober.Common{Success: true, Resolved: true, IPProtocol: 6, IPAddr: "::1"},
		PacketsSent: 1, PacketsReceived: 1, PacketsPlanned: 1, RTTMinSeconds: 0.0001, RTTMaxSeconds: 0.0001, RTTMeanSeconds: 0.0001,
		HopLimit: new(int), // 0 is a valid IPv6 hop limit
	}
	lost := &prober.ICMPResult{
		Common:      prober.Common{Resolved: true, IPProtocol: 4, IPAddr: "192.0.2.1"},
		MultiPacket: true, PacketsSent: 5, PacketsPlanned: 5, LossRatio: 1,
	}
	unresolved := &prober.ICMPResult{Common: prober.Common{Resolved: true, DNSLookupSeconds: 0.5}}
	for _, tc := range []struct {
		name string
		res  *prober.ICMPResult
		keys string
		want map[string]float64
	}{
		{"multi-packet", ok, samples.Set(samples.ICMPPhases, samples.ICMPCounts, "probe_icmp_jitter_seconds probe_icmp_reply_hop_limit", samples.ICMPRTTStats),
			map[string]float64{
				"probe_icmp_duration_seconds{phase=resolve}": 0.002, "probe_icmp_duration_seconds{phase=setup}": 0.001,
				"probe_icmp_duration_seconds{phase=rtt}": 0.02, "probe_icmp_reply_hop_limit": 57,
				"probe_icmp_packets_sent": 4, "probe_icmp_packets_received": 3, "probe_icmp_duplicates": 1,
				"probe_icmp_packet_loss_ratio": 0.25, "probe_icmp_rtt_min_seconds": 0.01, "probe_icmp_rtt_max_seconds": 0.03,
				"probe_icmp_rtt_mean_seconds": 0.02, "probe_icmp_rtt_stddev_seconds": 0.008, "probe_icmp_jitter_seconds": 0.005,
				"probe_success": 1,
			}},
		{"one packet (blackbox's series only)", one, samples.Set(samples.ICMPPhases, "probe_icmp_reply_hop_limit"),
			map[string]float64{"probe_icmp_reply_hop_limit": 0, "probe_icmp_duration_seconds{phase=rtt}": 0.0001, "probe_ip_protocol": 6}},
		{"multi-packet module, one packet fitted (no jitter)", &prober.ICMPResult{Common: one.Common, MultiPacket: true, PacketsSent: 1, PacketsReceived: 1, PacketsPlanned: 1,
			RTTMinSeconds: 0.0001, RTTMaxSeconds: 0.0001, RTTMeanSeconds: 0.0001}, samples.Set(samples.ICMPPhases, samples.ICMPCounts, samples.ICMPRTTStats),
			map[string]float64{"probe_icmp_packets_sent": 1, "probe_icmp_rtt_min_seconds": 0.0001}},
		{"all lost (no RTT statistics)", lost, samples.Set(samples.ICMPPhases, samples.ICMPCounts),
			map[string]float64{"probe_icmp_packet_loss_ratio": 1, "probe_icmp_packets_received": 0, "probe_success": 0,
				"probe_icmp_duration_seconds{phase=rtt}": 0}},
		{"not resolved (blackbox's three zero phases)", unresolved, samples.Set(samples.ICMPPhases),
			map[string]float64{"probe_icmp_duration_seconds{phase=resolve}": 0, "probe_dns_lookup_time_seconds": 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderSamples(t, tc.res, RenderICMP)
			if k := samples.Keys(got, "probe_icmp_"); k != tc.keys {
				t.Errorf("metrics:\n got %s\nwant %s", k, tc.keys)
			}
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
		})
	}
}
