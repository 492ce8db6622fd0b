package prober

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// tcpTestServer serves each loopback connection with handle and waits for
// every handler when the test ends.
func tcpTestServer(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	return testserver.TCP(t, "tcp", httpTestTimeout, handle)
}

// tcpTestDrain reads until the client hangs up.
func tcpTestDrain(r interface{ Read([]byte) (int, error) }) {
	buf := make([]byte, 512)
	for {
		if _, err := r.Read(buf); err != nil {
			return
		}
	}
}

func tcpTestModule(t testing.TB, tcpYAML string) config.Module {
	t.Helper()
	return httpTestLoad(t, "tcp", tcpYAML)
}

func tcpTestRun(t testing.TB, timeout time.Duration, target string, m config.Module, opts ...httpTestOpt) *TCPResult {
	t.Helper()
	return probeTestRun[*TCPResult](t, timeout, target, m, opts...)
}

func tcpTestCheck(t testing.TB, res *TCPResult, errSubstr string) {
	t.Helper()
	probeTestCheck(t, res, errSubstr)
}

// tcpTestBanner is an SSH-like server: it sends a banner, checks the
// client's reply, answers OK (or BAD) and hangs up.
func tcpTestBanner(c net.Conn) {
	fmt.Fprint(c, "SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n")
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	if line == "SSH-2.0-isp-checker OpenSSH_9.6p1\n" {
		fmt.Fprint(c, "noise\nOK build=42\n")
	} else {
		fmt.Fprintf(c, "BAD %q\n", line)
	}
}

func TestTCPQueryResponse(t *testing.T) {
	addr := tcpTestServer(t, tcpTestBanner)
	bye := tcpTestServer(t, func(c net.Conn) { fmt.Fprint(c, "421 closing\r\n") })
	tests := []struct {
		name, yaml, err string
		regex           bool
		labels          map[string]string
	}{
		{"connect only", "", "", false, nil},
		{"banner", "query_response: [{expect: '^SSH-2\\.0-'}]", "", false, nil},
		{"dialogue with labels", `
			query_response:
			  - expect: '^SSH-2\.0-([^ ]+)(?: (.*))?$'
			    labels:
			      - {name: ssh_version, value: '${1}'}
			      - {name: comment, value: 'os ${2}'}
			    send: 'SSH-2.0-isp-checker ${1}'
			  - expect: '^OK build=(\d+)$'
			    labels:
			      - {name: build, value: '${1}'}
			`, "", false, map[string]string{"ssh_version": "OpenSSH_9.6p1", "comment": "os Debian-3", "build": "42"}},
		{"wrong reply", `
			query_response:
			  - expect: '^SSH-2\.0-'
			    send: 'SSH-2.0-other'
			  - expect: '^OK'
			`, `Regexp "^OK" did not match`, true, nil},
		{"labels of a step not reached are empty", `
			query_response:
			  - expect: '^SSH-2\.0-([^ ]+)'
			    labels: [{name: ssh_version, value: '${1}'}]
			    send: 'SSH-2.0-other'
			  - expect: '^OK build=(\d+)$'
			    labels: [{name: build, value: '${1}'}]
			`, `Regexp "^OK build=`, true, map[string]string{"ssh_version": "OpenSSH_9.6p1", "build": ""}},
		{"no match before hang-up", "query_response: [{expect: '^220 '}]", `Regexp "^220 " did not match`, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := addr
			if strings.HasPrefix(tc.name, "no match") {
				target = bye
			}
			res := tcpTestRun(t, httpTestTimeout, target, tcpTestModule(t, tc.yaml))
			tcpTestCheck(t, res, tc.err)
			if res.FailedDueToRegex != tc.regex {
				t.Errorf("FailedDueToRegex = %v, want %v", res.FailedDueToRegex, tc.regex)
			}
			if fmt.Sprint(res.ExpectLabels) != fmt.Sprint(tc.labels) {
				t.Errorf("ExpectLabels = %v, want %v", res.ExpectLabels, tc.labels)
			}
			if !res.Connected || res.ConnectSeconds <= 0 || res.TLS != nil {
				t.Errorf("connected %v in %vs, tls %v", res.Connected, res.ConnectSeconds, res.TLS)
			}
		})
	}
}

func TestTCPStartTLS(t *testing.T) {
	_, named, expired := tlsTestCerts(t)
	smtp := func(cert tlsTestCert) func(net.Conn) {
		return func(c net.Conn) {
			fmt.Fprint(c, "220 mail.test ESMTP ready\r\n")
			r := bufio.NewReader(c)
			if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != "STARTTLS" {
				fmt.Fprint(c, "500 what?\r\n")
				return
			}
			fmt.Fprint(c, "220 Ready to start TLS\r\n")
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
			if tc.Handshake() != nil {
				return
			}
			fmt.Fprint(tc, "250 mail.test at your service\r\n")
			tcpTestDrain(tc)
		}
	}
	dialogue := `
		query_response:
		  - expect: '^220 .* ESMTP'
		    send: STARTTLS
		  - expect: '^220 Ready'
		    starttls: true
		  - expect: '^250 '
		    send: QUIT
		`
	t.Run("upgrade", func(t *testing.T) {
		addr := tcpTestServer(t, smtp(named))
		res := tcpTestRun(t, httpTestTimeout, addr, tcpTestModule(t, httpTestDedent(dialogue)+"\n"+httpTestCA(named)), httpTestHostname("probe.test"))
		tcpTestCheck(t, res, "")
		if res.TLS == nil || !res.TLS.Verified || res.TLS.ServerName != "probe.test" || !res.TLS.EarliestCertExpiry.Equal(named.X509.NotAfter) {
			t.Fatalf("TLS = %+v", res.TLS)
		}
		if res.TLSHandshakeSeconds <= 0 {
			t.Error("no handshake time")
		}
	})
	t.Run("expired certificate", func(t *testing.T) {
		addr := tcpTestServer(t, smtp(expired))
		res := tcpTestRun(t, httpTestTimeout, addr, tcpTestModule(t, httpTestDedent(dialogue)+"\n"+httpTestCA(expired)))
		tcpTestCheck(t, res, "certificate has expired")
		if res.TLS == nil || res.TLS.Verified || !res.TLS.EarliestCertExpiry.Equal(expired.X509.NotAfter) {
			t.Fatalf("TLS = %+v", res.TLS)
		}
	})
}

func TestTCPTLS(t *testing.T) {
	valid, named, expired := tlsTestCerts(t)
	serve := func(cert tlsTestCert) string {
		return tcpTestServer(t, func(c net.Conn) {
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
			if tc.Handshake() != nil {
				return
			}
			fmt.Fprint(tc, "hello over tls\n")
			tcpTestDrain(tc)
		})
	}
	good, named2, old := serve(valid), serve(named), serve(expired)
	tests := []struct {
		name, addr, yaml, hostname, err string
		cert                            tlsTestCert
		verified                        bool
	}{
		{"trusted", good, "tls: true\n" + httpTestCA(valid) + "query_response: [{expect: '^hello over tls$'}]", "", "", valid, true},
		{"expired", old, "tls: true\n" + httpTestCA(expired), "", "certificate has expired", expired, false},
		{"untrusted", good, "tls: true", "", "unknown authority", valid, false},
		{"hostname is the server name", named2, "tls: true\n" + httpTestCA(named), "probe.test", "", named, true},
		{"server_name wins over hostname", named2, "tls: true\n" + httpTestCA(named) + "  server_name: probe.test", "wrong.test", "", named, true},
		{"name mismatch", named2, "tls: true\n" + httpTestCA(named), "", "127.0.0.1", named, false},
		{"insecure", good, "tls: true\ntls_config: {insecure_skip_verify: true}", "", "", valid, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []httpTestOpt
			if tc.hostname != "" {
				opts = append(opts, httpTestHostname(tc.hostname))
			}
			res := tcpTestRun(t, httpTestTimeout, tc.addr, tcpTestModule(t, tc.yaml), opts...)
			tcpTestCheck(t, res, tc.err)
			if res.TLS == nil {
				t.Fatal("no TLS info")
			}
			if res.TLS.Verified != tc.verified || !res.TLS.EarliestCertExpiry.Equal(tc.cert.X509.NotAfter) {
				t.Errorf("verified %v expiry %v (%s)", res.TLS.Verified, res.TLS.EarliestCertExpiry, res.TLS.VerifyError)
			}
			if tc.verified && !res.TLS.LastChainExpiry.Equal(tc.cert.X509.NotAfter) {
				t.Errorf("LastChainExpiry = %v", res.TLS.LastChainExpiry)
			}
			if tc.err == "" && res.TLS.Version == "" {
				t.Error("no TLS version")
			}
		})
	}
}

func TestTCPFailures(t *testing.T) {
	silent := tcpTestServer(t, func(c net.Conn) { tcpTestDrain(c) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	tests := []struct {
		name, target, yaml, err string
		connected               bool
	}{
		{"refused", closed, "", "connection refused", false},
		{"no port", "127.0.0.1", "", "want host:port", false},
		{"denied address", "169.254.169.254:80", "", "by target_policy: ", false},
		{"denied v6 link-local", "[fe80::1]:22", "", "refused by target_policy", false},
		{"unresolvable", "name.invalid:22", "", "Error resolving address", false},
		{"source address not on this host", silent, "source_ip_address: 192.0.2.1", "bind", false},
		{"loopback source", silent, "source_ip_address: 127.0.0.1", "", true},
		{"silent server times out", silent, "query_response: [{expect: '^hello'}]", "i/o timeout", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			probeTestResolver(t, nil) // name.invalid: NXDOMAIN
			start := time.Now()
			res := tcpTestRun(t, 2*time.Second, tc.target, tcpTestModule(t, tc.yaml))
			tcpTestCheck(t, res, tc.err)
			if res.Connected != tc.connected {
				t.Errorf("Connected = %v, want %v", res.Connected, tc.connected)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("probe with a 2s timeout took %v", d)
			}
		})
	}
}

func TestTCPResultJSON(t *testing.T) {
	addr := tcpTestServer(t, tcpTestBanner)
	res := tcpTestRun(t, httpTestTimeout, addr, tcpTestModule(t, `query_response: [{expect: '^SSH-2\.0-(\S+)', labels: [{name: v, value: '${1}'}]}]`))
	tcpTestCheck(t, res, "")
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"prober", "success", "connected", "connect_seconds", "failed_due_to_regex", "expect_labels", "ip_addr"} {
		if _, ok := got[key]; !ok {
			t.Errorf("JSON has no %q: %s", key, b)
		}
	}
}
