package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unreachable are addresses of netlab's slot 0, which no lab uses: the
// usage-error tests never get as far as sending anything, and if they did,
// nothing would leave the machine.
var unreachable = []string{"--gateway", "198.51.100.1", "--target", "198.51.100.2", "--dns-server", "198.51.100.3",
	"--http-url", "http://198.51.100.4/"}

// TestRunUsageErrors: every usage error of run exits 3 (2 means "down"),
// with a message that names the problem, before any check runs.
func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte("modules:\n  tcp:\n    prober: tcp\n  isp:\n    prober: isp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "yaml"}, `--format: "yaml" is not one of text, json`},
		{[]string{"--bogus"}, "unknown long flag '--bogus'"},
		{[]string{"--timeout", "soon"}, `--timeout: "soon" is not a positive duration`},
		{[]string{"--timeout", "0s"}, `--timeout: "0s" is not a positive duration`},
		{[]string{"--speed"}, "--speed needs a URL to download"},
		{[]string{"--gateway", "router.lan"}, `gateway "router.lan" is not an IP address`},
		{[]string{"--target", "http://198.51.100.2/"}, "is not a host name or IP address"},
		{[]string{"--dns-server", "resolver.example"}, `--dns-server: "resolver.example" is not an IP address`},
		{[]string{"--dns-name", "no..dots"}, `--dns-name: "no..dots" is not a valid domain name`},
		{[]string{"--speed-url", "speed.example"}, `--speed-url: "speed.example" is not an http:// or https:// URL`},
		{[]string{"--http-url", "198.51.100.4"}, "is not an http:// or https:// URL"},
		{[]string{"--config.file", filepath.Join(dir, "missing.yml")}, "no such file or directory"},
		{[]string{"--config.file", cfg, "--module", "nope"}, `has no module "nope" (modules: isp, tcp)`},
		{[]string{"--config.file", cfg, "--module", "tcp"}, `module "tcp" uses the tcp prober; run needs an isp module`},
		{[]string{"--module", "nope"}, `--module: embedded default config has no module "nope" (modules: `},
		{[]string{"--module", "http_2xx"}, `--module: module "http_2xx" uses the http prober; run needs an isp module`},
		{[]string{"--history.limit", "5"}, "unknown long flag '--history.limit'"},
		{[]string{"--output", filepath.Join(dir, "no", "such", "dir.json")}, "no such file or directory"},
		{[]string{"--push", "pushgateway:9091"}, `--push: "pushgateway:9091" is not an http:// or https:// URL of a Pushgateway`},
		{[]string{"--push-instance", "home"}, "--push-instance needs --push"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := []string{"run"}
			for i := 0; i < len(unreachable); i += 2 {
				if tc.args[0] != unreachable[i] { // --gateway cannot be given twice
					args = append(args, unreachable[i], unreachable[i+1])
				}
			}
			args = append(args, tc.args...)
			start := time.Now()
			code, out := runBinary(t, args...)
			if code != runUsageExit || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out, runUsageExit, tc.want)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v: a usage error must stop before the checks", time.Since(start))
			}
		})
	}
}
