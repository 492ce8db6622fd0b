package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/diagnose/labtest"
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
		{[]string{"--format", "yaml"}, `--format "yaml" is not valid (text or json)`},
		{[]string{"--bogus"}, "unknown long flag '--bogus'"},
		{[]string{"--timeout", "soon"}, "time: invalid duration"},
		{[]string{"--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"--speed"}, "--speed needs a URL to download"},
		{[]string{"--gateway", "router.lan"}, `gateway "router.lan" is not an IP address`},
		{[]string{"--target", "http://198.51.100.2/"}, "is not a host name or IP address"},
		{[]string{"--dns-server", "resolver.example"}, `dns_servers: "resolver.example" is not an IP address`},
		{[]string{"--http-url", "198.51.100.4"}, "is not an http:// or https:// URL"},
		{[]string{"--config.file", filepath.Join(dir, "missing.yml")}, "no such file or directory"},
		{[]string{"--config.file", cfg, "--module", "nope"}, `has no module "nope" (modules: isp, tcp)`},
		{[]string{"--config.file", cfg, "--module", "tcp"}, `module "tcp" uses the tcp prober; run needs an isp module`},
		{[]string{"--module", "nope"}, `--module "nope" needs --config.file (without it, run uses its built-in defaults)`},
		{[]string{"--output", filepath.Join(dir, "no", "such", "dir.json")}, "no such file or directory"},
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

// runReport is the part of the JSON report the tests read.
type runReport struct {
	SchemaVersion int      `json:"schema_version"`
	Verdict       string   `json:"verdict"`
	Fault         string   `json:"fault"`
	ExitCode      int      `json:"exit_code"`
	Score         float64  `json:"score"`
	Evidence      []string `json:"evidence"`
	Checks        struct {
		Gateway *struct {
			Target      string `json:"target"`
			PacketsSent int    `json:"packets_sent"`
		} `json:"gateway"`
		Targets []json.RawMessage `json:"targets"`
		Trace   *struct {
			HopCount int `json:"hop_count"`
		} `json:"trace"`
		DNS  []json.RawMessage `json:"dns"`
		HTTP []json.RawMessage `json:"http"`
	} `json:"checks"`
}

// runInProcess calls the function main calls, with the text report on a
// captured standard output and the JSON report in a file.
func runInProcess(t *testing.T, args ...string) (int, string, runReport) {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "report.json")
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = stdout
	code := run(append([]string{"run", "--output", out}, args...))
	os.Stdout = saved
	stdout.Close()
	text, _ := os.ReadFile(filepath.Join(dir, "stdout"))
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep runReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, data)
	}
	return code, string(text), rep
}

// runExec runs the built binary with --format json and reads its standard
// output.
func runExec(t *testing.T, args ...string) (int, runReport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"run", "--format", "json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr is not a terminal, so it must stay quiet; got:\n%s", stderr.String())
	}
	var rep runReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout.String())
	}
	return code, rep
}

// TestRunLab is the done criterion: in the lab, `run --format json`
// with lab targets classifies the five scenarios, with exit codes 0, 1, 1,
// 2, 1, within about 20 s each — run both in-process and as the binary.
func TestRunLab(t *testing.T) {
	l := labtest.New(t)
	args := l.Args()

	t.Run("exporter", func(t *testing.T) { testExporterISP(t, l) })

	for _, sc := range []struct {
		name    string
		fault   func() func()
		want    string
		verdict string
		code    int
		text    string
	}{
		{"healthy", nil, "none", "healthy", 0, "Verdict: HEALTHY — no fault found."},
		{"gateway_loss", func() func() { return l.LANLoss(0.3) }, "lan", "degraded", 1, "already at the gateway " + l.Gateway},
		{"isp_loss", func() func() { return l.ISPLoss(0.3) }, "isp", "degraded", 1, fmt.Sprintf("loss starts at hop 3 (%s); gateway clean → ISP", l.HopAfterGateway(3))},
		{"dns_stopped", l.StopDNS, "dns", "down", 2, "Verdict: DOWN — the fault is DNS"},
		{"site_stopped", func() func() { return l.StopSite(1) }, "remote", "degraded", 1, l.URLs[1] + " fails (connect: connection refused)"},
	} {
		t.Run(sc.name, func(t *testing.T) {
			if sc.fault != nil {
				defer sc.fault()()
			}
			start := time.Now()
			code, text, rep := runInProcess(t, args...)
			took := time.Since(start)
			t.Logf("in-process: exit %d, %s/%s, score %.3f, %v: %s", code, rep.Verdict, rep.Fault, rep.Score, took.Round(100*time.Millisecond), rep.Evidence[0])
			if code != sc.code || rep.Fault != sc.want || rep.Verdict != sc.verdict || rep.ExitCode != sc.code || rep.SchemaVersion != 1 {
				t.Errorf("in-process: exit %d, %s/%s; want %d, %s/%s\n%s", code, rep.Verdict, rep.Fault, sc.code, sc.verdict, sc.want, text)
			}
			if !strings.Contains(text, sc.text) {
				t.Errorf("the text report lacks %q:\n%s", sc.text, text)
			}
			if took > 20*time.Second {
				t.Errorf("the diagnosis took %v", took)
			}
			if rep.Checks.Gateway == nil || rep.Checks.Gateway.Target != l.Gateway || len(rep.Checks.Targets) != 2 ||
				rep.Checks.Trace == nil || rep.Checks.Trace.HopCount != 4 || len(rep.Checks.DNS) != 1 || len(rep.Checks.HTTP) != 2 {
				t.Errorf("the report lacks checks: %+v", rep.Checks)
			}

			start = time.Now()
			code, rep = runExec(t, args...)
			t.Logf("binary: exit %d, %s/%s, %v", code, rep.Verdict, rep.Fault, time.Since(start).Round(100*time.Millisecond))
			if code != sc.code || rep.Fault != sc.want || rep.Verdict != sc.verdict {
				t.Errorf("binary: exit %d, %s/%s; want %d, %s/%s: %s", code, rep.Verdict, rep.Fault, sc.code, sc.verdict, sc.want, rep.Evidence)
			}
		})
	}
}

// testExporterISP scrapes the isp module of a running exporter whose
// module points at the lab.
func testExporterISP(t *testing.T, l *labtest.Lab) {
	cfg := filepath.Join(t.TempDir(), "isp.yml")
	yml := fmt.Sprintf(`modules:
  isp:
    prober: isp
    timeout: 30s
    isp:
      gateway: %s
      targets: [%s]
      dns_servers: [%s]
      dns_query_name: %s
      http_urls: [%s]
`, l.Gateway, l.Targets[1], l.Resolver, labtest.DNSName, l.URLs[0])
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, "--config.file="+cfg)
	start := time.Now()
	code, body := fetch(t, url+"/probe?module=isp&target="+l.Targets[0])
	t.Logf("/probe?module=isp took %v", time.Since(start).Round(100*time.Millisecond))
	for _, want := range []string{
		"probe_success 1",
		`probe_isp_fault{segment="none"} 1`,
		`probe_isp_fault{segment="lan"} 0`,
		`probe_isp_fault{segment="remote"} 0`,
		"probe_isp_verdict 0",
		`probe_isp_dimension_score{dimension="loss"} 1`,
		fmt.Sprintf(`probe_isp_check_success{check="ping",target="%s"} 1`, l.Targets[0]), // the target parameter is the primary target
		fmt.Sprintf(`probe_isp_check_success{check="ping",target="%s"} 1`, l.Targets[1]),
		fmt.Sprintf(`probe_isp_check_success{check="dns",target="%s"} 1`, l.Resolver),
		"probe_isp_health_score 0.9",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/probe?module=isp (%d) lacks %q:\n%s", code, want, body)
		}
	}
}
