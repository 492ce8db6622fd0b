package collector

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
	"github.com/isp-checker/isp-checker/prober"
)

// blackboxUnixTLSMetrics is what blackbox_exporter main emits for a
// successful unix probe with tls: true and a step with labels (its
// unix_socket_ping module over TLS).
var blackboxUnixTLSMetrics = []string{
	"probe_success",
	"probe_duration_seconds",
	"probe_timeout_seconds",
	"probe_failed_due_to_regex",
	"probe_failed_due_to_bytes",
	"probe_expect_info",
	"probe_ssl_earliest_cert_expiry",
	"probe_ssl_last_chain_expiry_timestamp_seconds",
	"probe_ssl_last_chain_info",
	"probe_tls_version_info",
}

func TestUnixMetrics(t *testing.T) {
	certSrv := collectorTestCert(t)

	dir, err := os.MkdirTemp("", "ux")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "tls.sock")
	ln, err := tls.Listen("unix", sock, &tls.Config{Certificates: certSrv.TLS.Certificates})
	if err != nil {
		t.Fatal(err)
	}
	testserver.Serve(t, ln, 30*time.Second, func(c net.Conn) {
		if line, _ := bufio.NewReader(c).ReadString('\n'); line == "PING\n" {
			fmt.Fprint(c, "PONG 1.2.3\n")
		}
	})
	m := collectorTestModule(t, "unix", "tls: true\n"+collectorTestCA(certSrv)+"  server_name: example.com\n"+
		"query_response:\n  - send: PING\n  - expect: '^PONG (.+)$'\n    labels: [{name: version, value: '${1}'}]")
	pol := config.DefaultTargetPolicy()
	pol.AllowUnixPaths = []string{dir + "/*.sock"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := prober.Run(ctx, prober.ProbeUnix, prober.Request{Target: sock, Module: &m, Policy: prober.NewPolicy(pol, nil)})
	if !res.Base().Success {
		t.Fatalf("probe failed: %s", res.Base().Error)
	}
	em := NewEmitter(nil)
	Render(res, RendererOf(RenderUnix), em)
	collectorTestLint(t, em)
	fams := collectorTestFamilies(t, em)
	want := append(slices.Clone(blackboxUnixTLSMetrics), "probe_ssl_verified", "probe_tls_cipher_info")
	slices.Sort(want)
	if got := collectorTestNames(fams); !slices.Equal(got, want) {
		t.Errorf("metric names\n got: %v\nwant: %v", got, want)
	}
	if l := fams["probe_expect_info"].GetMetric()[0].GetLabel(); len(l) != 1 || l[0].GetValue() != "1.2.3" {
		t.Errorf("probe_expect_info labels = %v", l)
	}
	for name, want := range map[string]float64{"probe_failed_due_to_regex": 0, "probe_failed_due_to_bytes": 0, "probe_ssl_verified": 1} {
		if got := collectorTestValue(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// A socket that cannot be connected gives only the three metrics of every
// probe, as blackbox main shows (the dialogue's gauges need a connection).
func TestUnixMetricsNotConnected(t *testing.T) {
	dir := t.TempDir()
	pol := config.DefaultTargetPolicy()
	pol.AllowUnixPaths = []string{dir + "/*"}
	res := prober.Run(context.Background(), prober.ProbeUnix, prober.Request{
		Target: filepath.Join(dir, "missing.sock"), Module: new(collectorTestModule(t, "unix", "{}")), Policy: prober.NewPolicy(pol, nil),
	})
	if res.Base().Success {
		t.Fatal("probe of a missing socket succeeded")
	}
	em := NewEmitter(nil)
	Render(res, RendererOf(RenderUnix), em)
	want := []string{"probe_duration_seconds", "probe_success", "probe_timeout_seconds"}
	if got := collectorTestNames(collectorTestFamilies(t, em)); !slices.Equal(got, want) {
		t.Errorf("metric names\n got: %v\nwant: %v", got, want)
	}
}
