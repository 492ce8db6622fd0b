package collector

import (
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/prober"
)

func TestMTUMetrics(t *testing.T) {
	r := &prober.MTUResult{PathMTUBytes: 1400, MaxSizeBytes: 1500, Method: prober.MTUMethodSearch, BlackHole: true}
	r.Success = true
	got := renderSamples(t, r, RenderMTU)
	for k, v := range map[string]float64{
		"probe_path_mtu_bytes":          1400,
		"probe_path_mtu_max_size_bytes": 1500,
		"probe_path_mtu_black_hole":     1,
		"probe_success":                 1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// No path MTU found: no mtu metrics, only probe_success 0.
	got = renderSamples(t, &prober.MTUResult{}, RenderMTU)
	for k := range got {
		if strings.HasPrefix(k, "probe_path_mtu") {
			t.Errorf("unexpected %s", k)
		}
	}
}
