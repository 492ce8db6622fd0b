package config

import (
	"path/filepath"
	"testing"
)

func TestTCPGoodFixture(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "tcp-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Modules["smtp_starttls"].TCP
	if s.SourceIPAddress != "192.0.2.10" || s.IPProtocol != "ip4" || s.IPProtocolFallback {
		t.Errorf("options not applied: %+v", s)
	}
	if len(s.QueryResponse) != 5 || !s.QueryResponse[3].StartTLS || s.QueryResponse[0].Labels[1].Name != "banner" {
		t.Errorf("query_response not applied: %+v", s.QueryResponse)
	}
	if s.TLSConfig.ServerName != "mail.example.com" {
		t.Error("tls_config not applied")
	}
	if tc := c.Modules["tls_connect"].TCP; !tc.TLS || !tc.TLSConfig.InsecureSkipVerify {
		t.Errorf("tls options not applied: %+v", tc)
	}
}

func TestTCPBadFixtures(t *testing.T) {
	tests := []struct{ file, err string }{
		{"tcp-bad-label-name.yml", `query_response label name "ssh-version" is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)`},
		{"tcp-bad-label-twice.yml", `query_response label "version" is defined twice`},
		{"tcp-bad-labels-without-expect.yml", `query_response labels need an expect regexp`},
		{"tcp-bad-source-ip.yml", `source_ip_address "300.1.1.1" is not an IP address`},
		{"tcp-bad-unknown-field.yml", `line 6: unknown field "expects" in query_response`},
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
