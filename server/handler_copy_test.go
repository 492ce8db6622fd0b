package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"unsafe"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/probers"
)

// The request a probe is given (which a parked probe holds for its whole
// wait) shares no memory with the request's URL: the query's values are
// slices of the request line, which would stay alive whole.
func TestProbeRequestCopiesQuery(t *testing.T) {
	var got *prober.Request
	table := append(testProbers(), probers.Prober{Name: "test_capture",
		Render: collector.RendererOf(func(*blockResult, *collector.Emitter) {}),
		Probe: func(_ context.Context, req *prober.Request) prober.Result {
			got = req
			return &blockResult{Common: prober.Common{Success: true}}
		}})
	cfg := withTestModules(t, testConfig)
	m := config.DefaultModule()
	m.Prober = "test_capture"
	cfg.Modules["capture"] = &m
	holder := config.NewHolder("", nil)
	holder.Set(cfg)
	h := NewProbeHandler(ProbeOptions{Config: holder, Probers: table})
	r := httptest.NewRequest(http.MethodGet, "/probe?module=capture&target=example.test&hostname=host.example.test", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || got == nil {
		t.Fatalf("status %d, probe ran: %v\n%s", w.Code, got != nil, w.Body)
	}
	q := r.URL.RawQuery
	lo := uintptr(unsafe.Pointer(unsafe.StringData(q))) //nolint:gosec // comparing addresses only
	for name, s := range map[string]string{"module": got.ModuleName, "target": got.Target, "hostname": got.Hostname} {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p >= lo && p < lo+uintptr(len(q)) { //nolint:gosec // comparing addresses only
			t.Errorf("the request's %s %q is a slice of the query %q", name, s, q)
		}
	}
}
