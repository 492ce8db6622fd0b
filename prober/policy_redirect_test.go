package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// redirectTestResolver replaces the probers' resolver with an in-process DNS
// server for the test (never the machine's resolver), and returns its zone.
func redirectTestResolver(t *testing.T, records map[string][]netip.Addr) *testserver.Zone {
	t.Helper()
	r, z := testserver.Resolver(t, records)
	old := Resolver
	Resolver = r
	t.Cleanup(func() { Resolver = old })
	return z
}

// countingServer is an HTTP server on addr ("127.0.0.1:0", "[::1]:0") that
// counts the connections it accepts: the ground truth of "reached".
func countingServer(t *testing.T, network, addr string) (port string, hits *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	hits = &atomic.Int64{}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("reached")) }),
		ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				hits.Add(1)
			}
		},
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, hits
}

// redirector answers every request with code and Location loc.
func redirector(t *testing.T, code int, loc string) string {
	t.Helper()
	s := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", loc)
		w.WriteHeader(code)
	}))
	return s.URL
}

// Redirects to a zoned address or an IDNA look-alike of a denied name are
// refused by the http and throughput probers, on loopback: the policy
// denies ::1 and *.internal here, standing in for fd00:ec2::254 and
// metadata.internal (the lab test in integration/ uses those).
func TestRedirectBypassesRefused(t *testing.T) {
	port6, hits6 := countingServer(t, "tcp6", "[::1]:0")
	port4, hits4 := countingServer(t, "tcp4", "127.0.0.2:0")
	zone := redirectTestResolver(t, map[string][]netip.Addr{"metadata.internal": {netip.MustParseAddr("127.0.0.2")}})
	pol := config.DefaultTargetPolicy()
	pol.DenyNetworks = append(pol.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("::1/128")})
	pol.DenyHosts = []string{"*.internal"}
	locations := []string{
		"http://[::1%25lo]:" + port6 + "/",
		"http://[::1%25x]:" + port6 + "/",
		"http://[0:0:0:0:0:0:0:1%25lo]:" + port6 + "/",
		"http://metadata.ⓘⓝⓣⓔⓡⓝⓐⓛ:" + port4 + "/",
		"http://metadata。internal:" + port4 + "/",
		"http://metadata.ＩＮＴＥＲＮＡＬ:" + port4 + "/",
		"http://METADATA.internal.:" + port4 + "/",
	}
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, loc := range locations {
			target := redirector(t, code, loc)
			for _, prober := range []string{"http", "throughput"} {
				t.Run(fmt.Sprintf("%s/%d/%s", prober, code, loc), func(t *testing.T) {
					var denied atomic.Int64
					m := probeTestModule(t, prober, 0, redirectModuleYAML(prober))
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					res := Run(ctx, probeTestFunc(m.Prober), Request{Target: target, Module: &m, Policy: NewPolicy(pol, func() { denied.Add(1) }), Logger: tlsTestLogger(t)})
					if res.Base().Success || !strings.Contains(res.Base().Error, "target_policy") {
						t.Errorf("probe error %q, want a target_policy refusal", res.Base().Error)
					}
					if denied.Load() == 0 {
						t.Error("no denial counted")
					}
				})
			}
		}
	}
	if n := hits6.Load() + hits4.Load(); n != 0 {
		t.Errorf("denied listeners were reached %d times", n)
	}
	if n := zone.Queries(); n != 0 {
		t.Errorf("denied names were looked up %d times", n)
	}
}

func redirectModuleYAML(prober string) string {
	if prober == "throughput" {
		return "duration: 1s\nramp_up: 100ms\nconnections: 1\nlatency_protocol: none"
	}
	return ""
}

// A proxy the module names is dialled even when its name matches no
// allow_hosts pattern (the operator chose it, not the target); the target
// is still judged.
func TestPolicyExemptsConfiguredProxy(t *testing.T) {
	proxy := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("via proxy")) // answers itself: nothing leaves the machine
	}))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(proxy.URL, "http://"))
	redirectTestResolver(t, map[string][]netip.Addr{"proxy.test": {netip.MustParseAddr("127.0.0.1")}})
	pol := config.DefaultTargetPolicy()
	pol.AllowHosts = []string{"allowed.example"}
	m := httpTestModule(t, "proxy_url: http://proxy.test:"+port+"\nskip_resolve_phase_with_proxy: true")
	res := httpTestRun(t, "http://allowed.example/x", m, httpTestPolicy(NewPolicy(pol, nil)))
	httpTestCheck(t, res, "")
	res = httpTestRun(t, "http://other.example/x", m, httpTestPolicy(NewPolicy(pol, nil)))
	httpTestCheck(t, res, "matches no allowed host pattern")
}
