package config

import (
	"path/filepath"
	"strings"
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
	checkPostgresSteps(t, c.Modules["postgres_ssl"].TCP.QueryResponse)
	if c.Modules["smtp_starttls"].TCP.QueryResponse[0].SendBinary {
		t.Error("a plain send is text")
	}

	// /config shows a binary send as !!binary, and that loads back the same.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "send: !!binary AAAACATSFi8=") {
		t.Errorf("binary send not marshalled as !!binary:\n%s", out)
	}
	again, err := Load(out, "")
	if err != nil {
		t.Fatalf("marshalled config does not load: %v\n%s", err, out)
	}
	checkPostgresSteps(t, again.Modules["postgres_ssl"].TCP.QueryResponse)
}

func checkPostgresSteps(t *testing.T, qr []QueryResponse) {
	t.Helper()
	if len(qr) != 3 || qr[0].Send != "\x00\x00\x00\x08\x04\xd2\x16\x2f" || !qr[0].SendBinary {
		t.Fatalf("binary send: %+v", qr)
	}
	if qr[1].ExpectBytes != "S" || !qr[1].StartTLS || qr[2].ExpectBytes != "\x00\x01" {
		t.Errorf("expect_bytes steps: %+v", qr[1:])
	}
}

// Labels on a step without expect load and are ignored, as in blackbox.
func TestTCPLabelsWithoutExpectLoad(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "tcp-labels-without-expect.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if qr := c.Modules["ssh"].TCP.QueryResponse; len(qr) != 1 || qr[0].Labels[0].Name != "version" {
		t.Errorf("query_response: %+v", qr)
	}
}

func TestTCPBadFixtures(t *testing.T) {
	tests := []struct{ file, err string }{
		{"tcp-bad-label-name.yml", `module "ssh": tcp: query_response label name "ssh-version" is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)`},
		{"tcp-bad-label-twice.yml", `module "ssh": tcp: query_response label "version" is defined twice`},
		{"tcp-bad-expect-and-expect-bytes.yml", `module "redis": tcp: expect and expect_bytes are mutually exclusive`},
		{"tcp-bad-source-ip.yml", `module "m": tcp: source_ip_address "300.1.1.1" is not an IP address`},
		{"tcp-bad-unknown-field.yml", `module "m": line 6: unknown field "expects" in query_response`},
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
