package integration

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/probers"
	"github.com/isp-checker/isp-checker/server"
	"github.com/isp-checker/isp-checker/speedtest"
)

// Hints for filling a Result by reflection, by field name, where "any
// non-zero value" does not reach every metric: a field compared with a
// constant, or a map looked up by fixed keys. Add one when
// TestEmittedMatchesRender says a contract name was not rendered although the
// prober does write it under some condition.
var (
	stringHints = map[string]string{
		"Transport": "udp", // dns: probe_dns_truncated, probe_dns_retried_over_tcp
	}
	mapKeyHints = map[string][]string{
		"PhaseSeconds": {"resolve", "connect", "tls", "processing", "transfer"}, // http
	}
	// A target per prober for the cancelled probe that reveals the Result
	// type; all on loopback (nothing is sent: the probe's context is done).
	typeProbeTargets = map[string]string{
		"http":           "http://127.0.0.1:9/",
		"throughput":     "http://127.0.0.1:9/",
		"responsiveness": "https://127.0.0.1:9/.well-known/nq",
		"tcp":            "127.0.0.1:9",
		"dns":            "127.0.0.1:9",
		"unix":           "/run/isp-checker-contract.sock", // refused by the policy
		"websocket":      "ws://127.0.0.1:9/",
	}
)

// TestEmittedMatchesRender checks the contract in metrics_contract_test.go against
// the code: for every prober registered in this build it renders a fully
// populated Result (every number 2, every bool true, every pointer, slice and
// map filled) through collector.Render and compares the metric names with
// Emitted["common"] plus Emitted[prober]. A prober whose metrics view writes a
// name the contract lacks fails, and so does a contract name no branch of the
// view writes. Probers not registered yet keep their planned names
// unchecked; they are listed in the log.
func TestEmittedMatchesRender(t *testing.T) {
	registered := probers.All().Names()
	for _, name := range slices.Sorted(maps.Keys(Emitted)) {
		if name != "common" && name != "exporter" && !slices.Contains(registered, name) {
			t.Logf("prober %q is not registered in this build yet: its contract names are not checked against a render", name)
		}
	}
	for _, name := range registered {
		t.Run(name, func(t *testing.T) {
			want, ok := Emitted[name]
			if !ok {
				t.Fatalf("prober %q is registered but has no entry in integration/metrics_contract_test.go", name)
			}
			typ := resultType(t, name)
			got := renderNames(t, name, typ)
			expect := setOf(append(slices.Clone(Emitted["common"]), want...))
			for _, n := range sortedKeys(got) {
				if !expect[n] {
					t.Errorf("%s renders %s, which is not in Emitted[%q] (integration/metrics_contract_test.go): add it there and to docs/metrics.md", typ, n, name)
				}
			}
			for _, n := range sortedKeys(expect) {
				if !got[n] {
					t.Errorf("Emitted[%q] lists %s, but a fully populated %s does not render it: remove it from the contract, or add a fill hint in emitted_test.go if it depends on a particular value", name, n, typ)
				}
			}
		})
	}
}

// TestExporterMetricsMatchContract gathers the exporter's own registry, wired
// as `isp-checker serve` wires it, after one probe, and compares its
// isp_checker_* and blackbox_* names with Emitted["exporter"].
func TestExporterMetricsMatchContract(t *testing.T) {
	got := map[string]bool{}
	for n := range exporterNames(t) {
		if strings.HasPrefix(n, "isp_checker_") || strings.HasPrefix(n, "blackbox_") {
			got[n] = true
		}
	}
	want := setOf(Emitted["exporter"])
	for _, n := range sortedKeys(got) {
		if !want[n] {
			t.Errorf("the exporter registers %s, which is not in Emitted[\"exporter\"]", n)
		}
	}
	for _, n := range sortedKeys(want) {
		if !got[n] {
			t.Errorf("Emitted[\"exporter\"] lists %s, which the exporter's registry does not have", n)
		}
	}
}

// resultType finds the concrete Result type of a registered prober by running
// it with a context that is already done.
func resultType(t *testing.T, name string) reflect.Type {
	t.Helper()
	cfg, err := config.Load([]byte("target_policy:\n  allow_networks: [127.0.0.0/8, \"::1/128\"]\nmodules: {}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	mod := config.DefaultModule()
	mod.Prober = name
	target := typeProbeTargets[name]
	if target == "" {
		target = "127.0.0.1"
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan prober.Result, 1)
	go func() {
		done <- probers.All().Run(ctx, prober.Request{
			Target: target, Module: &mod, ModuleName: "contract",
			Policy: prober.NewPolicy(cfg.TargetPolicy, nil),
		})
	}()
	var res prober.Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("prober %q did not return within 30s of a cancelled context", name)
	}
	typ := reflect.TypeOf(res)
	if typ == reflect.TypeOf(&prober.Common{}) {
		t.Skipf("prober %q returned a bare prober.Common for a cancelled probe (%s), so its Result type cannot be found this way; its contract names stay unchecked", name, res.Base().Error)
	}
	return typ
}

// renderNames renders a fully populated value of the Result type typ with
// the metrics view of the prober name and returns the metric names.
func renderNames(t *testing.T, name string, typ reflect.Type) map[string]bool {
	t.Helper()
	if typ.Kind() != reflect.Pointer || typ.Elem().Kind() != reflect.Struct {
		t.Fatalf("Result type %s is not a pointer to a struct", typ)
	}
	v := reflect.New(typ.Elem())
	fill(v.Elem(), "", 0)
	res, ok := v.Interface().(prober.Result)
	if !ok {
		t.Fatalf("%s does not implement prober.Result", typ)
	}
	em := collector.NewEmitter(nil)
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("rendering a fully populated %s panicked: %v", typ, p)
			}
		}()
		_, view := probers.All().Find(name)
		collector.Render(res, view, em)
	}()
	return gatherNames(t, em)
}

func gatherNames(t *testing.T, c prometheus.Collector) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	// Duplicate series (a filled slice can repeat a label set) are an error
	// here but do not matter for the names.
	mfs, _ := reg.Gather()
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}

// fill sets every exported field reachable from v to a non-zero value.
func fill(v reflect.Value, field string, depth int) {
	if depth > 10 || !v.CanSet() {
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(2)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(2)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(2)
	case reflect.String:
		if h, ok := stringHints[field]; ok {
			v.SetString(h)
		} else {
			v.SetString("x")
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), field, depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), field, depth+1)
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), field, depth+1)
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		keys := []string{"x"}
		if h, ok := mapKeyHints[field]; ok {
			keys = h
		}
		for _, k := range keys {
			kv := reflect.New(v.Type().Key()).Elem()
			if kv.Kind() == reflect.String {
				kv.SetString(k)
			} else {
				fill(kv, field, depth+1)
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			fill(ev, field, depth+1)
			m.SetMapIndex(kv, ev)
		}
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(1_800_000_000, 0)))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.IsExported() {
				fill(v.Field(i), f.Name, depth+1)
			}
		}
	}
}

// exporterNames returns every metric name on the exporter's /metrics, wired
// as `isp-checker serve` wires it, after one probe (so the labelled counters
// and the histogram have children). The probe goes to a closed port on
// loopback.
func exporterNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	holder := config.NewHolder("", reg)
	if err := holder.Reload(); err != nil {
		t.Fatal(err)
	}
	h := server.NewProbeHandler(server.ProbeOptions{
		Config:  holder,
		Probers: probers.All(),
		Metrics: server.NewSelfMetrics(reg),
	})
	// As `serve --speedtest.enable` wires the speed-test endpoints.
	speedtest.New(speedtest.Options{Registerer: reg})
	// And the Parker, as serve wires it.
	parker := server.NewParker(&http.Server{}, nil)
	reg.MustRegister(parker)
	defer func() { _ = parker.Shutdown(t.Context()) }()
	req := httptest.NewRequest(http.MethodGet, "/probe?module=tcp_connect&target=127.0.0.1:9", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "5")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("probe: %d %s", rec.Code, rec.Body)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// contractNames is every name in Emitted.
func contractNames() map[string]bool {
	all := map[string]bool{}
	for _, names := range Emitted {
		for _, n := range names {
			all[n] = true
		}
	}
	return all
}
