package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/syncbuf"
)

// TestPrometheusScrapesExporter is the end-to-end test: a real Prometheus
// (Debian's package) scrapes the exporter's /probe through the usual
// blackbox relabelling, once a second, with the repository's alert rules and
// a test rule loaded. Through Prometheus's HTTP API the test checks that
// probe_success arrives, 1 for a healthy target and 0 for a failing one, with
// the relabelled labels; that the exporter's own metrics arrive; that the
// rules loaded and every dashboard and rule query evaluates; that the test
// alert fires; and that the repository's IspCheckerTargetDown is pending for
// the failing target only. Everything listens on 127.0.0.1 and the probed
// targets are httptest servers.
func TestPrometheusScrapesExporter(t *testing.T) {
	promBin := tool(t, "prometheus")
	dir := t.TempDir()

	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "hello from the target")
	}))
	defer target.Close()

	// A second target that fails http_2xx, for the repository's own
	// IspCheckerTargetDown alert.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "broken on purpose", http.StatusInternalServerError)
	}))
	defer failing.Close()
	dead := failing.URL + "/"

	exporter := startExporter(t, dir)

	promAddr := freeAddr(t)
	promConfig := filepath.Join(dir, "prometheus.yml")
	testRules := filepath.Join(dir, "test.rules.yml")
	writeFile(t, testRules, `groups:
  - name: e2e
    rules:
      - alert: TestProbeSucceeded
        expr: probe_success{job="e2e-http"} == 1
        for: 0s
        labels:
          severity: info
        annotations:
          summary: "{{ $labels.instance }} answered"
`)
	writeFile(t, promConfig, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
  - %q
scrape_configs:
  - job_name: e2e-http
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: [%q, %q]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - source_labels: [__param_module]
        target_label: module
      - target_label: __address__
        replacement: %q
  - job_name: isp-checker
    static_configs:
      - targets: [%q]
`, filepath.Join(root(t), "alerts/isp-checker.rules.yml"), testRules, target.URL, dead, exporter, exporter))

	startProcess(t, "prometheus", promBin,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn",
	)
	api := "http://" + promAddr + "/api/v1/"
	deadline := time.Now().Add(60 * time.Second)

	// The probe's series, with the labels the relabelling gives it.
	var got []promSample
	ok := poll(deadline, func() bool {
		got = promQuery(t, api, fmt.Sprintf(`probe_success{job="e2e-http",instance=%q}`, target.URL))
		return len(got) == 1 && got[0].value() == "1"
	})
	if !ok {
		_, debug := get(t, "http://"+exporter+"/probe?module=http_2xx&debug=true&target="+url.QueryEscape(target.URL))
		t.Fatalf("probe_success of %s is %v after 60s, want one series with value 1; the exporter's debug output for the probe:\n%s", target.URL, got, debug)
	}
	if l := got[0].Metric; l["instance"] != target.URL || l["module"] != "http_2xx" {
		t.Errorf("probe_success labels %v: want instance=%s module=http_2xx", l, target.URL)
	}
	if s := promQuery(t, api, fmt.Sprintf(`probe_http_status_code{instance=%q}`, target.URL)); len(s) != 1 || s[0].value() != "200" {
		t.Errorf("probe_http_status_code: %v, want 200", s)
	}
	ok = poll(deadline, func() bool {
		got = promQuery(t, api, fmt.Sprintf(`probe_success{instance=%q}`, dead))
		return len(got) == 1 && got[0].value() == "0"
	})
	if !ok {
		t.Errorf("probe_success of the failing target %s: %v, want 0", dead, got)
	}

	// The exporter's own metrics, from scraping /metrics.
	ok = poll(deadline, func() bool {
		s := promQuery(t, api, `isp_checker_probes_total{job="isp-checker",module="http_2xx",result="success"}`)
		return len(s) == 1
	})
	if !ok {
		t.Error("isp_checker_probes_total{module=\"http_2xx\",result=\"success\"} never arrived")
	}

	// The repository's rules loaded and evaluate without errors.
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	apiGet(t, api+"rules", &rules)
	groups := map[string]int{}
	for _, g := range rules.Data.Groups {
		groups[g.Name] = len(g.Rules)
		for _, r := range g.Rules {
			if r.Health == "err" {
				t.Errorf("rule %s in group %s: %s", r.Name, g.Name, r.LastError)
			}
		}
	}
	if groups["isp-checker.probes"] == 0 || groups["isp-checker.exporter"] == 0 || groups["e2e"] != 1 {
		t.Errorf("rule groups loaded: %v", groups)
	}

	// Every dashboard and rule query evaluates in this Prometheus (Debian's
	// is older than the parser TestQueriesNameEmittedMetrics uses), with the
	// dashboard variables set to this probe's job, module and target.
	vars := strings.NewReplacer("$job", "e2e-http", "$module", "http_2xx", "$instance", target.URL)
	var queries []query
	for _, f := range glob(t, "dashboards/*.json") {
		queries = append(queries, dashboardQueries(t, f, vars)...)
	}
	for _, f := range glob(t, "alerts/*.yml") {
		queries = append(queries, ruleQueries(t, f)...)
	}
	withData := 0
	for _, q := range queries {
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result json.RawMessage `json:"result"`
			} `json:"data"`
		}
		code, body := get(t, api+"query?query="+url.QueryEscape(q.expr))
		if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK || r.Status != "success" {
			t.Errorf("%s: %s: %q: HTTP %d %s", q.file, q.where, q.expr, code, body)
			continue
		}
		if len(r.Data.Result) > 2 && string(r.Data.Result) != "[]" {
			withData++
		}
	}
	t.Logf("%d dashboard and rule queries evaluate; %d return data for an http_2xx probe", len(queries), withData)
	if withData < 10 {
		t.Errorf("only %d queries return data for an http_2xx probe", withData)
	}

	// The test alert fires, and the repository's IspCheckerTargetDown is
	// pending (its for: is 5 minutes) for the dead target only.
	var alerts struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	state := func(alertname, instance string) string {
		for _, a := range alerts.Data.Alerts {
			if a.Labels["alertname"] == alertname && a.Labels["instance"] == instance {
				return a.State
			}
		}
		return ""
	}
	ok = poll(deadline, func() bool {
		apiGet(t, api+"alerts", &alerts)
		return state("TestProbeSucceeded", target.URL) == "firing" && state("IspCheckerTargetDown", dead) == "pending"
	})
	if !ok {
		t.Errorf("after 60s, want TestProbeSucceeded firing for %s and IspCheckerTargetDown pending for %s; alerts: %+v", target.URL, dead, alerts.Data.Alerts)
	}
	if st := state("IspCheckerTargetDown", target.URL); st != "" {
		t.Errorf("IspCheckerTargetDown is %s for the healthy target", st)
	}
}

// startExporter builds isp-checker and starts it on a free loopback port with
// an http_2xx module; it returns the exporter's host:port.
func startExporter(t *testing.T, dir string) string {
	t.Helper()
	bin := buildBinary(t, dir)
	cfg := filepath.Join(dir, "isp-checker.yml")
	writeFile(t, cfg, `modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
`)
	addr := freeAddr(t)
	startProcess(t, "isp-checker", bin, "--config.file="+cfg, "--web.listen-address="+addr)
	if !poll(time.Now().Add(20*time.Second), func() bool {
		code, _ := tryGet("http://" + addr + "/-/healthy")
		return code == http.StatusOK
	}) {
		t.Fatal("isp-checker did not start")
	}
	return addr
}

// startProcess starts a long-running program, keeps its output for the test
// log on failure, and stops it (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t *testing.T, name, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &syncbuf.Buffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

func (s promSample) value() string {
	if len(s.Value) != 2 {
		return ""
	}
	v, _ := s.Value[1].(string)
	return v
}

func promQuery(t *testing.T, api, q string) []promSample {
	t.Helper()
	var r struct {
		Data struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	apiGet(t, api+"query?query="+url.QueryEscape(q), &r)
	return r.Data.Result
}

// apiGet decodes a Prometheus API answer into v; while Prometheus is still
// starting it leaves v as it is.
func apiGet(t *testing.T, u string, v any) {
	t.Helper()
	code, body := tryGet(u)
	if code != http.StatusOK {
		return
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %v\n%s", u, err, body)
	}
}

// client does not keep connections open, so no goroutine outlives a test.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func tryGet(u string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	code, body := tryGet(u)
	if code == 0 {
		t.Fatalf("GET %s: %s", u, body)
	}
	return code, body
}

// poll calls f every 250ms until it returns true or the deadline passes.
func poll(deadline time.Time, f func() bool) bool {
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
