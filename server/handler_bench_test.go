package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/isp-checker/isp-checker/internal/syncbuf"
)

// BenchmarkProbeHTTP is one /probe?module=http_2xx of a loopback site, from
// request to exposition, as Prometheus would scrape it.
func BenchmarkProbeHTTP(b *testing.B) {
	benchProbeHTTP(b, ProbeOptions{History: NewHistory(100)}, nil)
}

// BenchmarkProbeHTTPProbeLog is BenchmarkProbeHTTP with serve's probe
// logger at its default level (--log.prober=info, nothing printed for a
// probe that succeeds): what forwarding to it costs.
func BenchmarkProbeHTTPProbeLog(b *testing.B) {
	var printed syncbuf.Buffer
	benchProbeHTTP(b, ProbeOptions{History: NewHistory(100), ProbeLog: slog.NewTextHandler(&printed, &slog.HandlerOptions{Level: slog.LevelInfo})}, &printed)
}

// benchProbeHTTP probes a loopback site through a handler of o; printed,
// if set, is where o's probe logger writes, which must stay empty.
func benchProbeHTTP(b *testing.B, o ProbeOptions, printed *syncbuf.Buffer) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>ok</html>"))
	}))
	defer site.Close()
	h := loadedProbeHandler(b, "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n", o)
	url := "/probe?module=http_2xx&target=" + site.URL
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
	if printed != nil && printed.String() != "" {
		b.Fatalf("a probe that succeeded printed:\n%s", printed)
	}
}
