package prober

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// grpcTestServer runs a real gRPC server with the standard health service on
// a free port of host (127.0.0.1 or ::1) and stops it when the test ends.
// The overall health ("") is SERVING; statuses sets more services.
func grpcTestServer(t testing.TB, host string, statuses map[string]grpc_health_v1.HealthCheckResponse_ServingStatus, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	for name, st := range statuses {
		hs.SetServingStatus(name, st)
	}
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

// grpcTestTLS is the server option for TLS with cert.
func grpcTestTLS(cert tlsTestCert) grpc.ServerOption {
	return grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert.TLS}}))
}

func grpcTestModule(t testing.TB, grpcYAML string) config.Module {
	t.Helper()
	return httpTestLoad(t, "grpc", grpcYAML)
}

func grpcTestRun(t testing.TB, timeout time.Duration, target string, m config.Module, opts ...httpTestOpt) *GRPCResult {
	t.Helper()
	return probeTestRun[*GRPCResult](t, timeout, target, m, opts...)
}

// grpcTestCheck checks success, or failure with an error containing errSubstr.
func grpcTestCheck(t testing.TB, res *GRPCResult, errSubstr string) {
	t.Helper()
	probeTestCheck(t, res, errSubstr)
}

func TestGRPCHealth(t *testing.T) {
	addr := grpcTestServer(t, "127.0.0.1", map[string]grpc_health_v1.HealthCheckResponse_ServingStatus{
		"up":       grpc_health_v1.HealthCheckResponse_SERVING,
		"down":     grpc_health_v1.HealthCheckResponse_NOT_SERVING,
		"unknown":  grpc_health_v1.HealthCheckResponse_SERVICE_UNKNOWN,
		"starting": grpc_health_v1.HealthCheckResponse_UNKNOWN,
	})
	tests := []struct {
		name, yaml, err, serving string
		code                     int
	}{
		{"server as a whole", "", "", "SERVING", 0},
		{"serving service", "service: up", "", "SERVING", 0},
		{"not serving", "service: down", `answered NOT_SERVING, want SERVING`, "NOT_SERVING", 0},
		{"service unknown", "service: unknown", `answered SERVICE_UNKNOWN`, "SERVICE_UNKNOWN", 0},
		{"unknown status", "service: starting", `answered UNKNOWN`, "UNKNOWN", 0},
		// The standard health service answers Check for a service it does
		// not know with the status NotFound, not with a response.
		{"unregistered service", "service: nobody", "code = NotFound", "", 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := grpcTestRun(t, httpTestTimeout, addr, grpcTestModule(t, tc.yaml))
			grpcTestCheck(t, res, tc.err)
			if !res.Called || res.StatusCode != tc.code || res.ServingStatus != tc.serving {
				t.Errorf("called %v, status code %d (%s), serving status %q; want code %d, %q", res.Called, res.StatusCode, res.Status, res.ServingStatus, tc.code, tc.serving)
			}
			if res.SSL || res.TLS != nil {
				t.Errorf("SSL %v, TLS %+v on a plain-text connection", res.SSL, res.TLS)
			}
			if res.CheckSeconds <= 0 || !res.Resolved || res.IPProtocol != 4 || res.IPAddr != "127.0.0.1" {
				t.Errorf("check %vs, resolved %v, ip %d %q", res.CheckSeconds, res.Resolved, res.IPProtocol, res.IPAddr)
			}
		})
	}
}

func TestGRPCTLS(t *testing.T) {
	valid, named, expired := tlsTestCerts(t)
	good := grpcTestServer(t, "127.0.0.1", nil, grpcTestTLS(valid))
	byName := grpcTestServer(t, "127.0.0.1", nil, grpcTestTLS(named))
	old := grpcTestServer(t, "127.0.0.1", nil, grpcTestTLS(expired))
	plain := grpcTestServer(t, "127.0.0.1", nil)
	tests := []struct {
		name, addr, yaml, hostname, err string
		cert                            *tlsTestCert
		verified, ssl                   bool
	}{
		{"trusted", good, "tls: true\n" + httpTestCA(valid), "", "", &valid, true, true},
		{"untrusted still reports the expiry", good, "tls: true", "", "unknown authority", &valid, false, false},
		{"expired", old, "tls: true\n" + httpTestCA(expired), "", "certificate has expired", &expired, false, false},
		{"hostname is the server name", byName, "tls: true\n" + httpTestCA(named), "probe.test", "", &named, true, true},
		{"hostname with a port", byName, "tls: true\n" + httpTestCA(named), "probe.test:443", "", &named, true, true},
		{"server_name wins over hostname", byName, "tls: true\n" + httpTestCA(named) + "  server_name: probe.test", "wrong.test", "", &named, true, true},
		{"name mismatch", byName, "tls: true\n" + httpTestCA(named), "", "127.0.0.1", &named, false, false},
		{"insecure", good, "tls: true\ntls_config: {insecure_skip_verify: true}", "", "", &valid, false, true},
		{"tls_config without tls is plain text", plain, httpTestCA(valid), "", "", nil, false, false},
		{"tls to a plain-text server", plain, "tls: true\n" + httpTestCA(valid), "", "code = Unavailable", nil, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []httpTestOpt
			if tc.hostname != "" {
				opts = append(opts, httpTestHostname(tc.hostname))
			}
			res := grpcTestRun(t, httpTestTimeout, tc.addr, grpcTestModule(t, tc.yaml), opts...)
			grpcTestCheck(t, res, tc.err)
			if res.SSL != tc.ssl {
				t.Errorf("SSL = %v, want %v", res.SSL, tc.ssl)
			}
			if tc.cert == nil {
				if res.TLS != nil {
					t.Errorf("TLS = %+v, want none", res.TLS)
				}
				return
			}
			if res.TLS == nil {
				t.Fatal("no TLS info")
			}
			if res.TLS.Verified != tc.verified || !res.TLS.EarliestCertExpiry.Equal(tc.cert.X509.NotAfter) {
				t.Errorf("verified %v expiry %v (%s)", res.TLS.Verified, res.TLS.EarliestCertExpiry, res.TLS.VerifyError)
			}
			if tc.verified && !res.TLS.LastChainExpiry.Equal(tc.cert.X509.NotAfter) {
				t.Errorf("LastChainExpiry = %v", res.TLS.LastChainExpiry)
			}
			if res.TLS.Version == "" {
				t.Error("no TLS version")
			}
			if tc.err != "" && res.StatusCode != 14 {
				t.Errorf("status code %d (%s), want 14 (Unavailable)", res.StatusCode, res.Status)
			}
		})
	}
}

func TestGRPCFailures(t *testing.T) {
	// Accepts connections and never answers: neither HTTP/2 nor TLS.
	silent := testserver.TCP(t, "tcp", httpTestTimeout, func(c net.Conn) { tcpTestDrain(c) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	tests := []struct {
		name, target, yaml, err string
		called                  bool
		code                    int
	}{
		{"refused", closed, "", "connection refused", true, 14},
		{"silent server times out", silent, "", "timed out", true, 4},
		{"silent TLS server times out", silent, "tls: true", "timed out", true, 4},
		{"port zero", "127.0.0.1:0", "", "invalid port", false, 0},
		{"no host", ":50051", "", "the target has no host", false, 0},
		{"denied address", "169.254.169.254:50051", "", "refused by target_policy", false, 0},
		{"missing ca_file", closed, "tls: true\ntls_config: {ca_file: /nonexistent/ca.pem}", "Error creating TLS configuration", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res := grpcTestRun(t, time.Second, tc.target, grpcTestModule(t, tc.yaml))
			elapsed := time.Since(start)
			grpcTestCheck(t, res, tc.err)
			if res.Called != tc.called || res.StatusCode != tc.code || res.ServingStatus != "" {
				t.Errorf("called %v, status code %d (%s), serving status %q; want called %v, code %d", res.Called, res.StatusCode, res.Status, res.ServingStatus, tc.called, tc.code)
			}
			// The probe ends with its context: well before the next scrape.
			if elapsed > 3*time.Second {
				t.Errorf("probe with a 1s timeout took %v", elapsed)
			}
		})
	}
}

func TestGRPCTargetPolicy(t *testing.T) {
	cfg, err := config.Load([]byte("target_policy:\n  deny_networks: [127.0.0.2/32]\nmodules: {}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	var denied atomic.Int32
	policy := NewPolicy(cfg.TargetPolicy, func() { denied.Add(1) })

	t.Run("resolved address", func(t *testing.T) {
		// Nothing listens on 127.0.0.2: the probe must not even try.
		res := grpcTestRun(t, httpTestTimeout, "127.0.0.2:50051", grpcTestModule(t, ""), httpTestPolicy(policy))
		grpcTestCheck(t, res, "Target refused by target_policy")
		if res.Called {
			t.Error("the health check was called")
		}
		if denied.Load() != 1 {
			t.Errorf("denials counted: %d", denied.Load())
		}
	})
	t.Run("at dial time", func(t *testing.T) {
		// Every connection gRPC makes goes through the policy's dialer.
		d := &grpcDialer{policy: policy, network: "tcp4"}
		conn, err := d.dial(context.Background(), "127.0.0.2:50051")
		if conn != nil {
			_ = conn.Close()
		}
		if !errors.Is(err, ErrDenied) || !errors.Is(d.lastErr(), ErrDenied) {
			t.Errorf("dial error %v, recorded %v; want the policy's refusal", err, d.lastErr())
		}
	})
}

func TestGRPCAuthority(t *testing.T) {
	var mu sync.Mutex
	var authority []string
	record := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		authority = md.Get(":authority")
		mu.Unlock()
		return h(ctx, req)
	})
	addr := grpcTestServer(t, "127.0.0.1", nil, record)
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct{ name, target, hostname, want string }{
		{"target", addr, "", addr},
		{"hostname parameter", addr, "grpc.example.com", "grpc.example.com"},
		{"name resolved as ip4", "localhost:" + port, "", "localhost:" + port},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []httpTestOpt
			if tc.hostname != "" {
				opts = append(opts, httpTestHostname(tc.hostname))
			}
			res := grpcTestRun(t, httpTestTimeout, tc.target, grpcTestModule(t, "preferred_ip_protocol: ip4"), opts...)
			grpcTestCheck(t, res, "")
			mu.Lock()
			got := authority
			mu.Unlock()
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf(":authority = %q, want %q", got, tc.want)
			}
		})
	}
}

// Metadata reaches the server as gRPC request headers, keys lower-cased
// (blackbox_exporter sends "Authorization" as written and every call fails).
func TestGRPCMetadata(t *testing.T) {
	got := make(chan metadata.MD, 1)
	record := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		got <- md
		return h(ctx, req)
	})
	addr := grpcTestServer(t, "127.0.0.1", nil, record)
	res := grpcTestRun(t, httpTestTimeout, addr, grpcTestModule(t, httpTestDedent(`
		metadata:
		  Authorization: ["Bearer t0ken"]
		  x-tenant: [a, b]
		  trace-bin: [!!binary AAH/]
		`)))
	grpcTestCheck(t, res, "")
	md := <-got
	for key, want := range map[string][]string{"authorization": {"Bearer t0ken"}, "x-tenant": {"a", "b"}, "trace-bin": {"\x00\x01\xff"}} {
		if !slices.Equal(md.Get(key), want) {
			t.Errorf("server got %s = %q, want %q (all: %v)", key, md.Get(key), want, md)
		}
	}
	if res.StatusCode != 0 {
		t.Errorf("status code %d", res.StatusCode)
	}
}

func TestGRPCIPProtocol(t *testing.T) {
	t.Run("ip6", func(t *testing.T) {
		if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		} else {
			_ = ln.Close()
		}
		addr := grpcTestServer(t, "::1", nil)
		res := grpcTestRun(t, httpTestTimeout, addr, grpcTestModule(t, ""))
		grpcTestCheck(t, res, "")
		if res.IPProtocol != 6 || res.IPAddr != "::1" {
			t.Errorf("ip %d %q", res.IPProtocol, res.IPAddr)
		}
	})
	t.Run("no fallback", func(t *testing.T) {
		ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), "localhost")
		if err != nil {
			t.Skip(err)
		}
		for _, ip := range ips {
			if ip.IP.To4() == nil {
				t.Skip("localhost has an IPv6 address here")
			}
		}
		res := grpcTestRun(t, httpTestTimeout, "localhost:50051", grpcTestModule(t, "preferred_ip_protocol: ip6\nip_protocol_fallback: false"))
		grpcTestCheck(t, res, "no ip6 address")
		if res.Called {
			t.Error("the health check was called")
		}
	})
}

// TestGRPCDebianConfig runs the grpc modules of Debian's stock blackbox.yml,
// unchanged.
func TestGRPCDebianConfig(t *testing.T) {
	cfg, err := config.LoadFile(filepath.Join("..", "config", "testdata", "blackbox-debian.yml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("grpc_plain", func(t *testing.T) {
		addr := grpcTestServer(t, "127.0.0.1", map[string]grpc_health_v1.HealthCheckResponse_ServingStatus{
			"service1": grpc_health_v1.HealthCheckResponse_SERVING,
		})
		res := grpcTestRun(t, httpTestTimeout, addr, *cfg.Modules["grpc_plain"])
		grpcTestCheck(t, res, "")
		if res.ServingStatus != "SERVING" || res.SSL {
			t.Errorf("serving status %q, SSL %v", res.ServingStatus, res.SSL)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		// tls: true and ip4 with the system's roots: the test certificate
		// is not trusted, but its expiry is still reported.
		valid, _, _ := tlsTestCerts(t)
		addr := grpcTestServer(t, "127.0.0.1", nil, grpcTestTLS(valid))
		_, port, _ := net.SplitHostPort(addr)
		res := grpcTestRun(t, httpTestTimeout, "localhost:"+port, *cfg.Modules["grpc"])
		grpcTestCheck(t, res, "unknown authority")
		if res.IPProtocol != 4 || res.TLS == nil || !res.TLS.EarliestCertExpiry.Equal(valid.X509.NotAfter) {
			t.Errorf("ip %d, TLS %+v", res.IPProtocol, res.TLS)
		}
	})
}

func TestGRPCTarget(t *testing.T) {
	tests := []struct {
		target     string
		tls        bool
		host, port string
		err        bool
	}{
		{"grpc.example.com:50051", false, "grpc.example.com", "50051", false},
		{"127.0.0.1:9000", true, "127.0.0.1", "9000", false},
		{"[2001:db8::1]:443", true, "2001:db8::1", "443", false},
		{"http://grpc.example.com:8080", true, "grpc.example.com", "8080", false},
		{"https://grpc.example.com", true, "grpc.example.com", "443", false},
		{"grpc.example.com", false, "grpc.example.com", "80", false},
		{"grpc.example.com:0", false, "", "", true},
		{"grpc.example.com:70000", false, "", "", true},
		{"grpc.example.com:http", false, "", "", true},
		{"", false, "", "", true},
	}
	for _, tc := range tests {
		host, port, err := grpcTarget(tc.target, tc.tls)
		if (err != nil) != tc.err || host != tc.host || port != tc.port {
			t.Errorf("grpcTarget(%q, %v) = %q, %q, %v", tc.target, tc.tls, host, port, err)
		}
	}
}

func TestGRPCCancelled(t *testing.T) {
	addr := grpcTestServer(t, "127.0.0.1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, ok := Run(ctx, ProbeGRPC, Request{Target: addr, Module: new(grpcTestModule(t, "")), Logger: tlsTestLogger(t)}).(*GRPCResult)
	if !ok {
		t.Fatalf("grpc prober returned %T", res)
	}
	if res.Success || res.StatusCode != 1 {
		t.Errorf("success %v, status code %d (%s): %s", res.Success, res.StatusCode, res.Status, res.Error)
	}
}

func TestGRPCResultJSON(t *testing.T) {
	addr := grpcTestServer(t, "127.0.0.1", nil)
	res := grpcTestRun(t, httpTestTimeout, addr, grpcTestModule(t, ""))
	grpcTestCheck(t, res, "")
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"prober", "success", "called", "check_seconds", "status_code", "status", "serving_status", "ssl", "ip_addr"} {
		if _, ok := got[key]; !ok {
			t.Errorf("JSON has no %q: %s", key, b)
		}
	}
}

// TestGRPCConfigFixtures loads config/testdata/grpc-*.yml.
func TestGRPCConfigFixtures(t *testing.T) {
	dir := filepath.Join("..", "config", "testdata")
	c, err := config.LoadFile(filepath.Join(dir, "grpc-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Modules["grpc_tls"].GRPC
	if g.Service != "service1" || !g.TLS || g.TLSConfig.ServerName != "grpc.example.com" || g.IPProtocol != "ip4" || g.IPProtocolFallback {
		t.Errorf("options not applied: %+v", g)
	}
	if p := c.Modules["grpc_plain"].GRPC; p.TLS || !p.IPProtocolFallback || p.Service != "" {
		t.Errorf("defaults not applied: %+v", p)
	}
	md := c.Modules["grpc_metadata"].GRPC.Metadata
	if fmt.Sprint(md) != fmt.Sprint(map[string][]string{"authorization": {"Bearer s3cret-grpc-token"}, "trace-bin": {"\x00\x01\xff"}, "x-tenant": {"a", "b"}}) {
		t.Errorf("metadata (keys lower-cased) = %q", md)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret-grpc-token") || !strings.Contains(string(out), "authorization:\n") {
		t.Errorf("/config must show metadata keys, not values:\n%s", out)
	}
	for file, want := range map[string]string{
		"grpc-bad-ip-protocol.yml":     `module "m": grpc: preferred_ip_protocol "ip5" is not valid (ip4 or ip6)`,
		"grpc-bad-unknown-field.yml":   `module "m": line 5: unknown field "services" in grpc`,
		"grpc-bad-tls-config.yml":      `module "m": grpc: at most one of ca, ca_file & ca_ref must be configured`,
		"grpc-bad-metadata-key.yml":    `module "m": grpc: grpc metadata key "x tenant" is not valid: want letters, digits, -, _ or ., not starting with grpc- (reserved)`,
		"grpc-bad-metadata-scalar.yml": "module \"m\": line 7: cannot unmarshal !!str `Bearer ...` into []string",
		"grpc-bad-metadata-value.yml":  `module "m": grpc: grpc metadata "x-note": value has a byte that is not printable ASCII (0xa); binary values need a key ending in -bin`,
	} {
		path := filepath.Join(dir, file)
		_, err := config.LoadFile(path)
		if want = "parsing config file " + path + ": " + want; err == nil || err.Error() != want {
			t.Errorf("error mismatch\n got: %v\nwant: %s", err, want)
		}
	}
}
