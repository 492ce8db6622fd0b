package collector

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/isp-checker/isp-checker/prober"
)

// blackboxGRPCTLSMetrics is what blackbox_exporter emits for a successful
// grpc probe with tls: true (prober/grpc.go ProbeGRPC).
var blackboxGRPCTLSMetrics = []string{
	"probe_success",
	"probe_duration_seconds",
	"probe_dns_lookup_time_seconds",
	"probe_ip_protocol",
	"probe_ip_addr_hash",
	"probe_grpc_duration_seconds",
	"probe_grpc_ssl",
	"probe_grpc_status_code",
	"probe_grpc_healthcheck_response",
	"probe_ssl_earliest_cert_expiry",
	"probe_ssl_last_chain_info",
	"probe_tls_version_info",
}

// ispCheckerGRPCTLSExtensions are isp-checker's additions to that probe.
var ispCheckerGRPCTLSExtensions = []string{
	"probe_timeout_seconds",
	"probe_ssl_verified",
	"probe_ssl_last_chain_expiry_timestamp_seconds",
	"probe_tls_cipher_info",
}

// grpcTestServer serves the standard health service on loopback, with
// service1 SERVING, until the test ends.
func grpcTestServer(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("service1", grpc_health_v1.HealthCheckResponse_SERVING)
	grpc_health_v1.RegisterHealthServer(srv, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return ln.Addr().String()
}

func TestGRPCMetrics(t *testing.T) {
	// Borrow httptest's loopback certificate for the gRPC server.
	certSrv := collectorTestCert(t)
	addr := grpcTestServer(t, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: certSrv.TLS.Certificates})))

	m := collectorTestModule(t, "grpc", "service: service1\ntls: true\npreferred_ip_protocol: ip4\n"+collectorTestCA(certSrv))
	res, em := collectorTestProbe(t, addr, m, "")
	if !res.Base().Success {
		t.Fatalf("probe failed: %s", res.Base().Error)
	}
	collectorTestLint(t, em)
	fams := collectorTestFamilies(t, em)
	want := append(slices.Clone(blackboxGRPCTLSMetrics), ispCheckerGRPCTLSExtensions...)
	slices.Sort(want)
	if got := collectorTestNames(fams); !slices.Equal(got, want) {
		t.Errorf("metric names\n got: %v\nwant: %v", got, want)
	}
	for _, name := range []string{"probe_grpc_ssl", "probe_ssl_verified"} {
		if got := collectorTestValue(t, fams, name); got != 1 {
			t.Errorf("%s = %v", name, got)
		}
	}
	if got := collectorTestValue(t, fams, "probe_grpc_status_code"); got != 0 {
		t.Errorf("probe_grpc_status_code = %v", got)
	}
	serving := map[string]float64{}
	for _, mm := range fams["probe_grpc_healthcheck_response"].GetMetric() {
		serving[mm.GetLabel()[0].GetValue()] = mm.GetGauge().GetValue()
	}
	if len(serving) != 4 || serving["SERVING"] != 1 || serving["NOT_SERVING"]+serving["UNKNOWN"]+serving["SERVICE_UNKNOWN"] != 0 {
		t.Errorf("probe_grpc_healthcheck_response = %v", serving)
	}
	phases := map[string]float64{}
	for _, mm := range fams["probe_grpc_duration_seconds"].GetMetric() {
		phases[mm.GetLabel()[0].GetValue()] = mm.GetGauge().GetValue()
	}
	if len(phases) != 2 || phases["check"] <= 0 {
		t.Errorf("probe_grpc_duration_seconds = %v", phases)
	}
}

func TestGRPCMetricsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	res, em := collectorTestProbe(t, addr, collectorTestModule(t, "grpc", "{}"), "")
	if res.Base().Success {
		t.Fatal("probe of a closed port succeeded")
	}
	collectorTestLint(t, em)
	fams := collectorTestFamilies(t, em)
	if got := collectorTestValue(t, fams, "probe_grpc_status_code"); got != 14 {
		t.Errorf("probe_grpc_status_code = %v, want 14 (Unavailable)", got)
	}
	for _, mm := range fams["probe_grpc_healthcheck_response"].GetMetric() {
		if mm.GetGauge().GetValue() != 0 {
			t.Errorf("probe_grpc_healthcheck_response%v = 1 without a response", mm.GetLabel())
		}
	}
}

var grpcMetricNames = []string{
	"probe_grpc_duration_seconds", "probe_grpc_status_code", "probe_grpc_healthcheck_response",
	"probe_grpc_ssl", "probe_ssl_earliest_cert_expiry", "probe_ssl_last_chain_expiry_timestamp_seconds",
	"probe_ssl_last_chain_info", "probe_ssl_verified", "probe_tls_version_info", "probe_tls_cipher_info",
	"probe_success",
}

func gatherGRPC(t *testing.T, r *prober.GRPCResult) *prometheus.Registry {
	t.Helper()
	e := NewEmitter(nil)
	Render(r, RendererOf(RenderGRPC), e)
	collectorTestLint(t, e)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	return reg
}

func TestRenderGRPCNotServingOverTLS(t *testing.T) {
	expiry := time.Unix(1_900_000_000, 0)
	r := &prober.GRPCResult{
		Common:        prober.Common{Resolved: true, DNSLookupSeconds: 0.25, IPProtocol: 4, IPAddr: "192.0.2.1"},
		Called:        true,
		CheckSeconds:  0.5,
		Status:        "OK",
		ServingStatus: "NOT_SERVING",
		SSL:           true,
		TLS: &prober.TLSInfo{
			Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", HandshakeComplete: true, Verified: true,
			EarliestCertExpiry: expiry, LastChainExpiry: expiry,
			Certificates: []prober.CertInfo{{Subject: "CN=grpc.example.com", Issuer: "CN=CA", DNSNames: []string{"grpc.example.com"}, SerialNumber: "01", FingerprintSHA256: "ab", NotAfter: expiry}},
		},
	}
	want := `
# HELP probe_grpc_duration_seconds Duration of gRPC request by phase
# TYPE probe_grpc_duration_seconds gauge
probe_grpc_duration_seconds{phase="check"} 0.5
probe_grpc_duration_seconds{phase="resolve"} 0.25
# HELP probe_grpc_healthcheck_response Response HealthCheck response
# TYPE probe_grpc_healthcheck_response gauge
probe_grpc_healthcheck_response{serving_status="NOT_SERVING"} 1
probe_grpc_healthcheck_response{serving_status="SERVICE_UNKNOWN"} 0
probe_grpc_healthcheck_response{serving_status="SERVING"} 0
probe_grpc_healthcheck_response{serving_status="UNKNOWN"} 0
# HELP probe_grpc_ssl Indicates if SSL was used for the connection
# TYPE probe_grpc_ssl gauge
probe_grpc_ssl 1
# HELP probe_grpc_status_code Response gRPC status code
# TYPE probe_grpc_status_code gauge
probe_grpc_status_code 0
# HELP probe_ssl_earliest_cert_expiry Returns the earliest expiry of any certificate the server sent, as a Unix timestamp in seconds
# TYPE probe_ssl_earliest_cert_expiry gauge
probe_ssl_earliest_cert_expiry 1.9e+09
# HELP probe_ssl_last_chain_expiry_timestamp_seconds Returns the expiry of the verified certificate chain that lasts longest (the earliest expiry within each chain), as a Unix timestamp in seconds
# TYPE probe_ssl_last_chain_expiry_timestamp_seconds gauge
probe_ssl_last_chain_expiry_timestamp_seconds 1.9e+09
# HELP probe_ssl_last_chain_info Contains SSL leaf certificate information
# TYPE probe_ssl_last_chain_info gauge
probe_ssl_last_chain_info{fingerprint_sha256="ab",issuer="CN=CA",serialnumber="01",subject="CN=grpc.example.com",subjectalternative="grpc.example.com"} 1
# HELP probe_ssl_verified Whether the server's certificate chain verified against the trusted roots and the server name (0 when verification failed or was skipped)
# TYPE probe_ssl_verified gauge
probe_ssl_verified 1
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 0
# HELP probe_tls_cipher_info Returns the TLS cipher suite negotiated during the handshake, in the cipher label
# TYPE probe_tls_cipher_info gauge
probe_tls_cipher_info{cipher="TLS_AES_128_GCM_SHA256"} 1
# HELP probe_tls_version_info Returns the TLS version used, in the version label
# TYPE probe_tls_version_info gauge
probe_tls_version_info{version="TLS 1.3"} 1
`
	if err := testutil.GatherAndCompare(gatherGRPC(t, r), strings.NewReader(want), grpcMetricNames...); err != nil {
		t.Error(err)
	}
}

// A certificate that failed verification: gRPC made no connection, but the
// expiry is still there.
func TestRenderGRPCUntrusted(t *testing.T) {
	expiry := time.Unix(1_900_000_000, 0)
	r := &prober.GRPCResult{
		Common:       prober.Common{Resolved: true, DNSLookupSeconds: 0.25, IPProtocol: 4, IPAddr: "192.0.2.1"},
		Called:       true,
		CheckSeconds: 0.5,
		StatusCode:   14,
		Status:       "Unavailable",
		TLS: &prober.TLSInfo{
			Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", VerifyError: "x509: certificate signed by unknown authority",
			EarliestCertExpiry: expiry,
			Certificates:       []prober.CertInfo{{Subject: "CN=grpc.example.com", Issuer: "CN=grpc.example.com", SerialNumber: "01", FingerprintSHA256: "ab", NotAfter: expiry}},
		},
	}
	want := `
# HELP probe_grpc_duration_seconds Duration of gRPC request by phase
# TYPE probe_grpc_duration_seconds gauge
probe_grpc_duration_seconds{phase="check"} 0.5
probe_grpc_duration_seconds{phase="resolve"} 0.25
# HELP probe_grpc_healthcheck_response Response HealthCheck response
# TYPE probe_grpc_healthcheck_response gauge
probe_grpc_healthcheck_response{serving_status="NOT_SERVING"} 0
probe_grpc_healthcheck_response{serving_status="SERVICE_UNKNOWN"} 0
probe_grpc_healthcheck_response{serving_status="SERVING"} 0
probe_grpc_healthcheck_response{serving_status="UNKNOWN"} 0
# HELP probe_grpc_ssl Indicates if SSL was used for the connection
# TYPE probe_grpc_ssl gauge
probe_grpc_ssl 0
# HELP probe_grpc_status_code Response gRPC status code
# TYPE probe_grpc_status_code gauge
probe_grpc_status_code 14
# HELP probe_ssl_earliest_cert_expiry Returns the earliest expiry of any certificate the server sent, as a Unix timestamp in seconds
# TYPE probe_ssl_earliest_cert_expiry gauge
probe_ssl_earliest_cert_expiry 1.9e+09
# HELP probe_ssl_last_chain_info Contains SSL leaf certificate information
# TYPE probe_ssl_last_chain_info gauge
probe_ssl_last_chain_info{fingerprint_sha256="ab",issuer="CN=grpc.example.com",serialnumber="01",subject="CN=grpc.example.com",subjectalternative=""} 1
# HELP probe_ssl_verified Whether the server's certificate chain verified against the trusted roots and the server name (0 when verification failed or was skipped)
# TYPE probe_ssl_verified gauge
probe_ssl_verified 0
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 0
# HELP probe_tls_cipher_info Returns the TLS cipher suite negotiated during the handshake, in the cipher label
# TYPE probe_tls_cipher_info gauge
probe_tls_cipher_info{cipher="TLS_AES_128_GCM_SHA256"} 1
# HELP probe_tls_version_info Returns the TLS version used, in the version label
# TYPE probe_tls_version_info gauge
probe_tls_version_info{version="TLS 1.3"} 1
`
	if err := testutil.GatherAndCompare(gatherGRPC(t, r), strings.NewReader(want), grpcMetricNames...); err != nil {
		t.Error(err)
	}
}

// No call was made (resolution failed): no status code that would read as
// OK, no serving status.
func TestRenderGRPCNoCall(t *testing.T) {
	r := &prober.GRPCResult{Common: prober.Common{Resolved: true, DNSLookupSeconds: 0.25}}
	want := `
# HELP probe_grpc_duration_seconds Duration of gRPC request by phase
# TYPE probe_grpc_duration_seconds gauge
probe_grpc_duration_seconds{phase="resolve"} 0.25
# HELP probe_grpc_ssl Indicates if SSL was used for the connection
# TYPE probe_grpc_ssl gauge
probe_grpc_ssl 0
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 0
`
	if err := testutil.GatherAndCompare(gatherGRPC(t, r), strings.NewReader(want), grpcMetricNames...); err != nil {
		t.Error(err)
	}
}
