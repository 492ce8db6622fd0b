package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// blackboxFixtureKinds pairs each config fixture blackbox_exporter main
// keeps in its config/testdata (e39d7d4), and each load rule it enforces
// without a fixture, with isp-checker's own fixture for the same rule and
// the error it must give.
var blackboxFixtureKinds = []struct {
	blackbox, ours, err string
}{
	{"blackbox-bad.yml", "dns-bad-unknown-field.yml", `unknown field`},
	{"blackbox-bad2.yml", "http-bad-bearer-token-and-file.yml", `at most one of bearer_token & bearer_token_file must be configured`},
	{"invalid-prober.yml", "bad-unknown-prober.yml", `unknown prober "gopher"`},
	{"invalid-dns-module.yml", "bad-dns-no-query.yml", `query_name must be set for a dns module`},
	{"invalid-dns-class.yml", "dns-bad-class.yml", `query class`},
	{"invalid-dns-type.yml", "bad-dns-type.yml", `query type 'AAAAA' is not valid`},
	{"invalid-http-header-match.yml", "http-bad-header-match-no-regexp.yml", `regexp must be set for HTTP header matchers`},
	{"invalid-http-header-match-regexp.yml", "http-bad-header-match-regexp.yml", "invalid regular expression \"HIT|[\": error parsing regexp: missing closing ]: `[`"},
	{"invalid-http-body-match-regexp.yml", "bad-regexp.yml", `invalid regular expression "(unclosed"`},
	{"invalid-http-body-not-match-regexp.yml", "http-bad-body-not-match-regexp.yml", "invalid regular expression \"+x\": error parsing regexp: missing argument to repetition operator: `+`"},
	{"invalid-http-compression-mismatch.yml", "bad-compression-mismatch.yml", `invalid configuration "Accept-Encoding: deflate", "compression: gzip"`},
	{"invalid-http-compression-mismatch-special-case.yml", "http-bad-compression-mismatch-key-case.yml", `invalid configuration "accept-ENCODING: br", "compression: gzip"`},
	{"invalid-http-request-compression-reject-all-encodings.yml", "http-bad-compression-reject-all.yml", `invalid configuration "Accept-Encoding: *;q=0", "compression: deflate"`},
	{"invalid-http-body-config.yml", "bad-body-and-file.yml", `setting body and body_file both are not allowed`},
	{"invalid-icmp-ttl.yml", "icmp-bad-ttl-negative.yml", `"ttl" cannot be negative`},
	{"invalid-icmp-ttl-overflow.yml", "bad-icmp-ttl.yml", `"ttl" cannot exceed 255`},
	{"invalid-tcp-query-response-regexp.yml", "tcp-bad-query-response-regexp.yml", "invalid regular expression \"^SSH-(2\\\\.0\": error parsing regexp: missing closing ): `^SSH-(2\\.0`"},
	{"invalid-unix-query-response-regexp.yml", "unix-bad-query-response-regexp.yml", `invalid regular expression "^PONG ("`},
	{"invalid-websocket-query-response-regexp.yml", "websocket-bad-regexp.yml", `invalid regular expression "hello(["`},
	{"invalid-http-http3-http2.yml", "http3-bad-mixed-versions.yml", `module "m": http: HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true`},
	{"invalid-http-http3-http2-enabled.yml", "http3-bad-http2-enabled.yml", `module "m": http: when enable_http3 is true, enable_http2 must be set to false`},
	{"invalid-no-versions-http3-enabled.yml", "http3-bad-http2-default.yml", `module "m": http: when enable_http3 is true, enable_http2 must be set to false`},
	// Rules blackbox enforces without a fixture of its own.
	{"(expect and expect_bytes)", "tcp-bad-expect-and-expect-bytes.yml", `module "redis": tcp: expect and expect_bytes are mutually exclusive`},
	{"(reserved http_headers)", "http-bad-http-headers-reserved.yml", `setting header "Authorization" is not allowed`},
	{"(unknown TLS version)", "http-bad-tls-version.yml", `unknown TLS version: TLS14`},
	{"(basic_auth password twice)", "http-bad-basic-auth-two-passwords.yml", `at most one of basic_auth password, password_file & password_ref must be configured`},
	{"(two authentication methods)", "http-bad-two-auth-methods.yml", `at most one of basic_auth, oauth2 & authorization must be configured`},
	{"(oauth2 secret twice)", "http-bad-oauth2-two-secrets.yml", `at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured`},
	{"(proxy_url and proxy_from_environment)", "http-bad-proxy-url-and-env.yml", `if proxy_from_environment is configured, proxy_url must not be configured`},
	{"(proxy_connect_header without a proxy)", "http-bad-proxy-connect-header-alone.yml", `if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured`},
	{"(unknown field in unix)", "unix-bad-unknown-field.yml", `module "unix_ping": line 6: unknown field "preferred_ip_protocol" in unix`},
	{"(grpc metadata value not a list)", "grpc-bad-metadata-scalar.yml", "line 7: cannot unmarshal !!str `Bearer ...` into []string"},
	{"(HTTP/3.0 without enable_http3)", "http3-bad-version-without-enable.yml", `module "m": http: HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false`},
	{"(websocket header as a string)", "websocket-bad-header-string.yml", "cannot unmarshal !!str `my_header` into a header"},
	{"(websocket header as a list)", "websocket-bad-header-list.yml", "cannot unmarshal !!seq into a header"},
	{"(websocket http_config auth)", "websocket-bad-auth.yml", `at most one of basic_auth, oauth2 & authorization must be configured`},
	{"(unknown field in websocket)", "websocket-bad-unknown-field.yml", `line 6: unknown field "tls_config" in websocket`},
	{"(empty file)", "bad-empty.yml", `config is empty: it needs a modules: section`},
	{"(empty prober)", "bad-empty-prober.yml", `prober must be set`},
}

func TestBlackboxFixtureKinds(t *testing.T) {
	for _, tc := range blackboxFixtureKinds {
		t.Run(tc.blackbox, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", tc.ours))
			if err == nil {
				t.Fatalf("%s loaded; want an error containing %q", tc.ours, tc.err)
			}
			if !strings.HasPrefix(err.Error(), "parsing config file testdata/"+tc.ours+": ") || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s:\n got: %v\nwant it to name the file and contain: %s", tc.ours, err, tc.err)
			}
		})
	}
}

// blackbox-every-option.yml uses every option of blackbox main's
// CONFIGURATION.md; blackbox main loads it, and so must isp-checker, with
// each option landing where the prober reads it.
func TestBlackboxEveryOptionLoads(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "blackbox-every-option.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Modules) != 20 {
		t.Errorf("%d modules loaded, want 20", len(c.Modules))
	}
	h := c.Modules["web_everything"].HTTP
	hc := h.HTTPClientConfig
	if len(hc.HTTPHeaders.Headers) != 3 || hc.HTTPHeaders.Headers["X-Probe-File"].Files[0] != filepath.Join("testdata", "every-option-secret.txt") {
		t.Errorf("http_headers not applied, or files not made relative to the config: %+v", hc.HTTPHeaders)
	}
	if h.BodySizeLimit != 2<<20 || h.Method != "PUT" || hc.FollowRedirects || !hc.EnableHTTP2 || h.BodyFile != filepath.Join("testdata", "body.json") {
		t.Errorf("http options not applied: %+v", h)
	}
	if hc.TLSConfig.MaxVersion == 0 || hc.ProxyConnectHeader == nil || hc.Authorization.CredentialsFile == "" {
		t.Errorf("tls, proxy or authorization options not applied: %+v", hc)
	}
	if c.Modules["web_bearer_file_deprecated"].HTTP.HTTPClientConfig.FollowRedirects {
		t.Error("no_follow_redirects: true must turn follow_redirects off")
	}
	qr := c.Modules["tcp_binary"].TCP.QueryResponse
	if len(qr) != 3 || !qr[0].SendBinary || qr[1].ExpectBytes != "S" || !qr[1].StartTLS || qr[2].ExpectBytes != "\x00\x01" {
		t.Errorf("tcp binary steps: %+v", qr)
	}
	if tq := c.Modules["tcp_everything"].TCP; len(tq.QueryResponse) != 4 || len(tq.QueryResponse[0].Labels) != 2 || tq.SourceIPAddress != "::1" {
		t.Errorf("tcp options: %+v", tq)
	}
	if u := c.Modules["unix_everything"].Unix; len(u.QueryResponse) != 3 || u.QueryResponse[2].ExpectBytes != "OK" || u.TLSConfig.ServerName != "socket.example.org" {
		t.Errorf("unix options: %+v", u)
	}
	if g := c.Modules["grpc_everything"].GRPC; len(g.Metadata["x-probe"]) != 2 || g.Service != "probe.v1.Health" || !g.TLS {
		t.Errorf("grpc options: %+v", g)
	}
	if d := c.Modules["dns_everything"].DNS; !d.DNSOverTLS || d.Recursion || len(d.ValidRcodes) != 2 || len(d.ValidateAdditional.FailIfNoneMatchesRegexp) != 1 {
		t.Errorf("dns options: %+v", d)
	}
	if i := c.Modules["icmp_everything"].ICMP; !i.DontFragment || i.PayloadSize != 1200 || i.TTL != 32 {
		t.Errorf("icmp options: %+v", i)
	}
	if h3 := c.Modules["web_http3"].HTTP; !h3.EnableHTTP3 || h3.HTTPClientConfig.EnableHTTP2 {
		t.Errorf("enable_http3: %+v", h3)
	}
	ws := c.Modules["websocket_everything"].Websocket
	if len(ws.QueryResponse) != 2 || ws.HTTPClientConfig.BasicAuth == nil || ws.HTTPClientConfig.TLSConfig.ServerName != "chat.example.org" ||
		ws.Headers.Headers["X-Probe"].Files[0] != filepath.Join("testdata", "every-option-secret.txt") || ws.IPProtocolFallback {
		t.Errorf("websocket options: %+v", ws)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cret-header", "s3cret-basic", "s3cret-credentials", "s3cret-bearer", "s3cret-oauth", "s3cret-grpc", "s3cret-ws-basic", "s3cret-ws-header", "s3cret-ws-bearer"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("/config shows %q", secret)
		}
	}
}

// blackboxOwnKeys are isp-checker's options in blackbox_exporter's probers'
// sections: blackbox refuses a file that has any of them.
var blackboxOwnKeys = []string{"doh_method", "dns_over_https", "retry_truncated_over_tcp", "dnssec",
	"fail_if_not_authenticated", "edns0_udp_size", "packets", "interval", "reply_timeout", "socket",
	"protocol", "port", "fail_if_loss_ratio_above", "fail_if_rtt_mean_above", "fail_if_jitter_above",
	"target_policy"}

// /config of a config blackbox_exporter loads is a config blackbox loads:
// isp-checker's own options are left out while they hold their defaults,
// and options whose default is true keep an explicit false. Checked by
// Debian's blackbox_exporter (0.23) where it is installed.
func TestMarshalLoadsInBlackbox(t *testing.T) {
	for _, f := range []string{"blackbox-0.23.yml", "blackbox-debian.yml"} {
		t.Run(f, func(t *testing.T) {
			c, err := LoadFile(filepath.Join("testdata", f))
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range blackboxOwnKeys {
				if regexp.MustCompile(`(?m)^\s*` + k + `:`).Match(out) {
					t.Errorf("/config writes isp-checker's %s at its default:\n%s", k, out)
				}
			}
			again, err := Load(out, "")
			if err != nil {
				t.Fatalf("/config output does not load: %v", err)
			}
			if !reflect.DeepEqual(again.Modules, c.Modules) || !reflect.DeepEqual(again.TargetPolicy, c.TargetPolicy) {
				t.Errorf("/config output loads as another config:\n%s", out)
			}
			blackboxCheck(t, filepath.Join("testdata", f), nil)
			blackboxCheck(t, f, out)
		})
	}
}

// blackboxCheck runs prometheus-blackbox-exporter --config.check on file
// (or on data, when it is not nil).
func blackboxCheck(t *testing.T, file string, data []byte) {
	t.Helper()
	bin, err := exec.LookPath("prometheus-blackbox-exporter")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and no prometheus-blackbox-exporter (scripts/deps.sh installs it)")
		}
		t.Skip("no prometheus-blackbox-exporter (apt-get install prometheus-blackbox-exporter)")
	}
	if data != nil {
		file = filepath.Join(t.TempDir(), file)
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(bin, "--config.check", "--config.file="+file).CombinedOutput(); err != nil {
		t.Errorf("blackbox_exporter refuses %s: %v\n%s\n%s", file, err, out, data)
	}
}

// An own option left out at its default must be one YAML leaves out: a
// field tagged isp:"own" without omitempty would be written as its zero.
func TestOwnOptionsOmitEmpty(t *testing.T) {
	n := 0
	for _, typ := range []reflect.Type{reflect.TypeFor[DNSProbe](), reflect.TypeFor[ICMPProbe]()} {
		for f := range typ.Fields() {
			if f.Tag.Get("isp") != "own" {
				continue
			}
			n++
			if !strings.HasSuffix(f.Tag.Get("yaml"), ",omitempty") {
				t.Errorf("%s.%s is tagged isp:\"own\" without omitempty", typ.Name(), f.Name)
			}
		}
	}
	if n != len(blackboxOwnKeys)-1 { // all but target_policy
		t.Errorf("%d fields tagged isp:\"own\", want %d", n, len(blackboxOwnKeys)-1)
	}
}
