package collector

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/isp-checker/isp-checker/prober"
)

func u32(v uint32) *uint32 { return &v }
func intp(v int) *int      { return &v }

func gatherDNS(t *testing.T, r *prober.DNSResult) *prometheus.Registry {
	t.Helper()
	e := NewEmitter(nil)
	Render(r, RendererOf(RenderDNS), e)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	return reg
}

var dnsMetricNames = []string{
	"probe_dns_duration_seconds", "probe_dns_answer_rrs", "probe_dns_authority_rrs",
	"probe_dns_additional_rrs", "probe_dns_query_succeeded", "probe_dns_serial", "probe_dns_rcode",
	"probe_dns_answer_min_ttl_seconds", "probe_dns_authenticated_data", "probe_dns_truncated",
	"probe_dns_retried_over_tcp", "probe_success",
}

func TestRenderDNSSuccess(t *testing.T) {
	r := &prober.DNSResult{
		Common:              prober.Common{Success: true, Resolved: true, IPProtocol: 4, IPAddr: "192.0.2.53"},
		Transport:           prober.DNSTransportUDP,
		Phases:              prober.DNSPhases{ResolveSeconds: 0.25, ConnectSeconds: 0.5, RequestSeconds: 0.125},
		QuerySucceeded:      true,
		Rcode:               "NOERROR",
		RcodeValue:          intp(0),
		AnswerRRs:           2,
		AuthorityRRs:        1,
		AdditionalRRs:       3,
		Serial:              u32(2024010101),
		AnswerMinTTLSeconds: u32(60),
		DNSSECRequested:     true,
		AuthenticatedData:   true,
		Truncated:           true,
		RetriedOverTCP:      true,
	}
	want := `
# HELP probe_dns_additional_rrs Returns number of entries in the additional resource record list
# TYPE probe_dns_additional_rrs gauge
probe_dns_additional_rrs 3
# HELP probe_dns_answer_min_ttl_seconds Smallest TTL of the records in the answer section in seconds
# TYPE probe_dns_answer_min_ttl_seconds gauge
probe_dns_answer_min_ttl_seconds 60
# HELP probe_dns_answer_rrs Returns number of entries in the answer resource record list
# TYPE probe_dns_answer_rrs gauge
probe_dns_answer_rrs 2
# HELP probe_dns_authenticated_data Whether the resolver set the AD flag: it validated the answer with DNSSEC (only when the module sets dnssec)
# TYPE probe_dns_authenticated_data gauge
probe_dns_authenticated_data 1
# HELP probe_dns_authority_rrs Returns number of entries in the authority resource record list
# TYPE probe_dns_authority_rrs gauge
probe_dns_authority_rrs 1
# HELP probe_dns_duration_seconds Duration of DNS request by phase
# TYPE probe_dns_duration_seconds gauge
probe_dns_duration_seconds{phase="connect"} 0.5
probe_dns_duration_seconds{phase="request"} 0.125
probe_dns_duration_seconds{phase="resolve"} 0.25
# HELP probe_dns_query_succeeded Displays whether or not the query was executed successfully
# TYPE probe_dns_query_succeeded gauge
probe_dns_query_succeeded 1
# HELP probe_dns_rcode Response code of the DNS answer, as a number (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, …)
# TYPE probe_dns_rcode gauge
probe_dns_rcode 0
# HELP probe_dns_retried_over_tcp Whether the query was repeated over TCP because the UDP answer was truncated
# TYPE probe_dns_retried_over_tcp gauge
probe_dns_retried_over_tcp 1
# HELP probe_dns_serial Returns the serial number of the zone
# TYPE probe_dns_serial gauge
probe_dns_serial 2.024010101e+09
# HELP probe_dns_truncated Whether the UDP answer was truncated (TC flag set)
# TYPE probe_dns_truncated gauge
probe_dns_truncated 1
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 1
`
	if err := testutil.GatherAndCompare(gatherDNS(t, r), strings.NewReader(want), dnsMetricNames...); err != nil {
		t.Error(err)
	}
}

// TestRenderDNSFailedQuery: blackbox's metrics are always there (zero when
// no answer came); the answer-derived ones are absent.
func TestRenderDNSFailedQuery(t *testing.T) {
	r := &prober.DNSResult{
		Transport:       prober.DNSTransportTCP,
		Phases:          prober.DNSPhases{ConnectSeconds: 0.5},
		DNSSECRequested: true,
	}
	want := `
# HELP probe_dns_additional_rrs Returns number of entries in the additional resource record list
# TYPE probe_dns_additional_rrs gauge
probe_dns_additional_rrs 0
# HELP probe_dns_answer_rrs Returns number of entries in the answer resource record list
# TYPE probe_dns_answer_rrs gauge
probe_dns_answer_rrs 0
# HELP probe_dns_authority_rrs Returns number of entries in the authority resource record list
# TYPE probe_dns_authority_rrs gauge
probe_dns_authority_rrs 0
# HELP probe_dns_duration_seconds Duration of DNS request by phase
# TYPE probe_dns_duration_seconds gauge
probe_dns_duration_seconds{phase="connect"} 0.5
probe_dns_duration_seconds{phase="request"} 0
probe_dns_duration_seconds{phase="resolve"} 0
# HELP probe_dns_query_succeeded Displays whether or not the query was executed successfully
# TYPE probe_dns_query_succeeded gauge
probe_dns_query_succeeded 0
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 0
`
	if err := testutil.GatherAndCompare(gatherDNS(t, r), strings.NewReader(want), dnsMetricNames...); err != nil {
		t.Error(err)
	}
}

// TestRenderDNSNonUDPAnswer: truncation metrics belong to UDP only; rcode and
// TTL come with any answer; no AD metric without dnssec.
func TestRenderDNSNonUDPAnswer(t *testing.T) {
	r := &prober.DNSResult{
		Transport:      prober.DNSTransportHTTPS,
		QuerySucceeded: true,
		Rcode:          "NXDOMAIN",
		RcodeValue:     intp(3),
		AuthorityRRs:   1,
	}
	reg := gatherDNS(t, r)
	n, err := testutil.GatherAndCount(reg, "probe_dns_truncated", "probe_dns_retried_over_tcp", "probe_dns_authenticated_data", "probe_dns_answer_min_ttl_seconds", "probe_dns_serial")
	if err != nil || n != 0 {
		t.Errorf("%d unexpected metrics (err %v)", n, err)
	}
	want := `
# HELP probe_dns_rcode Response code of the DNS answer, as a number (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, …)
# TYPE probe_dns_rcode gauge
probe_dns_rcode 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "probe_dns_rcode"); err != nil {
		t.Error(err)
	}
}

// TestRenderDNSPromtool lints the exposition with promtool when it is there.
func TestRenderDNSPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed")
	}
	r := &prober.DNSResult{
		Common:         prober.Common{Success: true},
		Transport:      prober.DNSTransportUDP,
		QuerySucceeded: true, Rcode: "NOERROR", RcodeValue: intp(0),
		Serial: u32(1), AnswerMinTTLSeconds: u32(5), DNSSECRequested: true,
	}
	mfs, err := gatherDNS(t, r).Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
