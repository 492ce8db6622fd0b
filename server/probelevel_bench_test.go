package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/isp-checker/isp-checker/internal/syncbuf"
)

// BenchmarkProbeHTTPProbeLog is BenchmarkProbeHTTP with serve's probe
// logger at its default level (--log.prober=info, nothing printed for a
// probe that succeeds): what the tee and its lazy handlers cost.
func BenchmarkProbeHTTPProbeLog(b *testing.B) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>ok</html>"))
	}))
	defer site.Close()
	var printed syncbuf.Buffer
	h := loadedProbeHandler(b, "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
		ProbeOptions{History: NewHistory(100), ProbeLog: slog.NewTextHandler(&printed, &slog.HandlerOptions{Level: slog.LevelInfo})})
	url := "/probe?module=http_2xx&target=" + site.URL
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
	if out := printed.String(); out != "" {
		b.Fatalf("a probe that succeeded printed:\n%s", out)
	}
}
