package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLoadGoodConfigs(t *testing.T) {
	for _, f := range []string{"blackbox-good.yml", "blackbox-debian.yml", "policy-good.yml"} {
		t.Run(f, func(t *testing.T) {
			c, err := LoadFile(filepath.Join("testdata", f))
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			if len(c.Modules) == 0 {
				t.Fatal("no modules loaded")
			}
		})
	}
}

func TestBlackboxOptionsLand(t *testing.T) {
	c, err := LoadFile("testdata/blackbox-good.yml")
	if err != nil {
		t.Fatal(err)
	}
	h := c.Modules["http_2xx"].HTTP
	if h.IPProtocol != "ip4" || h.IPProtocolFallback || h.Compression != "gzip" || h.BodySizeLimit != 1<<20 {
		t.Errorf("http options not applied: %+v", h)
	}
	if len(h.FailIfBodyMatchesRegexp) != 1 || !h.FailIfBodyMatchesRegexp[0].MatchString("Could not connect to database!") {
		t.Error("body regexp not compiled")
	}
	if h.FailIfBodyJSONMatchesCEL == nil || h.FailIfHeaderNotMatchesRegexp[0].Header != "Access-Control-Allow-Origin" {
		t.Error("CEL or header matcher missing")
	}
	if c.Modules["http_no_follow"].HTTP.HTTPClientConfig.FollowRedirects {
		t.Error("no_follow_redirects: true must turn follow_redirects off")
	}
	if !c.Modules["http_2xx"].HTTP.HTTPClientConfig.FollowRedirects || !c.Modules["http_2xx"].HTTP.HTTPClientConfig.EnableHTTP2 {
		t.Error("follow_redirects and enable_http2 default to true")
	}
	if got := c.Modules["http_post_body_file"].HTTP.BodyFile; got != filepath.Join("testdata", "body.json") {
		t.Errorf("body_file not made relative to the config: %q", got)
	}
	if !c.Modules["tcp_connect_example"].TCP.IPProtocolFallback {
		t.Error("tcp ip_protocol_fallback defaults to true")
	}
	if ttl := c.Modules["icmp_example"].ICMP.TTL; ttl != DefaultICMPTTL {
		t.Errorf("icmp ttl default = %d", ttl)
	}
	d := c.Modules["dns_tcp_example"].DNS
	if d.Recursion || d.QueryClass != "CH" || d.TransportProtocol != "tcp" {
		t.Errorf("dns options not applied: %+v", d)
	}
	if !c.Modules["dns_udp_example"].DNS.Recursion {
		t.Error("recursion_desired defaults to true")
	}
	if qr := c.Modules["ssh_banner_extract_version"].TCP.QueryResponse[0]; qr.Labels[0].Name != "ssh_version" {
		t.Errorf("query_response labels: %+v", qr)
	}
	if c.Modules["grpc_plain"].GRPC.Service != "service1" {
		t.Error("grpc service not applied")
	}
	if c.Modules["http_2xx"].Timeout.Seconds() != 5 {
		t.Error("timeout not applied")
	}
}

// knownProbers is the list an unknown-prober error gives: every section of
// Module, in its order, so adding a prober needs no edit here.
var knownProbers = strings.Join(ProberNames(), ", ")

// The known list is Module's sections, the ones blackbox_exporter knows
// first in its order.
func TestProberNames(t *testing.T) {
	got := ProberNames()
	blackbox := []string{"http", "tcp", "icmp", "dns", "grpc", "unix"}
	if len(got) < len(blackbox) || !slices.Equal(got[:len(blackbox)], blackbox) {
		t.Errorf("ProberNames() = %v, want it to start %v", got, blackbox)
	}
	for _, name := range got {
		m := NewModule(name)
		if m.Options() == nil {
			t.Errorf("%s: NewModule gives no options section", name)
		}
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file string
		err  string
	}{
		{"bad-unknown-field.yml", `parsing config file testdata/bad-unknown-field.yml: module "http_2xx": line 5: unknown field "valid_status_code" in http`},
		{"bad-unknown-top.yml", `parsing config file testdata/bad-unknown-top.yml: line 2: unknown field "modles" in top level`},
		{"bad-unknown-prober.yml", `parsing config file testdata/bad-unknown-prober.yml: module "weird": unknown prober "gopher" (known: ` + knownProbers + `)`},
		{"bad-missing-prober.yml", `parsing config file testdata/bad-missing-prober.yml: module "empty": prober must be set`},
		{"bad-regexp.yml", "parsing config file testdata/bad-regexp.yml: module \"http_2xx\": http: invalid regular expression \"(unclosed\": error parsing regexp: missing closing ): `(unclosed`"},
		{"bad-dns-no-query.yml", `parsing config file testdata/bad-dns-no-query.yml: module "dns": dns: query_name must be set for a dns module`},
		{"bad-dns-type.yml", `parsing config file testdata/bad-dns-type.yml: module "dns": dns: query type 'AAAAA' is not valid`},
		{"bad-icmp-ttl.yml", `parsing config file testdata/bad-icmp-ttl.yml: module "icmp": icmp: "ttl" cannot exceed 255`},
		{"bad-body-and-file.yml", `parsing config file testdata/bad-body-and-file.yml: module "post": http: setting body and body_file both are not allowed`},
		{"bad-compression-mismatch.yml", `parsing config file testdata/bad-compression-mismatch.yml: module "gzip": http: invalid configuration "Accept-Encoding: deflate", "compression: gzip"`},
		{"bad-header-match.yml", `parsing config file testdata/bad-header-match.yml: module "hdr": http: header name must be set for HTTP header matchers`},
		{"bad-yaml-syntax.yml", `parsing config file testdata/bad-yaml-syntax.yml: line 1: did not find expected key`},
		{"bad-body-file-missing.yml", `parsing config file testdata/bad-body-file-missing.yml: module "post": http: body_file: stat testdata/does-not-exist.json: no such file or directory`},
		{"bad-icmp-packets-timeout.yml", `parsing config file testdata/bad-icmp-packets-timeout.yml: module "icmp_loss": icmp: only 5 of 100 packets at interval 1s fit in the timeout 5s (raise the timeout, or lower packets or interval)`},
		{"bad-policy-network.yml", `parsing config file testdata/bad-policy-network.yml: target_policy: invalid network "10.0.0.0/33": want an address or a CIDR prefix`},
		{"bad-cel.yml", `parsing config file testdata/bad-cel.yml: module "cel": http: could not compile CEL expression "body.foo ==": ERROR: <input>:1:12: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
 | body.foo ==
 | ...........^`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatal("expected an error")
			}
			if err.Error() != tc.err {
				t.Errorf("error mismatch\n got: %s\nwant: %s", err, tc.err)
			}
		})
	}
}

func TestEmbeddedDefaultLoads(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"http_2xx", "tcp_connect", "icmp"} {
		if _, ok := c.Modules[m]; !ok {
			t.Errorf("default config lacks module %s", m)
		}
	}
	// Every module that resolves a target prefers IPv4, so the default
	// config probes the same family whichever module a target is given.
	for name, m := range c.Modules {
		ip := reflect.ValueOf(m.Options()).Elem().FieldByName("IPOptions")
		if !ip.IsValid() {
			continue
		}
		if got := ip.Interface().(IPOptions).IPProtocol; got != "ip4" {
			t.Errorf("default module %s has preferred_ip_protocol %q, want ip4 as every other", name, got)
		}
	}
}

func TestEmptyAndMultiDocument(t *testing.T) {
	if _, err := Load([]byte(""), ""); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty config: %v", err)
	}
	if _, err := Load([]byte("modules: {}\n---\nmodules: {}\n"), ""); err == nil {
		t.Error("two documents should fail")
	}
	c, err := Load([]byte("modules:\n"), "")
	if err != nil || c.Modules == nil || len(c.TargetPolicy.DenyNetworks) == 0 {
		t.Errorf("null modules: %v %+v", err, c)
	}
}

func TestSecretsHidden(t *testing.T) {
	c, err := LoadFile("testdata/blackbox-good.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"mysecret", "s3cret-token", "s3cret-credentials", "s3cret-oauth"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("secret %q shown in marshalled config", secret)
		}
	}
	if !strings.Contains(string(out), "<secret>") {
		t.Error("secrets should be shown as <secret>")
	}
	// The marshalled config must load again (modulo hidden secrets).
	if _, err := Load(out, ""); err != nil {
		t.Errorf("marshalled config does not load: %v\n%s", err, out)
	}
}

// reloadGauges reads the four reload gauges from reg by name: isp-checker's
// and blackbox_exporter's, so community alerts such as
// BlackboxConfigurationReloadFailure work unchanged.
func reloadGauges(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	for _, prefix := range []string{"isp_checker", "blackbox_exporter"} {
		for _, name := range []string{"_config_last_reload_successful", "_config_last_reload_success_timestamp_seconds"} {
			if _, ok := got[prefix+name]; !ok {
				t.Fatalf("%s%s is not registered", prefix, name)
			}
		}
	}
	return got
}

func TestHolderKeepsOldConfigOnBadReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("modules:\n  a:\n    prober: tcp\n")
	reg := prometheus.NewRegistry()
	h := NewHolder(path, reg)
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	g := reloadGauges(t, reg)
	for _, prefix := range []string{"isp_checker", "blackbox_exporter"} {
		if g[prefix+"_config_last_reload_successful"] != 1 || g[prefix+"_config_last_reload_success_timestamp_seconds"] == 0 {
			t.Fatalf("%s reload gauges not set on success: %v", prefix, g)
		}
	}
	stamp := g["isp_checker_config_last_reload_success_timestamp_seconds"]
	if g["blackbox_exporter_config_last_reload_success_timestamp_seconds"] != stamp {
		t.Errorf("the two timestamps differ: %v", g)
	}
	write("modules:\n  a:\n    prober: tcp\n    bogus: 1\n")
	if err := h.Reload(); err == nil {
		t.Fatal("bad config reloaded without error")
	}
	if _, ok := h.Get().Modules["a"]; !ok {
		t.Fatal("old config lost after a failed reload")
	}
	g = reloadGauges(t, reg)
	for _, prefix := range []string{"isp_checker", "blackbox_exporter"} {
		if g[prefix+"_config_last_reload_successful"] != 0 || g[prefix+"_config_last_reload_success_timestamp_seconds"] != stamp {
			t.Errorf("failed reload must set %s_config_last_reload_successful to 0 and keep the timestamp: %v", prefix, g)
		}
	}
	write("modules:\n  b:\n    prober: icmp\n")
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	g = reloadGauges(t, reg)
	if _, ok := h.Get().Modules["b"]; !ok || g["isp_checker_config_last_reload_successful"] != 1 || g["blackbox_exporter_config_last_reload_successful"] != 1 {
		t.Errorf("good reload after a bad one did not take: %v", g)
	}
}

func TestSecretHeadersHidden(t *testing.T) {
	c, err := Load([]byte(`modules:
  api:
    prober: http
    http:
      headers:
        Authorization: Bearer s3cr3t-value
        X-API-Key: k3y-value
        Cookie: session=c00kie
        X-Custom-Pass: p4ss-value
        Accept-Language: en-GB
      body: '{"password": "b0dy-value"}'
`), "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cr3t-value", "k3y-value", "c00kie", "p4ss-value", "b0dy-value"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("header secret %q shown:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "en-GB") {
		t.Errorf("ordinary header hidden:\n%s", out)
	}
	if c.Modules["api"].HTTP.Headers["Authorization"] != "Bearer s3cr3t-value" {
		t.Error("marshalling changed the module itself")
	}
}

// TestBadFixturesNameTheirModule: every error inside a module names the
// module, whether the decoder found it (an unknown field, with its line),
// a section's own check (a bad regexp, label name, isp target) or the
// checks after decoding; only errors outside every module do not.
func TestBadFixturesNameTheirModule(t *testing.T) {
	files, err := filepath.Glob("testdata/*bad*.yml")
	if err != nil || len(files) < 40 {
		t.Fatalf("%d bad fixtures: %v", len(files), err)
	}
	outside := map[string]bool{"bad-empty.yml": true, "bad-policy-network.yml": true, "bad-unknown-top.yml": true,
		"bad-yaml-syntax.yml": true, "policy-bad-unix-dotdot.yml": true, "policy-bad-unix-relative.yml": true}
	for _, f := range files {
		_, err := LoadFile(f)
		if err == nil {
			t.Errorf("%s loads", f)
			continue
		}
		if named := strings.Contains(err.Error(), `: module "`); named == outside[filepath.Base(f)] {
			t.Errorf("%s: %v (names a module: %v)", f, err, named)
		}
	}
}
