package collector

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
)

// blackboxHTTPSMetrics is the compatibility contract: every metric
// blackbox_exporter emits for a successful http_2xx probe of an https site
// (handler.go: probe_success, probe_duration_seconds; utils.go
// chooseProtocol: the dns/ip ones; http.go ProbeHTTP with resp.TLS set: the
// rest). No Last-Modified header, no CEL: those add metrics of their own.
var blackboxHTTPSMetrics = []string{
	"probe_success",
	"probe_duration_seconds",
	"probe_dns_lookup_time_seconds",
	"probe_ip_protocol",
	"probe_ip_addr_hash",
	"probe_http_duration_seconds",
	"probe_http_content_length",
	"probe_http_uncompressed_body_length",
	"probe_http_redirects",
	"probe_http_ssl",
	"probe_http_status_code",
	"probe_http_version",
	"probe_failed_due_to_regex",
	"probe_ssl_earliest_cert_expiry",
	"probe_ssl_last_chain_expiry_timestamp_seconds",
	"probe_ssl_last_chain_info",
	"probe_tls_version_info",
	"probe_tls_cipher_info",
}

// ispCheckerHTTPSExtensions are isp-checker's additions to that probe.
var ispCheckerHTTPSExtensions = []string{
	"probe_timeout_seconds",
	"probe_ssl_verified",
}

// collectorTestModule loads one module through the real config loader.
func collectorTestModule(t testing.TB, prober, body string) config.Module {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "modules:\n  m:\n    prober: %s\n    %s:\n", prober, prober)
	for _, line := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		b.WriteString("      " + line + "\n")
	}
	c, err := config.Load([]byte(b.String()), "")
	if err != nil {
		t.Fatalf("loading module: %v\n%s", err, b.String())
	}
	return *c.Modules["m"]
}

// collectorTestCert is a TLS server whose certificate (httptest's, for
// 127.0.0.1, ::1 and example.com) tests borrow for listeners of their own;
// collectorTestCA trusts it.
func collectorTestCert(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// collectorTestCA is the tls_config that trusts srv's certificate.
func collectorTestCA(srv *httptest.Server) string {
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return "tls_config:\n  ca: |\n    " + strings.ReplaceAll(strings.TrimSpace(string(p)), "\n", "\n    ") + "\n"
}

// collectorTestProbers are the probers these tests run end to end, with
// their views (the probers table, package probers, imports this package).
var collectorTestProbers = map[string]struct {
	probe prober.Func
	view  Renderer
}{
	"http": {prober.ProbeHTTP, RendererOf(RenderHTTP)},
	"tcp":  {prober.ProbeTCP, RendererOf(RenderTCP)},
	"grpc": {prober.ProbeGRPC, RendererOf(RenderGRPC)},
	"unix": {prober.ProbeUnix, RendererOf(RenderUnix)},
}

func collectorTestProbe(t testing.TB, target string, m config.Module, hostname string) (prober.Result, *Emitter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, ok := collectorTestProbers[m.Prober]
	if !ok {
		t.Fatalf("no test prober %q", m.Prober)
	}
	res := prober.Run(ctx, p.probe, prober.Request{
		Target:   target,
		Module:   &m,
		Hostname: hostname,
		Policy:   prober.NewPolicy(config.DefaultTargetPolicy(), nil),
	})
	em := NewEmitter(nil)
	Render(res, p.view, em)
	return res, em
}

// collectorTestFamilies gathers the emitter through a pedantic registry.
func collectorTestFamilies(t testing.TB, em *Emitter) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(em)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func collectorTestLint(t testing.TB, em *Emitter) {
	t.Helper()
	problems, err := testutil.CollectAndLint(em)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func collectorTestNames(fams map[string]*dto.MetricFamily) []string {
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func collectorTestValue(t testing.TB, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf, ok := fams[name]
	if !ok || len(mf.GetMetric()) != 1 {
		t.Fatalf("metric %s missing or not single", name)
	}
	return mf.GetMetric()[0].GetGauge().GetValue()
}

func TestHTTPSMetricsMatchBlackbox(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	res, em := collectorTestProbe(t, srv.URL, collectorTestModule(t, "http", "preferred_ip_protocol: ip4\n"+collectorTestCA(srv)), "")
	if !res.Base().Success {
		t.Fatalf("probe failed: %s", res.Base().Error)
	}
	collectorTestLint(t, em)
	fams := collectorTestFamilies(t, em)

	want := append(slices.Clone(blackboxHTTPSMetrics), ispCheckerHTTPSExtensions...)
	slices.Sort(want)
	if got := collectorTestNames(fams); !slices.Equal(got, want) {
		t.Errorf("metric names differ from blackbox_exporter's set plus isp-checker's\n got: %v\nwant: %v", got, want)
	}

	var phases []string
	for _, m := range fams["probe_http_duration_seconds"].GetMetric() {
		phases = append(phases, m.GetLabel()[0].GetValue())
	}
	slices.Sort(phases)
	if want := []string{"connect", "processing", "resolve", "tls", "transfer"}; !slices.Equal(phases, want) {
		t.Errorf("phases = %v, want %v", phases, want)
	}
	var labels []string
	for _, l := range fams["probe_ssl_last_chain_info"].GetMetric()[0].GetLabel() {
		labels = append(labels, l.GetName())
	}
	slices.Sort(labels)
	if want := []string{"fingerprint_sha256", "issuer", "serialnumber", "subject", "subjectalternative"}; !slices.Equal(labels, want) {
		t.Errorf("probe_ssl_last_chain_info labels = %v, want %v", labels, want)
	}
	if got := collectorTestValue(t, fams, "probe_ssl_earliest_cert_expiry"); got != float64(srv.Certificate().NotAfter.Unix()) {
		t.Errorf("probe_ssl_earliest_cert_expiry = %v, want %v", got, srv.Certificate().NotAfter.Unix())
	}
	for name, want := range map[string]float64{
		"probe_http_status_code": 200, "probe_http_version": 1.1, "probe_http_ssl": 1, "probe_ssl_verified": 1,
		"probe_http_uncompressed_body_length": 5, "probe_http_content_length": 5, "probe_failed_due_to_regex": 0,
		"probe_ip_protocol": 4, "probe_success": 1,
	} {
		if got := collectorTestValue(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestHTTPMetricsOnFailures(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
		_, _ = io.WriteString(w, `{"ok": false}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	t.Run("untrusted certificate keeps its expiry", func(t *testing.T) {
		res, em := collectorTestProbe(t, srv.URL, collectorTestModule(t, "http", "{}"), "")
		if res.Base().Success {
			t.Fatal("probe of an untrusted certificate succeeded")
		}
		collectorTestLint(t, em)
		fams := collectorTestFamilies(t, em)
		if got := collectorTestValue(t, fams, "probe_ssl_earliest_cert_expiry"); got != float64(srv.Certificate().NotAfter.Unix()) {
			t.Errorf("probe_ssl_earliest_cert_expiry = %v", got)
		}
		if got := collectorTestValue(t, fams, "probe_ssl_verified"); got != 0 {
			t.Errorf("probe_ssl_verified = %v", got)
		}
		for _, absent := range []string{"probe_ssl_last_chain_expiry_timestamp_seconds", "probe_http_last_modified_timestamp_seconds"} {
			if _, ok := fams[absent]; ok {
				t.Errorf("%s present on a failed handshake", absent)
			}
		}
		if got := collectorTestValue(t, fams, "probe_http_ssl"); got != 0 {
			t.Errorf("probe_http_ssl = %v", got)
		}
	})
	t.Run("CEL and Last-Modified", func(t *testing.T) {
		m := collectorTestModule(t, "http", collectorTestCA(srv)+"fail_if_body_json_not_matches_cel: 'body.ok == true'")
		res, em := collectorTestProbe(t, srv.URL, m, "")
		if res.Base().Success {
			t.Fatal("CEL should have failed the probe")
		}
		collectorTestLint(t, em)
		fams := collectorTestFamilies(t, em)
		if got := collectorTestValue(t, fams, "probe_failed_due_to_cel"); got != 1 {
			t.Errorf("probe_failed_due_to_cel = %v", got)
		}
		if got := collectorTestValue(t, fams, "probe_http_last_modified_timestamp_seconds"); got != 1445412480 {
			t.Errorf("probe_http_last_modified_timestamp_seconds = %v", got)
		}
	})
	t.Run("refused by target policy", func(t *testing.T) {
		res, em := collectorTestProbe(t, "http://169.254.169.254/", collectorTestModule(t, "http", "{}"), "")
		if res.Base().Success {
			t.Fatal("denied probe succeeded")
		}
		collectorTestLint(t, em)
		fams := collectorTestFamilies(t, em)
		if got := collectorTestValue(t, fams, "probe_http_status_code"); got != 0 {
			t.Errorf("probe_http_status_code = %v", got)
		}
	})
}
