package config

import (
	"path/filepath"
	"testing"
)

func TestHTTPGoodFixture(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "http-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Modules["http_everything"].HTTP
	if h.SourceIPAddress != "192.0.2.10" || h.Compression != "br" || h.BodySizeLimit != 10<<20 {
		t.Errorf("options not applied: %+v", h)
	}
	if h.HTTPClientConfig.FollowRedirects || h.HTTPClientConfig.EnableHTTP2 {
		t.Error("follow_redirects and enable_http2 were set to false")
	}
	if h.HTTPClientConfig.ProxyURL.URL == nil || !h.SkipResolvePhaseWithProxy {
		t.Error("proxy options not applied")
	}
	if h.FailIfBodyJSONMatchesCEL == nil || h.FailIfBodyJSONNotMatchesCEL == nil {
		t.Error("CEL expressions not compiled")
	}
	if len(h.FailIfHeaderMatchesRegexp) != 1 || !h.FailIfHeaderMatchesRegexp[0].AllowMissing {
		t.Error("header matchers not applied")
	}
}

func TestHTTPBadFixtures(t *testing.T) {
	tests := []struct{ file, err string }{
		{"http-bad-source-ip.yml", `module "m": http: source_ip_address "eth0" is not an IP address`},
		{"http-bad-status-code.yml", `module "m": http: valid_status_codes: 42 is not an HTTP status code`},
		{"http-bad-version.yml", `module "m": http: valid_http_versions: "HTTP/4" is not one of HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0`},
		{"http-bad-compression.yml", `module "m": http: compression "zstd" is not one of gzip, br, deflate, identity`},
		{"http-bad-ip-protocol.yml", `module "m": http: preferred_ip_protocol "ip5" is not valid (ip4 or ip6)`},
		{"http-bad-unknown-field.yml", `module "m": line 5: unknown field "follow_redirect" in http`},
		{"http3-bad-version-without-enable.yml", "module \"m\": http: HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false"},
		{"http3-bad-mixed-versions.yml", "module \"m\": http: HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true"},
		{"http3-bad-http2-enabled.yml", "module \"m\": http: when enable_http3 is true, enable_http2 must be set to false"},
		{"http3-bad-http2-default.yml", "module \"m\": http: when enable_http3 is true, enable_http2 must be set to false"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", tc.file))
			want := "parsing config file testdata/" + tc.file + ": " + tc.err
			if err == nil || err.Error() != want {
				t.Errorf("error mismatch\n got: %v\nwant: %s", err, want)
			}
		})
	}
}

func TestHTTP3GoodFixture(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "http3-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"h3", "h3_auth"} {
		h := c.Modules[name].HTTP
		if !h.EnableHTTP3 || h.HTTPClientConfig.EnableHTTP2 {
			t.Errorf("%s: enable_http3 %v enable_http2 %v", name, h.EnableHTTP3, h.HTTPClientConfig.EnableHTTP2)
		}
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(out, "")
	if err != nil || !back.Modules["h3"].HTTP.EnableHTTP3 {
		t.Errorf("/config output does not load back with enable_http3: %v\n%s", err, out)
	}
}
