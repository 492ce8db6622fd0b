package collector

import "github.com/isp-checker/isp-checker/prober"

// RenderICMP writes the icmp prober's metrics. probe_icmp_duration_seconds and
// probe_icmp_reply_hop_limit are blackbox_exporter's, with its meaning (the
// three phases are always present; the hop limit only when the kernel
// reported it); the rtt phase is the mean RTT. The rest are isp-checker's,
// for a module with packets > 1 only, so a one-echo module (blackbox's
// shape) renders what blackbox does: packet counts and loss once the target
// was resolved, RTT statistics when a reply arrived, jitter with two or
// more.
func RenderICMP(r *prober.ICMPResult, e *Emitter) {
	const durHelp = "Duration of icmp request by phase"
	resolve := 0.0
	if r.IPAddr != "" {
		resolve = r.DNSLookupSeconds
	}
	e.Gauge("probe_icmp_duration_seconds", durHelp, resolve, "phase", "resolve")
	e.Gauge("probe_icmp_duration_seconds", durHelp, r.SetupSeconds, "phase", "setup")
	e.Gauge("probe_icmp_duration_seconds", durHelp, r.RTTMeanSeconds, "phase", "rtt")
	if r.HopLimit != nil {
		e.Gauge("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)", float64(*r.HopLimit))
	}
	if r.IPAddr == "" || !r.MultiPacket {
		return
	}
	e.Gauge("probe_icmp_packets_sent", "Number of echo requests (or TCP connects) sent", float64(r.PacketsSent))
	e.Gauge("probe_icmp_packets_received", "Number of distinct replies received", float64(r.PacketsReceived))
	e.Gauge("probe_icmp_duplicates", "Number of duplicate replies received", float64(r.Duplicates))
	if r.PacketsSent > 0 {
		e.Gauge("probe_icmp_packet_loss_ratio", "Fraction of packets sent that got no reply (0-1)", r.LossRatio)
	}
	if r.PacketsReceived == 0 {
		return
	}
	e.Gauge("probe_icmp_rtt_min_seconds", "Smallest round-trip time in seconds", r.RTTMinSeconds)
	e.Gauge("probe_icmp_rtt_max_seconds", "Largest round-trip time in seconds", r.RTTMaxSeconds)
	e.Gauge("probe_icmp_rtt_mean_seconds", "Mean round-trip time in seconds", r.RTTMeanSeconds)
	e.Gauge("probe_icmp_rtt_stddev_seconds", "Population standard deviation of the round-trip times in seconds", r.RTTStddevSeconds)
	if r.PacketsReceived >= 2 {
		e.Gauge("probe_icmp_jitter_seconds", "Mean absolute difference of consecutive round-trip times in seconds (RFC 3550 style, unsmoothed)", r.JitterSeconds)
	}
}
