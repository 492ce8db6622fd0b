package collector

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/isp-checker/isp-checker/internal/samples"
	"github.com/isp-checker/isp-checker/prober"
)

// renderSamples renders a result with its prober's view into a registry,
// lints it, and returns the samples as "name{labels}" → value.
func renderSamples[T prober.Result](t *testing.T, res T, view func(T, *Emitter)) map[string]float64 {
	t.Helper()
	e := NewEmitter(nil)
	Render(res, RendererOf(view), e)
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
	return samples.Of(mfs)
}
