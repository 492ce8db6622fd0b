package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/schematest"
	"github.com/isp-checker/isp-checker/internal/testserver"
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

// TestRunInterrupted: Ctrl-C during run is never healthy. The checks under
// way stop, and the report says the diagnosis was interrupted: verdict
// unknown (exit 4), "interrupted" first, "interrupted": true in the JSON
// (which still matches the schema), and nothing pushed.
func TestRunInterrupted(t *testing.T) {
	_, zone := testserver.Resolver(t, map[string][]netip.Addr{"www.example.test": {netip.MustParseAddr("127.0.0.1")}})
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(site.Close)
	var pushed atomic.Int64
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { pushed.Add(1) }))
	t.Cleanup(gw.Close)
	out := filepath.Join(t.TempDir(), "out.json")
	cmd := exec.Command(binary, "run", "--format", "json", "--output", out, "--gateway", "none", "--target", "127.0.0.1",
		"--dns-server", zone.Addr(), "--dns-name", "www.example.test", "--http-url", site.URL+"/ok", "--push", gw.URL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The pings (30 at 1 s by default) are still running after 1.5 s.
	time.Sleep(1500 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 {
		t.Errorf("exit %v, want 4 (unknown); stderr %s", err, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		runReport
		Interrupted bool `json:"interrupted"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != "unknown" || rep.ExitCode != 4 || rep.Score != nil || !rep.Interrupted || !strings.HasPrefix(first(rep.Evidence), "interrupted") {
		t.Errorf("interrupted run: verdict %s, exit_code %d, score %v, interrupted %v, evidence %q; want unknown, 4, none, true, \"interrupted…\" first",
			rep.Verdict, rep.ExitCode, rep.Score, rep.Interrupted, rep.Evidence)
	}
	var doc any
	_ = json.Unmarshal(data, &doc)
	for _, e := range schematest.Validate(reportSchema(t), doc) {
		t.Errorf("the report does not match docs/report.schema.json: %s", e)
	}
	if n := pushed.Load(); n != 0 {
		t.Errorf("an interrupted run pushed %d times; want nothing pushed", n)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr does not say interrupted: %q", stderr.String())
	}
}
