package prober

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// unixTestDir is a short directory for sockets (a socket path must fit in
// 108 bytes, which t.TempDir's long names can exceed).
func unixTestDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ux")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// unixTestServer serves each connection to a socket at path with handle.
func unixTestServer(t *testing.T, path string, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return testserver.Serve(t, ln, httpTestTimeout, handle)
}

// unixTestPing answers "PING\n" with "PONG <version>\n".
func unixTestPing(c net.Conn) {
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	if line == "PING\n" {
		fmt.Fprint(c, "PONG 1.2.3\n")
	} else {
		fmt.Fprintf(c, "ERR %q\n", line)
	}
}

// unixTestRun probes the socket sock with module m under a policy that
// allows the given patterns, and returns the result and the refusals counted.
func unixTestRun(t *testing.T, timeout time.Duration, sock string, m config.Module, allow ...string) (*UnixResult, int64) {
	t.Helper()
	pol := config.DefaultTargetPolicy()
	pol.AllowUnixPaths = allow
	var denied atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := Run(ctx, ProbeUnix, Request{Target: sock, Module: &m, ModuleName: "m", Policy: NewPolicy(pol, func() { denied.Add(1) }), Logger: tlsTestLogger(t)})
	res, ok := r.(*UnixResult)
	if !ok {
		t.Fatalf("unix prober returned %T: %s", r, r.Base().Error)
	}
	return res, denied.Load()
}

func TestUnixQueryResponse(t *testing.T) {
	dir := unixTestDir(t)
	sock := unixTestServer(t, filepath.Join(dir, "ping.sock"), unixTestPing)
	allow := dir + "/*.sock"
	tests := []struct {
		name, yaml, err string
		regex           bool
		labels          map[string]string
	}{
		{"connect only", "", "", false, nil},
		{"ping with labels", `
			query_response:
			  - send: PING
			  - expect: '^PONG (\S+)$'
			    labels: [{name: version, value: '${1}'}]
			`, "", false, map[string]string{"version": "1.2.3"}},
		{"wrong answer", `
			query_response:
			  - send: PING
			  - expect: '^PANG'
			`, `Regexp "^PANG" did not match`, true, nil},
		{"expect_bytes", `
			query_response:
			  - send: PING
			  - expect_bytes: "PONG 1"
			`, "", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, denied := unixTestRun(t, httpTestTimeout, sock, probeTestModule(t, "unix", 0, tc.yaml), allow)
			probeTestCheck(t, res, tc.err)
			if !res.Connected || denied != 0 || res.FailedDueToRegex != tc.regex || res.TLS != nil {
				t.Errorf("connected %v, denied %d, failed due to regex %v (want %v), TLS %+v", res.Connected, denied, res.FailedDueToRegex, tc.regex, res.TLS)
			}
			if fmt.Sprint(res.ExpectLabels) != fmt.Sprint(tc.labels) {
				t.Errorf("ExpectLabels = %v, want %v", res.ExpectLabels, tc.labels)
			}
			if res.Resolved || res.IPProtocol != 0 {
				t.Errorf("a socket path was resolved: %+v", res.Common)
			}
		})
	}
}

func TestUnixTLS(t *testing.T) {
	valid, _, _ := tlsTestCerts(t) // valid for localhost
	dir := unixTestDir(t)
	allow := dir + "/*"
	tlsSock := unixTestServer(t, filepath.Join(dir, "tls.sock"), func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{valid.TLS}})
		if tc.Handshake() == nil {
			unixTestPing(tc)
		}
	})
	startTLS := unixTestServer(t, filepath.Join(dir, "starttls.sock"), func(c net.Conn) {
		fmt.Fprint(c, "READY\n")
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "STARTTLS\n" {
			return
		}
		fmt.Fprint(c, "GO AHEAD\n")
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{valid.TLS}})
		if tc.Handshake() == nil {
			unixTestPing(tc)
		}
	})
	ping := "query_response:\n  - send: PING\n  - expect: '^PONG '\n"
	tests := []struct {
		name, sock, yaml, err string
		verified              bool
	}{
		{"tls", tlsSock, "tls: true\n" + ping + httpTestCA(valid) + "  server_name: localhost\n", "", true},
		{"tls, wrong name", tlsSock, "tls: true\n" + httpTestCA(valid) + "  server_name: other.test\n", "certificate is valid for", false},
		{"tls, insecure", tlsSock, "tls: true\n" + ping + "tls_config: {insecure_skip_verify: true}\n", "", false},
		{"starttls", startTLS, httpTestDedent(`
			query_response:
			  - expect: '^READY'
			    send: STARTTLS
			  - expect: '^GO AHEAD'
			    starttls: true
			  - send: PING
			  - expect: '^PONG '
			`) + "\n" + httpTestCA(valid) + "  server_name: localhost\n", "", true},
		{"tls against a plain socket", startTLS, "tls: true\ntls_config: {insecure_skip_verify: true}\n", "TLS handshake failed", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := unixTestRun(t, 3*time.Second, tc.sock, probeTestModule(t, "unix", 0, tc.yaml), allow)
			probeTestCheck(t, res, tc.err)
			if res.TLS == nil {
				if tc.sock == startTLS && tc.err != "" {
					return // the server never answered in TLS
				}
				t.Fatal("no TLS info")
			}
			if res.TLS.Verified != tc.verified || tc.err == "" && (res.TLS.Version == "" || !res.TLS.EarliestCertExpiry.Equal(valid.X509.NotAfter)) {
				t.Errorf("TLS = %+v", res.TLS)
			}
		})
	}
}

// A bad TLS file fails the probe with a reason (blackbox_exporter panics).
func TestUnixBadTLSConfig(t *testing.T) {
	dir := unixTestDir(t)
	sock := unixTestServer(t, filepath.Join(dir, "s.sock"), unixTestPing)
	m := probeTestModule(t, "unix", 0, "tls: true\ntls_config: {server_name: localhost, ca_file: "+filepath.Join(dir, "missing.pem")+"}")
	res, _ := unixTestRun(t, httpTestTimeout, sock, m, dir+"/*")
	probeTestCheck(t, res, "Error creating TLS configuration")
}

func TestUnixPolicy(t *testing.T) {
	dir := unixTestDir(t)
	other := unixTestDir(t)
	sock := unixTestServer(t, filepath.Join(dir, "ok.sock"), unixTestPing)
	outside := unixTestServer(t, filepath.Join(other, "secret.sock"), unixTestPing)
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	abstract := fmt.Sprintf("@isp-checker-test-%d", os.Getpid())
	unixTestServer(t, abstract, unixTestPing)
	m := probeTestModule(t, "unix", 0, "query_response: [{send: PING}, {expect: '^PONG'}]")
	tests := []struct {
		name, sock string
		allow      []string
		err        string
	}{
		{"allowed", sock, []string{dir + "/*.sock"}, ""},
		{"nothing allowed by default", sock, nil, "unix socket path " + sock + " is not in target_policy.allow_unix_paths"},
		{"outside the patterns", outside, []string{dir + "/*.sock"}, "is not in target_policy.allow_unix_paths"},
		{"a link to a socket outside", link, []string{dir + "/*.sock"}, "leads to " + outside + ", which is not in target_policy.allow_unix_paths"},
		{"a link whose target is allowed too", link, []string{dir + "/*.sock", other + "/*"}, ""},
		{"dot-dot", dir + "/../" + filepath.Base(other) + "/secret.sock", []string{dir + "/*", dir + "/../*/*"}, "has a .. element"},
		{"relative", "ok.sock", []string{"*"}, "is not absolute"},
		{"abstract, not allowed by a path pattern", abstract, []string{"/*", "*"}, "abstract unix socket " + abstract + " is not in target_policy.allow_unix_paths"},
		{"abstract, allowed", abstract, []string{"@isp-checker-test-*"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, denied := unixTestRun(t, httpTestTimeout, tc.sock, m, tc.allow...)
			probeTestCheck(t, res, tc.err)
			if tc.err == "" {
				return
			}
			if res.Connected || denied != 1 || !strings.Contains(res.Error, "Target refused by target_policy") {
				t.Errorf("connected %v, refusals counted %d, error %q", res.Connected, denied, res.Error)
			}
		})
	}
}

func TestUnixFailures(t *testing.T) {
	dir := unixTestDir(t)
	silent := unixTestServer(t, filepath.Join(dir, "silent.sock"), func(c net.Conn) { tcpTestDrain(c) })
	notSocket := filepath.Join(dir, "plain.sock")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, sock, yaml, err string
		connected             bool
	}{
		{"no such socket", filepath.Join(dir, "none.sock"), "", "no such file or directory", false},
		{"not a socket", notSocket, "", "connection refused", false},
		{"silent server times out", silent, "query_response: [{expect: '^hello'}]", "i/o timeout", true},
		{"silent server, expect_bytes", silent, "query_response: [{expect_bytes: hello}]", "after 0 of the 5 expected bytes", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, _ := unixTestRun(t, time.Second, tc.sock, probeTestModule(t, "unix", 0, tc.yaml), dir+"/*")
			probeTestCheck(t, res, tc.err)
			if res.Connected != tc.connected || res.FailedDueToBytes || res.FailedDueToRegex {
				t.Errorf("connected %v (want %v), failed due to bytes %v, regex %v", res.Connected, tc.connected, res.FailedDueToBytes, res.FailedDueToRegex)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("probe with a 1s timeout took %v", d)
			}
		})
	}
}

// A unix:// URL is not a socket path (blackbox_exporter dials the target as
// given, so it fails there too): the refusal says what to give instead.
func TestUnixURLTarget(t *testing.T) {
	dir := unixTestDir(t)
	sock := unixTestServer(t, filepath.Join(dir, "app.sock"), unixTestPing)
	for _, target := range []string{"unix://" + sock, "unix:" + sock, "http://localhost/"} {
		t.Run(target, func(t *testing.T) {
			pol := config.DefaultTargetPolicy()
			pol.AllowUnixPaths = []string{dir + "/*"}
			ctx, cancel := context.WithTimeout(context.Background(), httpTestTimeout)
			defer cancel()
			r := Run(ctx, ProbeUnix, Request{Target: target, Module: new(probeTestModule(t, "unix", 0, "")), ModuleName: "unix_ping", Policy: NewPolicy(pol, nil), Logger: tlsTestLogger(t)})
			probeTestCheck(t, r, "give the socket's path (e.g. /run/app.sock)")
			if strings.Contains(r.Base().Error, "http://") {
				t.Errorf("error %q offers URLs to a unix module", r.Base().Error)
			}
		})
	}
}
