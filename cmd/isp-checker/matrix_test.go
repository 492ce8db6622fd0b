package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/diagnose"
	"github.com/isp-checker/isp-checker/internal/labtest"
	"github.com/isp-checker/isp-checker/internal/schematest"
)

// The scenario matrix: every common fault, built in the lab from
// labtest's named steps, with the fault, verdict and exit code that
// `isp-checker run` must give for it. One row a scenario; rows run one
// after another in one lab, each undoing its fault.
//
// Tolerances come from what the lab injects, not from timing: 50 % loss
// over 20 echo requests stays above the 5 % threshold with probability
// 1 − 2·10⁻⁵; a relay delay of 300 ms each way makes every DNS answer take
// at least 600 ms (the relay never delivers early) against a 500 ms
// threshold; a lost first query costs the whole 1.5 s attempt; uniform
// jitter of up to 120 ms per direction over 50 echo requests gives a mean
// jitter below 30 ms with probability ~10⁻⁴ and a mean RTT above 150 ms
// with ~3·10⁻⁴ (simulated); a 400 ms tbf queue fills under a cubic
// download. Every run has --timeout 20s: a row that does not fit cannot
// pass.

// matrixModule is the isp module of the matrix: the lab's checks with
// short counts and timeouts.
var matrixModule = template.Must(template.New("m").Parse(`modules:
{{- range .Modules}}
  {{.Name}}:
    prober: isp
    timeout: 20s
    isp:
      gateway: {{$.Lab.Gateway}}
      targets: [{{index $.Lab.Targets 0}}, {{index $.Lab.Targets 1}}]
      dns_servers: [{{index $.Lab.Resolvers 0}}, {{index $.Lab.Resolvers 1}}]
      dns_query_name: {{$.DNSName}}
      dns_attempts: 2
      dns_timeout: 1500ms
      http_urls: [{{index $.Lab.URLs 0}}, {{index $.Lab.URLs 1}}]
      http_timeout: 3s
      packets: {{.Packets}}
      interval: {{.Interval}}
      speed_duration: 3s
{{- if .Latency}}
      thresholds: {latency: {{.Latency}}}
{{- end}}
{{- end}}
`))

// matrixRow is one scenario.
type matrixRow struct {
	name string
	// step builds the fault and returns its undo (nil: healthy).
	step func() func()
	// args are extra flags of `isp-checker run`.
	args []string
	// unprivileged runs the binary as nobody, without capabilities.
	unprivileged bool
	fault        string
	verdict      string
	code         int
	// why matches the first reason (regexp).
	why string
	// exporter: the isp module of `isp-checker serve` must agree.
	exporter bool
	// zeroExit: run again with --no-verdict-exit-code, which must exit 0
	// with the same verdict.
	zeroExit bool
}

func TestRunMatrix(t *testing.T) {
	l := labtest.New(t)
	dir := sharedDir(t)
	cfg := filepath.Join(dir, "matrix.yml")
	var b bytes.Buffer
	err := matrixModule.Execute(&b, map[string]any{"Lab": l, "DNSName": labtest.DNSName, "Modules": []map[string]any{
		{"Name": "isp", "Packets": 20, "Interval": "50ms"},
		// A relay's jitter is extra delay (up to 2·J a round trip, more as
		// it never reorders), so this row judges latency from 500 ms on:
		// the row is about jitter.
		{"Name": "isp_jitter", "Packets": 50, "Interval": "100ms", "Latency": "500ms"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	q := regexp.QuoteMeta
	urls := func(us ...string) []string {
		var args []string
		for _, u := range us {
			args = append(args, "--http-url", u)
		}
		return args
	}
	rows := []matrixRow{
		{name: "healthy", fault: "none", verdict: "healthy", code: 0, why: "^every check passed: gateway " + q(l.Gateway) + " clean", exporter: true},
		{name: "loss at the gateway", step: func() func() { return l.LANLoss(0.5) },
			fault: "lan", verdict: "degraded", code: 1, why: "loss already at the gateway " + q(l.Gateway)},
		{name: "loss beyond hop 2", step: func() func() { return l.ISPLoss(0.5) },
			// hop 3 is where it starts; should the trace have missed isp2
			// (all 5 probes lost: 3 %), the destination is next.
			fault: "isp", verdict: "degraded", code: 1, why: "loss starts at hop (3 \\(" + q(l.HopAfterGateway(3)) + "\\)|4 \\(" + q(l.Targets[0]) + "\\)); gateway clean → ISP"},
		{name: "ISP forwarding dead", step: l.ISPForwardingDead,
			fault: "isp", verdict: "down", code: 2, why: "none of the 2 internet targets answers; the trace to " + q(l.Targets[0]) + " stops after hop 2"},
		{name: "gateway dead", step: l.GatewayDead,
			fault: "lan", verdict: "down", code: 2, why: "^no reply from the gateway " + q(l.Gateway)},
		{name: "link down", step: l.LinkDown,
			fault: "lan", verdict: "down", code: 2, why: "^nothing can leave this host: the gateway " + q(l.Gateway) + " and every internet target are unreachable", exporter: true, zeroExit: true},
		{name: "no default route", step: l.NoRoute,
			fault: "lan", verdict: "down", code: 2, why: "^the gateway " + q(l.Gateway) + " answers, but this host has no route to the internet", exporter: true},
		{name: "unreachable default route", step: l.UnreachableRoute,
			fault: "lan", verdict: "down", code: 2, why: "^the gateway " + q(l.Gateway) + " answers, but this host has no route to the internet .*an unreachable, prohibit or blackhole route", exporter: true},
		{name: "one target behind an unreachable route", step: func() func() { return l.UnreachableTarget(1) },
			fault: "lan", verdict: "degraded", code: 1, why: "^this host has no route to " + q(l.Targets[1]) + " while the other target answers"},
		{name: "router answers host unreachable", step: l.ISPHostUnreachable,
			fault: "isp", verdict: "down", code: 2, why: "none of the 2 internet targets answers"},
		{name: "no ICMP permission", unprivileged: true,
			fault: "unknown", verdict: "unknown", code: 4, why: "^cannot ping: no permission — run as root, widen net.ipv4.ping_group_range or grant CAP_NET_RAW", exporter: true},
		{name: "gateway filtering ping", step: l.GatewayFiltersPing,
			fault: "none", verdict: "healthy", code: 0, why: "^no fault found: the gateway " + q(l.Gateway) + " does not answer ping \\(filtered\\)"},
		{name: "DNS stopped", step: func() func() { return l.StopDNS() },
			fault: "dns", verdict: "down", code: 2, why: "^none of the 2 resolvers resolves " + q(labtest.DNSName)},
		{name: "DNS refusing", step: l.RefuseDNS,
			fault: "dns", verdict: "down", code: 2, why: "^none of the 2 resolvers resolves .*rcode REFUSED"},
		{name: "one of two resolvers stopped", step: func() func() { return l.StopDNS(1) },
			fault: "dns", verdict: "degraded", code: 1, why: "^1 of 2 resolvers fail \\(" + q(l.Resolvers[1]) + ": .*\\) while " + q(l.Resolvers[0]) + " answers"},
		{name: "resolver answers every name", step: func() func() { return l.AnswerEveryName(0) },
			fault: "dns", verdict: "degraded", code: 1, why: "^" + q(l.Resolvers[0]) + " answers a name that cannot exist \\(isp-checker-[a-z0-9]+\\.invalid → " + q(l.Targets[0]) + "\\): it rewrites NXDOMAIN", exporter: true},
		{name: "DNS slow", step: func() func() { return l.SlowDNS(300 * time.Millisecond) },
			fault: "dns", verdict: "degraded", code: 1, why: "^resolvers answer slowly: [0-9.]+ (ms|s) \\(median of 2; threshold 500 ms\\)"},
		{name: "DNS loses the first query", step: l.LoseFirstQuery,
			fault: "dns", verdict: "degraded", code: 1, why: "^resolvers answer slowly: .*" + q(l.Resolvers[0]) + " answered only on attempt 2, after a lost query"},
		{name: "one site refused", step: func() func() { return l.StopSite(1) },
			fault: "remote", verdict: "degraded", code: 1, why: "^" + q(l.URLs[1]) + " fails \\(connect: connection refused\\); " + q(l.URLs[0]) + " works"},
		{name: "every site refused", step: func() func() { u1, u2 := l.StopSite(0), l.StopSite(1); return func() { u1(); u2() } },
			fault: "isp", verdict: "down", code: 2, why: "^none of the 2 web sites answers .* something on the path blocks web traffic"},
		{name: "wrong TLS certificate", args: urls(l.URLs[1], l.TLSURL),
			fault: "remote", verdict: "degraded", code: 1, why: "^" + q(l.TLSURL) + " fails \\(.*certificate.*\\); " + q(l.URLs[1]) + " works"},
		{name: "captive portal", step: l.CaptivePortal,
			fault: "lan", verdict: "down", code: 2, why: "^a captive portal: 2 web sites redirected to " + q(l.PortalURL)},
		{name: "path-MTU black hole", step: func() func() { return l.PMTUBlackHole(1400) }, args: urls(l.URLs[0], l.URLs[1], l.LargeURL),
			fault: "isp", verdict: "degraded", code: 1, why: "^path-MTU black hole toward " + q(l.Targets[0]) + ": packets above 1400 bytes vanish .*; it explains why " + q(l.LargeURL) + " fails", exporter: true},
		{name: "high jitter beyond the router", step: func() func() { return l.ISPJitter(150 * time.Millisecond) }, args: []string{"--module", "isp_jitter"},
			fault: "isp", verdict: "degraded", code: 1, why: "^[0-9.]+ ms jitter beyond the gateway \\(median of 2 of 2 targets; threshold 30 ms\\)"},
		{name: "bufferbloat", step: func() func() { return l.Bufferbloat(10e6, 500*time.Millisecond) }, args: []string{"--speed", "--speed-url", l.SpeedURL},
			fault: "isp", verdict: "degraded", code: 1, why: "^latency rises by [0-9.]+ ms under load .*: bufferbloat on the access link → ISP"},
	}

	// The exporter's isp module, run as root and as nobody, on the same lab.
	exporter := startServer(t, "--config.file="+cfg)
	var unprivileged string
	for _, row := range rows {
		t.Run(strings.ReplaceAll(row.name, " ", "_"), func(t *testing.T) {
			if row.step != nil {
				defer row.step()()
			}
			args := append([]string{"--config.file", cfg, "--timeout", "20s"}, row.args...)
			start := time.Now()
			code, text, rep := runMatrix(t, dir, row.unprivileged, args...)
			t.Logf("exit %d, %s/%s in %v: %s", code, rep.Verdict, rep.Fault, time.Since(start).Round(100*time.Millisecond), strings.Join(rep.Evidence, " | "))
			if code != row.code || rep.ExitCode != row.code || rep.Fault != row.fault || rep.Verdict != row.verdict {
				t.Errorf("exit %d (report %d), %s/%s; want %d, %s/%s\n%s", code, rep.ExitCode, rep.Verdict, rep.Fault, row.code, row.verdict, row.fault, text)
			}
			if len(rep.Evidence) == 0 || !regexp.MustCompile(row.why).MatchString(rep.Evidence[0]) {
				t.Errorf("first reason %q does not match %q", first(rep.Evidence), row.why)
			}
			if !strings.Contains(text, "Verdict: "+strings.ToUpper(row.verdict)+" —") || !strings.Contains(text, "\nWhy:\n  - ") {
				t.Errorf("the text report lacks the verdict or the reasons:\n%s", text)
			}
			row.checkReport(t, l, text, rep)
			if row.zeroExit {
				if code, _, again := runMatrix(t, dir, row.unprivileged, append(args, "--no-verdict-exit-code")...); code != 0 || again.Verdict != row.verdict || again.ExitCode != row.code {
					t.Errorf("--no-verdict-exit-code: exit %d, %s (report's exit code %d); want 0, %s (%d)", code, again.Verdict, again.ExitCode, row.verdict, row.code)
				}
			}
			if row.exporter {
				url := exporter
				if row.unprivileged {
					if unprivileged == "" {
						unprivileged = startServerAs(t, nobody, "--config.file="+cfg)
					}
					url = unprivileged
				}
				checkExporter(t, url, l, row)
			}
		})
	}
	t.Run("progress_total_known_up_front", func(t *testing.T) { testProgressTotal(t, l) })
}

// testProgressTotal: the progress total is known before the first check
// and never grows, although the trace finds two routers to ping.
func testProgressTotal(t *testing.T, l *labtest.Lab) {
	o := config.DefaultISPProbe()
	o.Gateway, o.Targets, o.DNSServers, o.DNSQueryName, o.HTTPURLs = l.Gateway, l.Targets, l.Resolvers, labtest.DNSName, l.URLs
	o.Packets, o.Interval = 5, 50*time.Millisecond
	plan := diagnose.NewPlan(o, diagnose.Flagged{Gateway: true, DNS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var steps []diagnose.Step
	res := diagnose.Run(ctx, plan, diagnose.Options{Progress: func(s diagnose.Step) { steps = append(steps, s) }})
	want := diagnose.PlannedSteps(plan)
	if len(res.Checks.Hops) != 2 {
		t.Errorf("%d routers pinged, want 2 (isp1, isp2)", len(res.Checks.Hops))
	}
	if len(steps) != want {
		t.Errorf("%d steps, want %d", len(steps), want)
	}
	for i, s := range steps {
		if s.Total != want || s.Done != i+1 {
			t.Errorf("step %d: [%d/%d] %s %s; want [%d/%d]", i, s.Done, s.Total, s.Check, s.Target, i+1, want)
		}
	}
}

// checkReport checks what a row's report must say beyond its first reason.
func (row matrixRow) checkReport(t *testing.T, l *labtest.Lab, text string, rep runReport) {
	t.Helper()
	switch row.name {
	case "no ICMP permission":
		// The fix is in the first line under "Why", and in full in the first
		// reason; nothing unmeasured is shown as a number.
		why := text[strings.Index(text, "\nWhy:\n")+6:]
		if line := why[:strings.Index(why, "\n")]; !strings.Contains(line, "run as root, widen net.ipv4.ping_group_range or grant CAP_NET_RAW") {
			t.Errorf("first line under Why: %q", line)
		}
		if e := rep.Evidence[0]; !strings.Contains(e, "`setcap cap_net_raw+ep ") || !strings.Contains(e, "`sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`") {
			t.Errorf("first reason lacks the commands: %q", e)
		}
		if rep.Score != nil || rep.Dimensions["loss"].Value != nil || rep.Dimensions["loss"].Score != nil {
			t.Errorf("unknown verdict with score %v, loss value %v score %v: nothing was measured", rep.Score, rep.Dimensions["loss"].Value, rep.Dimensions["loss"].Score)
		}
		if strings.Contains(text, "no gateway known") || !strings.Contains(text, "gateway "+l.Gateway+" not pinged: no permission") {
			t.Errorf("the gateway given with --gateway must be reported as not pinged:\n%s", text)
		}
	case "path-MTU black hole":
		if rep.Checks.MTU == nil || rep.Checks.MTU.PathMTUBytes != 1400 || !rep.Checks.MTU.BlackHole {
			t.Errorf("mtu check %+v, want a 1400-byte black hole", rep.Checks.MTU)
		}
		if !regexp.MustCompile(`(?m)^mtu +` + regexp.QuoteMeta(l.Targets[0]) + ` +blackhole +1400 bytes`).MatchString(text) {
			t.Errorf("the text report's mtu row lacks the MTU:\n%s", text)
		}
	case "healthy":
		if rep.Checks.MTU == nil || rep.Checks.MTU.PathMTUBytes != 1500 || rep.Checks.MTU.BlackHole {
			t.Errorf("mtu check %+v, want 1500 bytes", rep.Checks.MTU)
		}
		// Healthy means every dimension within its threshold: score ≥ 0.5
		// (how far above depends on the machine's load, not on the lab).
		if rep.Score == nil || *rep.Score < 0.5 {
			t.Errorf("healthy lab with score %v", rep.Score)
		}
	}
}

// checkExporter scrapes /probe?module=isp with the row's fault in place.
func checkExporter(t *testing.T, url string, l *labtest.Lab, row matrixRow) {
	t.Helper()
	code, body := fetch(t, url+"/probe?module=isp&target="+l.Targets[0])
	want := []string{
		fmt.Sprintf("probe_isp_verdict %d", row.code),
		fmt.Sprintf(`probe_isp_fault{segment=%q} 1`, row.fault),
	}
	if row.verdict == "unknown" {
		if strings.Contains(body, "probe_isp_health_score") || strings.Contains(body, `probe_isp_check_success{check="ping"`) {
			t.Errorf("an unknown verdict exports a health score or ping results:\n%s", body)
		}
	}
	for _, w := range want {
		if code != 200 || !strings.Contains(body, w) {
			t.Errorf("/probe?module=isp (%d) lacks %q:\n%s", code, w, body)
		}
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// nobody runs a command as an unprivileged user with no capabilities: no
// raw sockets, and (with this machine's net.ipv4.ping_group_range "1 0")
// no unprivileged ping sockets either.
var nobody = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}

// sharedDir is a temporary directory nobody can read and write to, with
// the binary's directory opened up too (t.TempDir's parent is private).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "isp-checker-matrix")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{dir, filepath.Dir(binary)} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runReport is the part of the JSON report the tests read.
type runReport struct {
	SchemaVersion int      `json:"schema_version"`
	Verdict       string   `json:"verdict"`
	Fault         string   `json:"fault"`
	ExitCode      int      `json:"exit_code"`
	Score         *float64 `json:"score"`
	Evidence      []string `json:"evidence"`
	Dimensions    map[string]struct {
		Measured bool     `json:"measured"`
		Score    *float64 `json:"score"`
		Value    *float64 `json:"value"`
	} `json:"dimensions"`
	Checks struct {
		Gateway *struct {
			Target      string `json:"target"`
			PacketsSent int    `json:"packets_sent"`
		} `json:"gateway"`
		Targets []json.RawMessage `json:"targets"`
		Trace   *struct {
			HopCount int `json:"hop_count"`
		} `json:"trace"`
		MTU *struct {
			PathMTUBytes int  `json:"path_mtu_bytes"`
			BlackHole    bool `json:"black_hole"`
		} `json:"mtu"`
		DNS  []json.RawMessage `json:"dns"`
		HTTP []json.RawMessage `json:"http"`
	} `json:"checks"`
}

// runMatrix runs the built binary (as nobody when unprivileged) with the
// text report on standard output and the JSON report in a file, which
// must match the report's JSON Schema.
func runMatrix(t *testing.T, dir string, unprivileged bool, args ...string) (int, string, runReport) {
	t.Helper()
	out := filepath.Join(dir, "report.json")
	_ = os.Remove(out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := append([]string{binary, "run", "--output", out}, args...)
	if unprivileged {
		argv = append(nobody, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
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
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no JSON report (exit %d): %v\n%s", code, err, stdout.String())
	}
	var rep runReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, data)
	}
	var doc any
	_ = json.Unmarshal(data, &doc)
	for _, e := range schematest.Validate(reportSchema(t), doc) {
		t.Errorf("the report does not match docs/report.schema.json: %s", e)
	}
	if rep.SchemaVersion != 2 {
		t.Errorf("schema_version %d", rep.SchemaVersion)
	}
	return code, stdout.String(), rep
}

// reportSchema is docs/report.schema.json.
func reportSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../docs/report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	return schema
}
