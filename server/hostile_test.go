package server

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
)

// hostileConfig has one module per prober the hostile requests reach (and
// testModules); the policy also denies *.internal. No request below resolves a name or sends
// a packet anywhere but loopback: every probe that runs is refused first.
const hostileConfig = `
modules:
  http_2xx: {prober: http, timeout: 3s}
  tcp: {prober: tcp, timeout: 2s}
  icmp: {prober: icmp, timeout: 2s}
  dns: {prober: dns, timeout: 2s, dns: {query_name: example.com}}
  grpc: {prober: grpc, timeout: 2s}
target_policy:
  deny_hosts: ["*.internal"]
`

func newHostileServer(t *testing.T, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	holder := config.NewHolder(path, reg)
	holder.Set(withTestModules(t, cfg))
	s := httptest.NewServer(NewMux(Options{
		Probe:    ProbeOptions{Config: holder, Probers: testProbers(), Metrics: NewSelfMetrics(reg), History: NewHistory(100), TimeoutOffset: 500 * time.Millisecond},
		Gatherer: reg,
		Reload:   holder.Reload,
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// TestProbeHostileRequests: every request an attacker might send /probe
// gets a clear answer: 400 with the reason for a request that cannot be a
// probe, or a failed probe (debug output) that says why, with nothing sent.
func TestProbeHostileRequests(t *testing.T) {
	base := newHostileServer(t, hostileConfig)
	long := strings.Repeat("a", 5000)
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	hdr := func(v string) http.Header { return http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {v}} }
	tests := []struct {
		name   string
		query  string
		header http.Header
		code   int
		want   string
	}{
		// Requests that cannot be a probe: 400.
		{"unknown module", q("module", "nope", "target", "127.0.0.1"), nil, 400, `Unknown module "nope"`},
		{"huge module name", q("module", long, "target", "127.0.0.1"), nil, 400, `Unknown module "` + long[:100] + `…"`},
		{"NUL in module", q("module", "a\x00b", "target", "127.0.0.1"), nil, 400, `Unknown module "a\x00b"`},
		{"missing target", q("module", "block"), nil, 400, "Target parameter is missing"},
		{"empty target", q("module", "block", "target", ""), nil, 400, "Target parameter is missing"},
		{"huge target", q("module", "block", "target", long), nil, 400, "Target parameter is 5000 bytes long; the limit is 4096"},
		{"CR LF in hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", "a\r\nX-Evil: 1"), nil, 400, `Invalid hostname parameter "a\r\nX-Evil: 1"`},
		{"LF in hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", "a\nb"), nil, 400, `Invalid hostname parameter "a\nb"`},
		{"NUL in hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", "a\x00b"), nil, 400, `Invalid hostname parameter "a\x00b"`},
		{"space in hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", "a b"), nil, 400, `Invalid hostname parameter "a b"`},
		{"tab in hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", "a\tb"), nil, 400, `Invalid hostname parameter "a\tb"`},
		{"path in hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", "a/b"), nil, 400, `Invalid hostname parameter "a/b"`},
		{"userinfo in hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", "u@a"), nil, 400, `Invalid hostname parameter "u@a"`},
		{"huge hostname", q("module", "http_2xx", "target", "127.0.0.1", "hostname", long[:300]), nil, 400, `Invalid hostname parameter "` + long[:100] + `…"`},
		{"word timeout", q("module", "block", "target", "127.0.0.1"), hdr("soon"), 400, `invalid X-Prometheus-Scrape-Timeout-Seconds header "soon"`},
		{"NaN timeout", q("module", "block", "target", "127.0.0.1"), hdr("NaN"), 400, `invalid X-Prometheus-Scrape-Timeout-Seconds header "NaN"`},
		{"negative timeout", q("module", "block", "target", "127.0.0.1"), hdr("-3"), 400, `invalid X-Prometheus-Scrape-Timeout-Seconds header "-3"`},
		{"zero timeout", q("module", "block", "target", "127.0.0.1"), hdr("0"), 400, `invalid X-Prometheus-Scrape-Timeout-Seconds header "0"`},
		{"infinite timeout", q("module", "block", "target", "127.0.0.1"), hdr("+Inf"), 400, `invalid X-Prometheus-Scrape-Timeout-Seconds header "+Inf"`},
		{"huge timeout", q("module", "block", "target", "127.0.0.1"), hdr("1e7"), 400, `invalid X-Prometheus-Scrape-Timeout-Seconds header "1e7"`},
		{"hex timeout", q("module", "block", "target", "127.0.0.1"), hdr("0x10"), 400, `invalid X-Prometheus-Scrape-Timeout-Seconds header "0x10"`},

		// Probes that run and fail, saying why, with nothing sent.
		{"file scheme", q("module", "http_2xx", "target", "file:///etc/passwd"), nil, 200, `Unsupported scheme "file" in target`},
		{"gopher scheme", q("module", "http_2xx", "target", "gopher://127.0.0.1:70/"), nil, 200, `Unsupported scheme "gopher" in target`},
		{"ftp scheme", q("module", "http_2xx", "target", "ftp://127.0.0.1/"), nil, 200, `Unsupported scheme "ftp" in target`},
		{"unix socket", q("module", "http_2xx", "target", "unix:/var/run/docker.sock"), nil, 200, `Unsupported scheme "unix" in target`},
		{"javascript", q("module", "http_2xx", "target", "javascript:alert(1)"), nil, 200, `Unsupported scheme "javascript" in target`},
		{"tcp file scheme", q("module", "tcp", "target", "file:///etc/passwd"), nil, 200, `Unsupported scheme "file" in target`},
		{"metadata", q("module", "http_2xx", "target", "http://169.254.169.254/latest/meta-data/"), nil, 200, "Target refused by target_policy: address 169.254.169.254 is in denied network 169.254.0.0/16"},
		{"mapped metadata", q("module", "http_2xx", "target", "http://[::ffff:169.254.169.254]/"), nil, 200, "Target refused by target_policy: address 169.254.169.254 is in denied network 169.254.0.0/16"},
		{"EC2 v6 metadata", q("module", "http_2xx", "target", "http://[fd00:ec2::254]/"), nil, 200, "Target refused by target_policy: address fd00:ec2::254 is in denied network fd00:ec2::254/128"},
		{"zoned EC2 v6 metadata", q("module", "http_2xx", "target", "http://[fd00:ec2::254%25x]/"), nil, 200, "Target refused by target_policy: address fd00:ec2::254 is in denied network fd00:ec2::254/128"},
		{"zoned link-local", q("module", "http_2xx", "target", "http://[fe80::1%25lo]/"), nil, 200, "Target refused by target_policy: address fe80::1 is in denied network fe80::/10"},
		{"IDNA circled", q("module", "http_2xx", "target", "http://metadata.ⓘⓝⓣⓔⓡⓝⓐⓛ/"), nil, 200, `Target refused by target_policy: host metadata.internal matches denied host pattern "*.internal"`},
		{"IDNA ideographic dot", q("module", "http_2xx", "target", "http://metadata。internal/"), nil, 200, `Target refused by target_policy: host metadata.internal matches denied host pattern "*.internal"`},
		{"IDNA fullwidth", q("module", "http_2xx", "target", "http://metadata.ＩＮＴＥＲＮＡＬ/"), nil, 200, `Target refused by target_policy: host metadata.internal matches denied host pattern "*.internal"`},
		{"trailing dot", q("module", "http_2xx", "target", "http://METADATA.internal./"), nil, 200, `Target refused by target_policy: host metadata.internal matches denied host pattern "*.internal"`},
		{"fullwidth digits", q("module", "http_2xx", "target", "http://１６９.２５４.１６９.２５４/"), nil, 200, "Target refused by target_policy: address 169.254.169.254 is in denied network"},
		{"bad IDNA", q("module", "http_2xx", "target", "http://a\u200db.example/"), nil, 200, "invalid target host"},
		{"space in host", q("module", "http_2xx", "target", "http://a b/"), nil, 200, "Could not parse target URL"},
		{"CR LF in target", q("module", "http_2xx", "target", "http://x\r\nHost: y/"), nil, 200, "Could not parse target URL: net/url: invalid control character in URL"},
		{"unclosed bracket", q("module", "http_2xx", "target", "http://[::1/"), nil, 200, "Could not parse target URL: missing ']' in host"},
		{"bad port", q("module", "http_2xx", "target", "http://127.0.0.1:99999/"), nil, 200, "invalid port"},
		{"tcp metadata", q("module", "tcp", "target", "169.254.169.254:80"), nil, 200, "Target refused by target_policy: address 169.254.169.254"},
		{"tcp zoned", q("module", "tcp", "target", "[fe80::1%lo]:22"), nil, 200, "Target refused by target_policy: address fe80::1 is in denied network"},
		{"tcp no port", q("module", "tcp", "target", "127.0.0.1"), nil, 200, "Error splitting target address and port"},
		{"icmp metadata", q("module", "icmp", "target", "169.254.169.254"), nil, 200, "by target_policy: address 169.254.169.254"},
		{"icmp zoned", q("module", "icmp", "target", "fe80::1%lo"), nil, 200, "by target_policy: address fe80::1"},
		{"icmp IDNA", q("module", "icmp", "target", "metadata.ⓘⓝⓣⓔⓡⓝⓐⓛ"), nil, 200, `by target_policy: host metadata.internal matches denied host pattern`},
		{"dns metadata", q("module", "dns", "target", "169.254.169.254"), nil, 200, "by target_policy: address 169.254.169.254"},
		{"grpc metadata", q("module", "grpc", "target", "169.254.169.254:50051"), nil, 200, "by target_policy: address 169.254.169.254"},
	}
	if len(tests) < 40 {
		t.Fatalf("only %d hostile requests", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			query, want := tc.query, tc.want
			if tc.code == 200 {
				// The reason is read from the debug log, which is logfmt.
				query += "&debug=true"
				want = strings.ReplaceAll(want, `"`, `\"`)
			}
			code, body := get(t, base+"/probe?"+query, tc.header)
			if code != tc.code || !strings.Contains(body, want) {
				t.Fatalf("got %d:\n%.3000s\nwant %d containing %q", code, body, tc.code, want)
			}
			if tc.code == 200 && !strings.Contains(body, "probe_success 0") {
				t.Errorf("probe did not fail:\n%.3000s", body)
			}
			if n := strings.Count(body, "denied by target_policy: denied by target_policy"); n > 0 {
				t.Errorf("denial doubled:\n%s", body)
			}
		})
	}
}

// A URL's password never shows: not in the debug output, /logs, or the
// landing page.
func TestTargetCredentialsRedacted(t *testing.T) {
	base := newHostileServer(t, hostileConfig)
	target := "http://probe:hunter2@169.254.169.254/"
	_, body := get(t, base+"/probe?module=http_2xx&debug=true&target="+url.QueryEscape(target), nil)
	_, page := get(t, base+"/", nil)
	_, logs := get(t, base+"/logs?id=0", nil)
	for name, out := range map[string]string{"debug": body, "landing page": page, "/logs": logs} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s shows the password:\n%s", name, out)
		}
		if !strings.Contains(out, "probe:xxxxx@169.254.169.254") {
			t.Errorf("%s does not show the redacted target:\n%.2000s", name, out)
		}
	}
}

// The per-probe log keeps its head and its tail: wrong-ID DNS datagrams
// fill it, and the final error line must still be there. The server sends
// them until the probe has ended (at least 2,000): on a busy machine the
// probe's socket drops many of a burst, and the log must fill all the same.
func TestProbeLogKeepsFinalError(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	stop := make(chan struct{})
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			junk := append([]byte(nil), buf[:n]...)
			junk[0] ^= 0xff // wrong ID
			junk[2] |= 0x80 // a response
			for i := 0; ; i++ {
				if i >= 2000 {
					select {
					case <-stop:
						return
					default:
					}
				}
				if _, err := pc.WriteTo(junk, from); err != nil {
					return
				}
			}
		}
	}()
	base := newHostileServer(t, "modules:\n  dns: {prober: dns, timeout: 2s, dns: {query_name: example.com, preferred_ip_protocol: ip4}}\n")
	_, body := get(t, base+"/probe?module=dns&debug=true&target="+pc.LocalAddr().String(), nil)
	close(stop)
	logs, _, _ := strings.Cut(body, "Metrics that would have been returned:")
	for _, want := range []string{"beginning probe", "bytes of log dropped here", "ignoring a datagram", `msg="probe failed"`, "datagrams with a wrong ID or too short ignored"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%.1000s\n…\n%s", want, logs, logs[max(0, len(logs)-1500):])
		}
	}
	if len(logs) > maxProbeLog+200 {
		t.Errorf("logs are %d bytes, over the cap of %d", len(logs), maxProbeLog)
	}
}
