package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/probers"
)

// blockProber holds every probe until release is closed, so the tests can
// fill the concurrency cap; it reports the deadline it was given.
var (
	blockMu      sync.Mutex
	blockRelease = make(chan struct{})
	blockStarted = make(chan struct{}, 100)
)

type blockResult struct {
	prober.Common
	Deadline float64
}

// testProbers are every prober and four test ones that send nothing:
// test_block (blockProbe), test_panic, which panics, test_render_panic,
// whose metrics renderer panics, and test_echo, which logs its hostname
// and succeeds.
func testProbers() probers.Table {
	block := collector.RendererOf(func(r *blockResult, e *collector.Emitter) {
		e.Gauge("probe_test_deadline_seconds", "Deadline the probe saw.", r.Deadline)
	})
	return append(probers.All(),
		probers.Prober{Name: "test_block", Probe: blockProbe, Render: block},
		probers.Prober{Name: "test_panic", Probe: func(context.Context, *prober.Request) prober.Result { panic("boom") }},
		probers.Prober{Name: "test_render_panic", Render: collector.RendererOf(func(*blockResult, *collector.Emitter) { panic("render boom") }),
			Probe: func(context.Context, *prober.Request) prober.Result {
				return &blockResult{Common: prober.Common{Success: true}}
			}},
		probers.Prober{Name: "test_echo", Render: block, Probe: func(_ context.Context, req *prober.Request) prober.Result {
			req.Logger.Info("echo", "hostname", req.Hostname)
			return &blockResult{Common: prober.Common{Success: true}}
		}},
	)
}

func blockProbe(ctx context.Context, req *prober.Request) prober.Result {
	blockMu.Lock()
	release := blockRelease
	blockMu.Unlock()
	blockStarted <- struct{}{}
	r := &blockResult{}
	if dl, ok := ctx.Deadline(); ok {
		r.Deadline = time.Until(dl).Seconds()
	}
	select {
	case <-release:
	case <-ctx.Done():
	}
	req.Logger.Info("test probe done", "secret_word", "xyzzy")
	r.Success = true
	return r
}

// testModules are the modules of the test probers. config.Load refuses
// them (config knows the probers it has options for), so they are built in
// code and added to a loaded config by withTestModules.
var testModules = map[string]struct {
	prober  string
	timeout time.Duration
}{
	"block": {"test_block", 0}, "block_short": {"test_block", 2 * time.Second}, "block_5s": {"test_block", 5 * time.Second},
	"panic": {"test_panic", 0}, "echo": {"test_echo", 0}, "render_panic": {"test_render_panic", 0},
}

// withTestModules loads yamlText, whose modules use real probers, and adds
// testModules.
func withTestModules(t testing.TB, yamlText string) *config.Config {
	t.Helper()
	cfg, err := config.Load([]byte(yamlText), "")
	if err != nil {
		t.Fatal(err)
	}
	for name, tm := range testModules {
		m := config.DefaultModule()
		m.Prober, m.Timeout = tm.prober, tm.timeout
		cfg.Modules[name] = &m
	}
	return cfg
}

// loadedProbeHandler is the /probe handler of o for the modules yamlText
// declares, run by the real probers table, as serve builds it.
func loadedProbeHandler(tb testing.TB, yamlText string, o ProbeOptions) http.Handler {
	tb.Helper()
	cfg, err := config.Load([]byte(yamlText), "")
	if err != nil {
		tb.Fatal(err)
	}
	holder := config.NewHolder("", nil)
	holder.Set(cfg)
	o.Config, o.Probers = holder, probers.All()
	return NewProbeHandler(o)
}

// testConfig is the test server's config, with testModules.
const testConfig = `
modules:
  http_auth:
    prober: http
    http:
      basic_auth:
        username: u
        password: hunter2
`

type testServer struct {
	*httptest.Server
	reg     *prometheus.Registry
	metrics *SelfMetrics
	holder  *config.Holder
	path    string
}

func newTestServer(t *testing.T, maxConcurrent int) *testServer {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	holder := config.NewHolder(path, reg)
	holder.Set(withTestModules(t, testConfig))
	m := NewSelfMetrics(reg)
	mux := NewMux(Options{
		Probe: ProbeOptions{
			Config: holder, Probers: testProbers(), Metrics: m, History: NewHistory(10),
			TimeoutOffset: 500 * time.Millisecond, MaxConcurrent: maxConcurrent,
		},
		Gatherer: reg,
		Reload:   holder.Reload,
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return &testServer{Server: s, reg: reg, metrics: m, holder: holder, path: path}
}

func get(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func releaseBlocked(t *testing.T) {
	blockMu.Lock()
	close(blockRelease)
	blockMu.Unlock()
	t.Cleanup(func() {
		blockMu.Lock()
		blockRelease = make(chan struct{})
		blockMu.Unlock()
	})
}

func TestProbeBadRequests(t *testing.T) {
	s := newTestServer(t, 0)
	tests := []struct {
		name, query string
		header      http.Header
		code        int
		body        string
		reason      string
	}{
		{"unknown module", "/probe?target=x&module=nope", nil, 400, `Unknown module "nope"`, "unknown_module"},
		{"missing target", "/probe?module=block", nil, 400, "Target parameter is missing", "missing_target"},
		{"bad timeout header", "/probe?module=block&target=x", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"soon"}}, 400,
			`invalid X-Prometheus-Scrape-Timeout-Seconds header "soon"`, "bad_request"},
		{"NaN timeout header", "/probe?module=block&target=x", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"NaN"}}, 400,
			`invalid X-Prometheus-Scrape-Timeout-Seconds header "NaN"`, "bad_request"},
		{"negative timeout header", "/probe?module=block&target=x", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"-3"}}, 400,
			`invalid X-Prometheus-Scrape-Timeout-Seconds header "-3"`, "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(s.metrics.rejected.WithLabelValues(tc.reason))
			code, body := get(t, s.URL+tc.query, tc.header)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("got %d %q, want %d containing %q", code, body, tc.code, tc.body)
			}
			if got := testutil.ToFloat64(s.metrics.rejected.WithLabelValues(tc.reason)); got != before+1 {
				t.Errorf("rejected{reason=%q} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}
}

// blackbox_module_unknown_total counts what rejected{reason="unknown_module"}
// counts, and nothing else.
func TestModuleUnknownCounter(t *testing.T) {
	s := newTestServer(t, 0)
	releaseBlocked(t)
	get(t, s.URL+"/probe?target=x&module=nope", nil)
	get(t, s.URL+"/probe?target=x&module=nope2", nil)
	get(t, s.URL+"/probe?module=block", nil)
	get(t, s.URL+"/probe?target=x&module=block", nil)
	if got := testutil.ToFloat64(s.metrics.moduleUnknown); got != 2 {
		t.Errorf("blackbox_module_unknown_total = %v, want 2", got)
	}
	_, metrics := get(t, s.URL+"/metrics", nil)
	if !strings.Contains(metrics, "blackbox_module_unknown_total 2\n") {
		t.Errorf("/metrics lacks blackbox_module_unknown_total 2:\n%s", metrics)
	}
}

func TestDecodeEncodedColon(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1%3A9100":                 "127.0.0.1:9100",
		"http%3A%2F%2Fexample.com%2Fa%2Bb": "http://example.com/a+b",
		"[::1]%3a22":                       "[::1]:22",
		"http://example.com/?q=a%2Bb%3A":   "http://example.com/?q=a%2Bb%3A", // has a colon: left alone
		"127.0.0.1:9100":                   "127.0.0.1:9100",
		"example.com":                      "example.com",
		"bad%3A%zz":                        "bad%3A%zz", // does not decode: kept
	} {
		if got := decodeEncodedColon(in); got != want {
			t.Errorf("decodeEncodedColon(%q) = %q, want %q", in, got, want)
		}
	}
	// Through /probe: the target parameter arrives encoded twice.
	s := newTestServer(t, 0)
	releaseBlocked(t)
	_, body := get(t, s.URL+"/probe?module=block&debug=true&target=127.0.0.1%253A9100", nil)
	if !strings.Contains(body, "target=127.0.0.1:9100") {
		t.Errorf("the probe did not get the decoded target:\n%s", body)
	}
}

func TestProbeTimeout(t *testing.T) {
	m := func(d time.Duration) config.Module { return config.Module{Timeout: d} }
	tests := []struct {
		header string
		module config.Module
		offset time.Duration
		want   time.Duration
	}{
		{"", m(0), 500 * time.Millisecond, DefaultScrapeTimeout - 500*time.Millisecond},
		{"10", m(0), 500 * time.Millisecond, 9500 * time.Millisecond},
		{"10", m(5 * time.Second), 500 * time.Millisecond, 5 * time.Second},
		{"3", m(5 * time.Second), 500 * time.Millisecond, 2500 * time.Millisecond},
		{"0.3", m(0), 500 * time.Millisecond, 300 * time.Millisecond},
		{"2.5", m(0), 0, 2500 * time.Millisecond},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/probe", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		got, err := probeTimeout(r, &tc.module, tc.offset)
		if err != nil || got != tc.want {
			t.Errorf("header %q module %v offset %v: got %v, %v; want %v", tc.header, tc.module.Timeout, tc.offset, got, err, tc.want)
		}
	}
}

func TestProbeDeadlineReachesProber(t *testing.T) {
	s := newTestServer(t, 0)
	releaseBlocked(t)
	_, body := get(t, s.URL+"/probe?module=block&target=x", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"4"}})
	// 4 s minus the 0.5 s offset; the prober sees slightly less.
	if !strings.Contains(body, "probe_test_deadline_seconds 3.4") && !strings.Contains(body, "probe_test_deadline_seconds 3.5") {
		t.Errorf("deadline not from header minus offset:\n%s", body)
	}
	_, body = get(t, s.URL+"/probe?module=block_short&target=x", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"30"}})
	if !strings.Contains(body, "probe_test_deadline_seconds 1.9") && !strings.Contains(body, "probe_test_deadline_seconds 2\n") {
		t.Errorf("module timeout does not cap the deadline:\n%s", body)
	}
}

// probe_timeout_seconds is the budget the handler computed, as blackbox
// reports it (5 for a 5 s module, 2.5 under a 3 s scrape timeout with the
// 0.5 s offset), not the time left when the prober started.
func TestProbeTimeoutSecondsIsTheBudget(t *testing.T) {
	s := newTestServer(t, 0)
	releaseBlocked(t)
	for _, tc := range []struct{ header, want string }{
		{"", "probe_timeout_seconds 5\n"},
		{"3", "probe_timeout_seconds 2.5\n"},
		{"30", "probe_timeout_seconds 5\n"},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		_, body := get(t, s.URL+"/probe?module=block_5s&target=x", h)
		if !strings.Contains(body, tc.want) {
			t.Errorf("scrape timeout %q: want %q in\n%s", tc.header, tc.want, body)
		}
	}
}

func TestConcurrencyCap(t *testing.T) {
	s := newTestServer(t, 2)
	for len(blockStarted) > 0 {
		<-blockStarted
	}
	var wg sync.WaitGroup
	codes := make(chan int, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(s.URL + "/probe?module=block&target=x")
			if err != nil {
				codes <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	<-blockStarted
	<-blockStarted
	if got := testutil.ToFloat64(s.metrics.inFlight); got != 2 {
		t.Errorf("in flight = %v, want 2", got)
	}
	start := time.Now()
	code, body := get(t, s.URL+"/probe?module=block&target=x", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "Too many concurrent probes (limit 2)") {
		t.Errorf("third probe: %d %q, want 503", code, body)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("503 must be immediate, not after waiting")
	}
	if got := testutil.ToFloat64(s.metrics.rejected.WithLabelValues("concurrency")); got != 1 {
		t.Errorf("rejected{concurrency} = %v", got)
	}
	releaseBlocked(t)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("blocked probe finished with %d", c)
		}
	}
	if got := testutil.ToFloat64(s.metrics.probes.WithLabelValues("block", "success")); got != 2 {
		t.Errorf("probes_total{block,success} = %v", got)
	}
}

func TestDebugHistoryAndLogs(t *testing.T) {
	s := newTestServer(t, 0)
	releaseBlocked(t)
	code, body := get(t, s.URL+"/probe?module=block&target=example.test&debug=true", nil)
	if code != 200 {
		t.Fatalf("debug probe: %d", code)
	}
	for _, want := range []string{"Logs for the probe:", "test probe done", "Metrics that would have been returned:", "probe_success 1", "Module configuration:", "prober: test_block"} {
		if !strings.Contains(body, want) {
			t.Errorf("debug output lacks %q:\n%s", want, body)
		}
	}
	_, page := get(t, s.URL+"/", nil)
	for _, want := range []string{"example.test", "logs?id=0", "block_short", "test_block", "isp-checker"} {
		if !strings.Contains(page, want) {
			t.Errorf("landing page lacks %q", want)
		}
	}
	_, logs := get(t, s.URL+"/logs?id=0", nil)
	if !strings.Contains(logs, "test probe done") {
		t.Errorf("/logs?id=0 lacks the probe's logs: %q", logs)
	}
	if code, _ := get(t, s.URL+"/logs?id=99", nil); code != 404 {
		t.Errorf("unknown log id: %d", code)
	}
	if code, _ := get(t, s.URL+"/logs?id=x", nil); code != 400 {
		t.Errorf("bad log id: %d", code)
	}
}

func TestPanickingProberFailsProbe(t *testing.T) {
	s := newTestServer(t, 0)
	code, body := get(t, s.URL+"/probe?module=panic&target=x&debug=true", nil)
	if code != 200 || !strings.Contains(body, "probe_success 0") || !strings.Contains(body, "prober panicked") {
		t.Errorf("panic not contained: %d\n%s", code, body)
	}
}

func TestConfigHidesSecretsAndReload(t *testing.T) {
	s := newTestServer(t, 0)
	_, cfg := get(t, s.URL+"/config", nil)
	if strings.Contains(cfg, "hunter2") || !strings.Contains(cfg, "<secret>") {
		t.Errorf("/config shows a secret:\n%s", cfg)
	}
	if code, _ := get(t, s.URL+"/-/reload", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload = %d, want 405", code)
	}
	if err := os.WriteFile(s.path, []byte("modules:\n  x:\n    prober: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), `unknown prober "nope"`) {
		t.Errorf("bad reload: %d %s", resp.StatusCode, body)
	}
	if _, ok := s.holder.Get().Modules["block"]; !ok {
		t.Error("old config lost")
	}
	_, metrics := get(t, s.URL+"/metrics", nil)
	for _, want := range []string{"isp_checker_config_last_reload_successful 0", "blackbox_exporter_config_last_reload_successful 0", "isp_checker_build_info", "isp_checker_probes_in_flight 0", "isp_checker_probes_rejected_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if problems, err := testutil.GatherAndLint(s.reg); err != nil || len(problems) > 0 {
		t.Errorf("self metrics lint: %v %v", err, problems)
	}
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		if code, _ := get(t, s.URL+path, nil); code != 200 {
			t.Errorf("%s = %d", path, code)
		}
	}
	if code, _ := get(t, s.URL+"/nonexistent", nil); code != 404 {
		t.Errorf("unknown path = %d", code)
	}
}

func TestEmitterDropsInvalidLabel(t *testing.T) {
	e := collector.NewEmitter(nil)
	e.Gauge("probe_x", "x", 1, "label", string([]byte{0xff, 0xfe}))
	e.Gauge("probe_y", "y", 2)
	if n := testutil.CollectAndCount(e); n != 1 {
		t.Errorf("got %d metrics, want the invalid one dropped and 1 kept", n)
	}
	res := &blockResult{Common: prober.Common{Success: true, Resolved: true, IPProtocol: 4, IPAddr: "127.0.0.1"}}
	block, _ := testProbers().Lookup("test_block")
	e = collector.NewEmitter(nil)
	collector.Render(res, block.Render, e)
	problems, err := testutil.CollectAndLint(e)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
	want := fmt.Sprintf("%v", []string{"probe_dns_lookup_time_seconds", "probe_duration_seconds", "probe_ip_addr_hash", "probe_ip_protocol", "probe_success", "probe_test_deadline_seconds", "probe_timeout_seconds"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	mfs, _ := reg.Gather()
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if got := fmt.Sprintf("%v", names); got != want {
		t.Errorf("metric names %s, want %s", got, want)
	}
}

// The Emitter serves a probe's metrics itself; what it gathers must be
// exactly what a Registry would, and a repeated series is dropped, not served.
func TestEmitterGatherMatchesRegistry(t *testing.T) {
	build := func() *collector.Emitter {
		e := collector.NewEmitter(nil)
		e.Gauge("probe_b", "b", 2, "phase", "tls")
		e.Gauge("probe_b", "b", 1, "phase", "connect")
		e.Counter("probe_a_total", "a", 3)
		e.Bool("probe_c", "c", true, "x", "2", "y", "a")
		e.Bool("probe_c", "c", false, "x", "10", "y", "b")
		return e
	}
	text := func(g prometheus.Gatherer) string {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, mf := range mfs {
			_, _ = expfmt.MetricFamilyToText(&b, mf)
		}
		return b.String()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(build())
	if got, want := text(build()), text(reg); got != want {
		t.Errorf("emitter gathers\n%s\nregistry gathers\n%s", got, want)
	}
	e := build()
	e.Gauge("probe_b", "b", 9, "phase", "tls")
	if got := text(e); strings.Contains(got, "probe_b{phase=\"tls\"} 9") || !strings.Contains(got, "probe_b{phase=\"tls\"} 2") {
		t.Errorf("duplicate series not dropped:\n%s", got)
	}
}

// TestRenderPanicFreesTheSlot: a panic after the probe ran (in its
// renderer) reaches net/http, which drops the connection; the probe's
// concurrency slot, context and log reservation are still given back, so
// one bad module cannot use up --probes.max-concurrent.
func TestRenderPanicFreesTheSlot(t *testing.T) {
	s := newTestServer(t, 1)
	for range 3 {
		if resp, err := http.Get(s.URL + "/probe?module=render_panic&target=x"); err == nil {
			resp.Body.Close()
			t.Fatalf("a panicking renderer answered %d", resp.StatusCode)
		}
	}
	if code, body := get(t, s.URL+"/probe?module=echo&target=x", nil); code != http.StatusOK || !strings.Contains(body, "probe_success 1") {
		t.Errorf("after three render panics with a cap of 1: %d %q, want a probe", code, body)
	}
}

// The target policy a probe gets is its config's: after a reload, the
// next probe follows the new one (the handler keeps one policy per config,
// not one per probe).
func TestPolicyFollowsReload(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	load := func(policy string) *config.Config {
		cfg, err := config.Load([]byte("modules:\n  tcp: {prober: tcp, timeout: 2s}\n"+policy), "")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	holder := config.NewHolder("", nil)
	holder.Set(load("target_policy:\n  deny_networks: [127.0.0.0/8]\n"))
	s := httptest.NewServer(NewProbeHandler(ProbeOptions{Config: holder, Probers: probers.All()}))
	defer s.Close()
	probe := func() string {
		resp, err := http.Get(s.URL + "/probe?module=tcp&debug=true&target=" + l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for range 2 {
		if out := probe(); !strings.Contains(out, "probe_success 0") || !strings.Contains(out, "denied network 127.0.0.0/8") {
			t.Fatalf("denied by the first config: %s", out)
		}
	}
	holder.Set(load(""))
	if out := probe(); !strings.Contains(out, "probe_success 1") {
		t.Errorf("after the reload the old policy still applies: %s", out)
	}
	holder.Set(load("target_policy:\n  deny_networks: [127.0.0.0/8]\n"))
	if out := probe(); !strings.Contains(out, "probe_success 0") {
		t.Errorf("after a second reload the policy is not the new config's: %s", out)
	}
}
