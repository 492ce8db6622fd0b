package collector

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/testserver"
)

// blackboxTCPTLSMetrics is what blackbox_exporter emits for a successful tcp
// probe with tls: true and a query_response step with labels.
var blackboxTCPTLSMetrics = []string{
	"probe_success",
	"probe_duration_seconds",
	"probe_dns_lookup_time_seconds",
	"probe_ip_protocol",
	"probe_ip_addr_hash",
	"probe_failed_due_to_regex",
	"probe_failed_due_to_bytes",
	"probe_ssl_earliest_cert_expiry",
	"probe_ssl_last_chain_expiry_timestamp_seconds",
	"probe_ssl_last_chain_info",
	"probe_tls_version_info",
	"probe_expect_info",
}

// ispCheckerTCPTLSExtensions are isp-checker's additions to that probe.
var ispCheckerTCPTLSExtensions = []string{
	"probe_timeout_seconds",
	"probe_tcp_connect_duration_seconds",
	"probe_ssl_verified",
	"probe_tls_cipher_info",
}

func TestTCPMetrics(t *testing.T) {
	certSrv := collectorTestCert(t)

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certSrv.TLS.Certificates})
	if err != nil {
		t.Fatal(err)
	}
	addr := testserver.Serve(t, ln, 30*time.Second, func(c net.Conn) {
		fmt.Fprint(c, "SSH-2.0-OpenSSH_9.6 Debian\r\n")
		_, _ = bufio.NewReader(c).ReadString('\n')
	})

	m := collectorTestModule(t, "tcp", "tls: true\npreferred_ip_protocol: ip4\n"+collectorTestCA(certSrv)+
		"query_response:\n  - expect: '^SSH-2\\.0-(\\S+) (.*)$'\n    labels: [{name: version, value: '${1}'}, {name: os, value: '${2}'}]")
	res, em := collectorTestProbe(t, addr, m, "")
	if !res.Base().Success {
		t.Fatalf("probe failed: %s", res.Base().Error)
	}
	collectorTestLint(t, em)
	fams := collectorTestFamilies(t, em)
	want := append(slices.Clone(blackboxTCPTLSMetrics), ispCheckerTCPTLSExtensions...)
	slices.Sort(want)
	if got := collectorTestNames(fams); !slices.Equal(got, want) {
		t.Errorf("metric names\n got: %v\nwant: %v", got, want)
	}
	labels := map[string]string{}
	for _, l := range fams["probe_expect_info"].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] != "OpenSSH_9.6" || labels["os"] != "Debian" {
		t.Errorf("probe_expect_info labels = %v", labels)
	}
	if got := collectorTestValue(t, fams, "probe_tcp_connect_duration_seconds"); got <= 0 {
		t.Errorf("probe_tcp_connect_duration_seconds = %v", got)
	}
}
