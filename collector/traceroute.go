package collector

import (
	"strconv"

	"github.com/isp-checker/isp-checker/prober"
)

// RenderTraceroute writes the traceroute prober's metrics, once probes were sent: the hop count
// (to the destination, or to the last hop that answered), whether the
// destination answered, a hash of the path for changes(), and per hop
// (labelled hop="<TTL>" and address="<IP>", or address="*" for a hop that
// answered none of its probes) the loss ratio and, when it answered, the
// mean round-trip time. With drop_address_label the per-hop metrics carry
// only hop.
func RenderTraceroute(r *prober.TracerouteResult, e *Emitter) {
	if r.PacketsSent == 0 {
		return
	}
	e.Gauge("probe_traceroute_hops", "Hops to the destination, or to the last hop that answered when it was not reached", float64(r.HopCount))
	e.Bool("probe_traceroute_destination_reached", "Whether the destination answered the trace", r.DestinationReached)
	e.Gauge("probe_traceroute_path_hash", "Hash of the ordered hop addresses (silent hops as *); changes() shows path changes", float64(r.PathHash))
	for _, h := range r.Hops {
		labels := []string{"hop", strconv.Itoa(h.TTL)}
		if !r.DropAddressLabel {
			labels = append(labels, "address", h.Address)
		}
		e.Gauge("probe_traceroute_hop_loss_ratio", "Fraction of the hop's probes that got no answer (0-1)", h.LossRatio, labels...)
		if h.Received > 0 {
			e.Gauge("probe_traceroute_hop_rtt_seconds", "Mean round-trip time of the hop's answered probes in seconds", h.RTTMeanSeconds, labels...)
		}
	}
}
