package prober

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkHTTPProtocols compares one whole http probe (resolve, handshake,
// GET of a small body, close) over HTTP/3 with the same probe over HTTPS
// with HTTP/2 and HTTP/1.1, against in-process servers on loopback. The
// servers' allocations are counted too, so the figures are upper bounds of
// the probe's own; the difference between the protocols is what enable_http3
// costs.
//
//	go test ./prober/ -run '^$' -bench BenchmarkHTTPProtocols -benchmem
func BenchmarkHTTPProtocols(b *testing.B) {
	valid, _, _ := tlsTestCerts(b)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	h2 := httpTestTLSServer(b, valid, true, ok)
	ca := httpTestCA(valid)
	h3 := http3TestServer(b, ok)
	cases := []struct{ name, target, yaml string }{
		{"http3", "https://127.0.0.1:" + strconv.Itoa(h3) + "/", http3TestModule + ca},
		{"http2", h2.URL, ca + "valid_http_versions: [\"HTTP/2.0\"]\n"},
		{"http1.1", h2.URL, ca + "enable_http2: false\n"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m := httpTestModule(b, c.yaml)
			b.ReportAllocs()
			for b.Loop() {
				res := probeTestRun[*HTTPResult](b, 10*time.Second, c.target, m)
				if !res.Success || !strings.HasPrefix(res.HTTPVersion, "HTTP/") {
					b.Fatalf("probe failed: %s", res.Error)
				}
			}
		})
	}
}
