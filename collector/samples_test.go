package collector

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/isp-checker/isp-checker/prober"
)

// renderSamples renders a result into a registry, lints it, and returns the
// samples as "name{labels}" → value.
func renderSamples(t *testing.T, res prober.Result) map[string]float64 {
	t.Helper()
	e := NewEmitter(nil)
	Render(res, e)
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return gatheredSamples(mfs)
}

// gatheredSamples maps "name{label=value,…}" to each sample's value.
func gatheredSamples(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}
