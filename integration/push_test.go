package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/testserver"
)

// TestRunPushToPushgateway: `isp-checker run --push` lands in a real
// Pushgateway (Debian's prometheus-pushgateway), and a real Prometheus
// scrapes it from there with honor_labels, as the README's set-up does:
// the pushed verdict and fault are the run's own (its JSON report), under
// job="isp-checker-run" and the instance given, with the Pushgateway's
// push_time_seconds beside them. Everything is on 127.0.0.1: the run pings
// and traces 127.0.0.1, asks an in-process DNS server and fetches an
// httptest site.
func TestRunPushToPushgateway(t *testing.T) {
	pgwBin := tool(t, "prometheus-pushgateway")
	promBin := tool(t, "prometheus")
	dir := t.TempDir()
	bin := buildBinary(t, dir)

	pgw := freeAddr(t)
	startProcess(t, "prometheus-pushgateway", pgwBin, "--web.listen-address="+pgw, "--log.level=warn")
	if !poll(time.Now().Add(20*time.Second), func() bool { code, _ := tryGet("http://" + pgw + "/-/ready"); return code == http.StatusOK }) {
		t.Fatal("the Pushgateway did not start")
	}

	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") }))
	defer site.Close()
	resolver := startLoopbackDNS(t)
	cfg := filepath.Join(dir, "isp.yml")
	writeFile(t, cfg, `modules:
  isp:
    prober: isp
    isp:
      packets: 5
      interval: 50ms
`)
	report := filepath.Join(dir, "report.json")
	start := time.Now()
	out, err := runErr(dir, bin, "run", "--config.file", cfg, "--gateway", "none", "--target", "127.0.0.1",
		"--dns-server", resolver, "--dns-name", "push.test", "--http-url", site.URL+"/",
		"--output", report, "--timeout", "20s", "--push", "http://"+pgw, "--push-instance", "e2e")
	var rep struct {
		Verdict  string `json:"verdict"`
		Fault    string `json:"fault"`
		ExitCode int    `json:"exit_code"`
	}
	data, rerr := os.ReadFile(report)
	if rerr != nil || json.Unmarshal(data, &rep) != nil {
		t.Fatalf("no report (%v): %v\n%s", err, rerr, out)
	}
	if code := exitCode(err); code != rep.ExitCode || code == 3 {
		t.Fatalf("exit %d, report's exit code %d (3: the push failed):\n%s", code, rep.ExitCode, out)
	}
	t.Logf("run: %s/%s, exit %d", rep.Verdict, rep.Fault, rep.ExitCode)

	promAddr := freeAddr(t)
	promConfig := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promConfig, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: [%q]
`, filepath.Join(root(t), "alerts/isp-checker.rules.yml"), pgw))
	startProcess(t, "prometheus", promBin, "--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	api := "http://" + promAddr + "/api/v1/"
	deadline := time.Now().Add(60 * time.Second)

	sel := `{job="isp-checker-run",instance="e2e"}`
	var got []promSample
	if !poll(deadline, func() bool { got = promQuery(t, api, "probe_isp_verdict"+sel); return len(got) == 1 }) {
		_, metrics := get(t, "http://"+pgw+"/metrics")
		t.Fatalf("probe_isp_verdict%s not in Prometheus after 60s: %v; the Pushgateway has:\n%s", sel, got, metrics)
	}
	if got[0].value() != strconv.Itoa(rep.ExitCode) {
		t.Errorf("pushed verdict %s, the run's exit code %d", got[0].value(), rep.ExitCode)
	}
	if s := promQuery(t, api, fmt.Sprintf(`probe_isp_fault{job="isp-checker-run",instance="e2e",segment=%q}`, rep.Fault)); len(s) != 1 || s[0].value() != "1" {
		t.Errorf("probe_isp_fault for the run's fault %s: %v", rep.Fault, s)
	}
	if s := promQuery(t, api, `count(probe_isp_fault`+sel+`)`); len(s) != 1 || s[0].value() != "6" {
		t.Errorf("probe_isp_fault series: %v, want one per segment (6)", s)
	}
	s := promQuery(t, api, "push_time_seconds"+sel)
	if len(s) != 1 {
		t.Fatalf("push_time_seconds%s: %v", sel, s)
	}
	if pushed, _ := strconv.ParseFloat(s[0].value(), 64); pushed < float64(start.Unix()) || pushed > float64(time.Now().Unix()+1) {
		t.Errorf("push_time_seconds %v is not the time of the run (%v)", pushed, start.Unix())
	}
	// Only the diagnosis is pushed, not the common probe metrics.
	if s := promQuery(t, api, `probe_success{job="isp-checker-run"}`); len(s) != 0 {
		t.Errorf("probe_success pushed: %v", s)
	}
}

// buildBinary builds isp-checker into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "isp-checker")
	run(t, root(t), "go", "build", "-o", bin, "./cmd/isp-checker")
	return bin
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// startLoopbackDNS serves push.test (127.0.0.1) on a loopback port,
// NXDOMAIN for anything else; it returns ip:port.
func startLoopbackDNS(t *testing.T) string {
	t.Helper()
	_, zone := testserver.Resolver(t, map[string][]netip.Addr{"push.test": {netip.MustParseAddr("127.0.0.1")}})
	return zone.Addr()
}
