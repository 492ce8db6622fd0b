package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnixGoodFixture(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "unix-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ping := c.Modules["unix_ping"]
	if ping.Timeout.Seconds() != 5 || len(ping.Unix.QueryResponse) != 2 || ping.Unix.QueryResponse[1].Labels[0].Name != "version" {
		t.Errorf("unix_ping: %+v", ping)
	}
	b := c.Modules["unix_bytes"].Unix
	if qr := b.QueryResponse; len(qr) != 2 || !qr[0].SendBinary || len(qr[0].Send) != 8 || qr[1].ExpectBytes != "S" || !qr[1].StartTLS {
		t.Errorf("unix_bytes steps: %+v", qr)
	}
	if b.TLSConfig.ServerName != "db.example.com" || b.TLSConfig.CAFile != filepath.Join("testdata", "ca.pem") {
		t.Errorf("unix tls_config not applied or not made relative to the config: %+v", b.TLSConfig)
	}
	if u := c.Modules["unix_tls"].Unix; !u.TLS || !u.TLSConfig.InsecureSkipVerify {
		t.Errorf("unix_tls: %+v", u)
	}
	if got := c.TargetPolicy.AllowUnixPaths; len(got) != 1 || got[0] != "/run/app/*.sock" {
		t.Errorf("allow_unix_paths = %v", got)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"unix:", "allow_unix_paths:", "send: !!binary AAAACATSFi8="} {
		if !strings.Contains(string(out), want) {
			t.Errorf("/config lacks %q:\n%s", want, out)
		}
	}
	if _, err := Load(out, ""); err != nil {
		t.Errorf("marshalled config does not load: %v\n%s", err, out)
	}
}

func TestUnixBadFixtures(t *testing.T) {
	noName := "tls over a unix socket needs tls_config.server_name (the name in the server's certificate) or tls_config.insecure_skip_verify: a socket path is not a host name to verify"
	tests := []struct{ file, err string }{
		{"unix-bad-tls-no-server-name.yml", `module "unix_tls": unix: ` + noName},
		{"unix-bad-starttls-no-server-name.yml", `module "unix_starttls": unix: ` + noName},
		{"unix-bad-unknown-field.yml", `module "unix_ping": line 6: unknown field "preferred_ip_protocol" in unix`},
		{"unix-bad-query-response-regexp.yml", "module \"unix_ping\": unix: invalid regular expression \"^PONG (\": error parsing regexp: missing closing ): `^PONG (`"},
		{"policy-bad-unix-relative.yml", `target_policy: allow_unix_paths: pattern "app/*.sock" is neither an absolute path nor an abstract socket name (@name)`},
		{"policy-bad-unix-dotdot.yml", `target_policy: allow_unix_paths: pattern "/run/app/../*" has a .. element`},
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

func TestCheckUnixPath(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "docker.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "docker.sock"), filepath.Join(dir, "app.sock")); err != nil {
		t.Fatal(err)
	}
	p := TargetPolicy{AllowUnixPaths: []string{dir + "/*.sock", "/run/app/*.sock", "@app-*"}}
	tests := []struct {
		path string
		ok   bool
	}{
		{"/run/app/a.sock", true},
		{"/run/app//a.sock", true}, // cleaned
		{"/run/app/sub/a.sock", false},
		{"/run/app/a.sock/", true},
		{"/run/app/../docker.sock", false},
		{"/var/run/docker.sock", false},
		{"run/app/a.sock", false},
		{"", false},
		{"/run/app/a\x00.sock", false},
		{"@app-1", true},
		{"@other", false},
		{dir + "/app.sock", false}, // a link to outside the patterns
		{dir + "/missing.sock", true},
	}
	for _, tc := range tests {
		if err := p.CheckUnixPath(tc.path); (err == nil) != tc.ok {
			t.Errorf("CheckUnixPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
	def := DefaultTargetPolicy()
	if err := def.CheckUnixPath("/run/app/a.sock"); err == nil {
		t.Error("the default policy must allow no unix socket")
	}
}
