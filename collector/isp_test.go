package collector

import (
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/diagnose"
	dt "github.com/isp-checker/isp-checker/internal/diagnosetest"
)

// TestISPMetrics renders synthetic diagnoses, lints them (promlint, via
// testutil.GatherAndLint in icmpRender) and checks the values alerts use.
func TestISPMetrics(t *testing.T) {
	for _, tc := range []struct {
		scenario, fault string
		verdict, score  float64 // score -1: absent
		success         float64
	}{
		{"healthy", "none", 0, 0.95, 1},
		{"lan", "lan", 1, 0, 1},
		{"isp", "isp", 1, 0, 1},
		{"dns", "dns", 2, 0, 0},
		{"remote", "remote", 1, 0.95, 1},
		{"bufferbloat", "isp", 1, 0, 1},
		{"unknown", "unknown", 4, -1, 0},
		{"noroute", "lan", 2, 0, 0},
		{"rewrite", "dns", 1, 0.493, 1},
		{"portal", "lan", 2, 0, 0},
		{"blackhole", "isp", 1, 0.95, 1},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			m := renderSamples(t, dt.Scenario(tc.scenario), RenderISP)
			for _, s := range diagnose.Segments {
				want := 0.0
				if s == tc.fault {
					want = 1
				}
				if got, ok := m["probe_isp_fault{segment="+s+"}"]; !ok || got != want {
					t.Errorf("probe_isp_fault{segment=%s} = %v (present %v), want %v", s, got, ok, want)
				}
			}
			score, scored := m["probe_isp_health_score"]
			if m["probe_isp_verdict"] != tc.verdict || scored != (tc.score >= 0) || scored && score != tc.score || m["probe_success"] != tc.success {
				t.Errorf("verdict %v score %v (present %v) success %v; want %v %v %v", m["probe_isp_verdict"], score, scored, m["probe_success"], tc.verdict, tc.score, tc.success)
			}
			if got, ok := m["probe_isp_dimension_score{dimension=loss}"]; ok != (tc.scenario != "unknown") || ok && (tc.scenario == "lan" || tc.scenario == "isp" || tc.scenario == "noroute" || tc.scenario == "portal") != (got == 0) {
				t.Errorf("loss score %v (present %v)", got, ok)
			}
			_, bloat := m["probe_isp_dimension_score{dimension=bufferbloat}"]
			if bloat != (tc.scenario == "bufferbloat") {
				t.Errorf("bufferbloat score present: %v (only measured with a speed test)", bloat)
			}
		})
	}
	m := renderSamples(t, dt.Scenario("remote"), RenderISP)
	for key, want := range map[string]float64{
		"probe_isp_check_success{check=gateway,target=192.0.2.1}":       1,
		"probe_isp_check_success{check=ping,target=203.0.113.10}":       1,
		"probe_isp_check_success{check=dns,target=198.51.100.53}":       1,
		"probe_isp_check_success{check=http,target=https://a.example/}": 1,
		"probe_isp_check_success{check=http,target=https://b.example/}": 0,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	// A check that could not run is neither a pass nor a failure: no series.
	m = renderSamples(t, dt.Scenario("unknown"), RenderISP)
	for key, want := range map[string]float64{
		"probe_isp_check_success{check=dns,target=198.51.100.53}":       1,
		"probe_isp_check_success{check=http,target=https://a.example/}": 1,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	for key := range m {
		if strings.HasPrefix(key, "probe_isp_check_success{check=ping") || strings.HasPrefix(key, "probe_isp_check_success{check=gateway") ||
			strings.HasPrefix(key, "probe_isp_check_success{check=mtu") {
			t.Errorf("%s present for a ping that could not run", key)
		}
	}
	// The mtu check passes unless a black hole was found.
	if got := renderSamples(t, dt.Scenario("blackhole"), RenderISP)["probe_isp_check_success{check=mtu,target=203.0.113.10}"]; got != 0 {
		t.Errorf("mtu check with a black hole = %v, want 0", got)
	}
	// A diagnosis that never ran has only the common metrics.
	r := &diagnose.ISPResult{}
	r.Error = "diagnosis not started: context canceled"
	m = renderSamples(t, r, RenderISP)
	if _, ok := m["probe_isp_health_score"]; ok || m["probe_success"] != 0 {
		t.Errorf("metrics of a diagnosis that did not run: %v", m)
	}
}
