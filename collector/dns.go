package collector

import (
	"github.com/isp-checker/isp-checker/prober"
)

// RenderDNS writes the dns prober's metrics: blackbox_exporter's probe_dns_*
// with their meanings, then isp-checker's own.
func RenderDNS(r *prober.DNSResult, e *Emitter) {
	const durHelp = "Duration of DNS request by phase"
	e.Gauge("probe_dns_duration_seconds", durHelp, r.Phases.ResolveSeconds, "phase", "resolve")
	e.Gauge("probe_dns_duration_seconds", durHelp, r.Phases.ConnectSeconds, "phase", "connect")
	e.Gauge("probe_dns_duration_seconds", durHelp, r.Phases.RequestSeconds, "phase", "request")
	e.Gauge("probe_dns_answer_rrs", "Returns number of entries in the answer resource record list", float64(r.AnswerRRs))
	e.Gauge("probe_dns_authority_rrs", "Returns number of entries in the authority resource record list", float64(r.AuthorityRRs))
	e.Gauge("probe_dns_additional_rrs", "Returns number of entries in the additional resource record list", float64(r.AdditionalRRs))
	e.Bool("probe_dns_query_succeeded", "Displays whether or not the query was executed successfully", r.QuerySucceeded)
	if r.Serial != nil {
		e.Gauge("probe_dns_serial", "Returns the serial number of the zone", float64(*r.Serial))
	}

	if !r.QuerySucceeded {
		return
	}
	if r.RcodeValue != nil {
		e.Gauge("probe_dns_rcode", "Response code of the DNS answer, as a number (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, …)", float64(*r.RcodeValue))
	}
	if r.AnswerMinTTLSeconds != nil {
		e.Gauge("probe_dns_answer_min_ttl_seconds", "Smallest TTL of the records in the answer section in seconds", float64(*r.AnswerMinTTLSeconds))
	}
	if r.DNSSECRequested {
		e.Bool("probe_dns_authenticated_data", "Whether the resolver set the AD flag: it validated the answer with DNSSEC (only when the module sets dnssec)", r.AuthenticatedData)
	}
	if r.Transport == prober.DNSTransportUDP {
		e.Bool("probe_dns_truncated", "Whether the UDP answer was truncated (TC flag set)", r.Truncated)
		e.Bool("probe_dns_retried_over_tcp", "Whether the query was repeated over TCP because the UDP answer was truncated", r.RetriedOverTCP)
	}
}
