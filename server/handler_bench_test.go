package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProbeHTTP is one /probe?module=http_2xx of a loopback site, from
// request to exposition, as Prometheus would scrape it.
func BenchmarkProbeHTTP(b *testing.B) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>ok</html>"))
	}))
	defer site.Close()
	h := loadedProbeHandler(b, "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
		ProbeOptions{History: NewHistory(100)})
	url := "/probe?module=http_2xx&target=" + site.URL
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
