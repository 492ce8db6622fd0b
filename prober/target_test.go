package prober

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Targets with a scheme no prober speaks are refused as such: nothing is
// looked up (the zone counts queries) and nothing is sent.
func TestUnsupportedSchemes(t *testing.T) {
	zone := redirectTestResolver(t, map[string][]netip.Addr{
		"file": {netip.MustParseAddr("127.0.0.1")}, "gopher": {netip.MustParseAddr("127.0.0.1")},
		"ftp": {netip.MustParseAddr("127.0.0.1")}, "unix": {netip.MustParseAddr("127.0.0.1")},
	})
	targets := []string{"file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/", "FTP://127.0.0.1/", "unix:/run/docker.sock", "unix:", "ws://127.0.0.1/"}
	for _, prober := range []string{"http", "tcp", "icmp", "dns", "grpc", "throughput", "traceroute", "mtu"} {
		yaml := ""
		if prober == "dns" {
			yaml = "query_name: example.com"
		}
		m := probeTestModule(t, prober, 0, yaml)
		for _, target := range targets {
			res := probeTestRun[Result](t, 5*time.Second, target, m)
			if b := res.Base(); b.Success || !strings.Contains(b.Error, "nsupported scheme") {
				t.Errorf("%s %s: error %q, want unsupported scheme", prober, target, b.Error)
			}
		}
	}
	if n := zone.Queries(); n != 0 {
		t.Errorf("%d lookups for unsupported schemes", n)
	}
	// Hosts, host:port and bare addresses are not schemes.
	for _, target := range []string{"example.com", "localhost:8080", "[::1]:80", "fe80::1%eth0", "::1", "user:pass@host", "http://x", "HTTPS://x"} {
		if s := targetScheme(target); s != "" && s != "http" && s != "https" {
			t.Errorf("targetScheme(%q) = %q", target, s)
		}
	}
}

func TestRedactTarget(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:s3cret@example.com/x?y=1": "http://user:xxxxx@example.com/x?y=1",
		"user:s3cret@example.com":              "user:xxxxx@example.com",
		"https://t0ken@example.com/":           "https://xxxxx@example.com/",
		"https://example.com/a@b":              "https://example.com/a@b",
		"example.com:8080":                     "example.com:8080",
		"http://a:b@c@example.com":             "http://a:xxxxx@example.com",
	} {
		if got := RedactTarget(in); got != want {
			t.Errorf("RedactTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

// A hostname that cannot be a Host header fails the probe instead of being
// dropped by net/http (which then sends an empty Host).
func TestHTTPBadHostname(t *testing.T) {
	s := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for _, h := range []string{"a\r\nX-Evil: 1", "a\nb", "a\x00b", "a b", "a/b"} {
		res := httpTestRun(t, s.URL, httpTestModule(t, ""), httpTestHostname(h))
		httpTestCheck(t, res, "Invalid hostname parameter")
	}
}

// The throughput prober names a redirect loop as one.
func TestThroughputRedirectLoop(t *testing.T) {
	s := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	m := probeTestModule(t, "throughput", 0, redirectModuleYAML("throughput"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := Run(ctx, ProbeThroughput, Request{Target: s.URL, Module: &m, Policy: NewPolicy(testPolicy(), nil), Logger: tlsTestLogger(t)})
	if !strings.Contains(res.Base().Error, "stopped after 10 redirects") {
		t.Errorf("error %q, want stopped after 10 redirects", res.Base().Error)
	}
}
