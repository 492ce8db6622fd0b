package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
)

// FuzzProbeRequest sends /probe arbitrary module, target, hostname, debug
// and X-Prometheus-Scrape-Timeout-Seconds values. Every answer is a 200 with
// the probe's metrics or a 400 with a one-line reason; nothing panics, and
// a target's password never shows.
//
// Run: go test ./collector/ -run '^$' -fuzz FuzzProbeRequest -fuzztime 60s
func FuzzProbeRequest(f *testing.F) {
	f.Add("echo", "http://u:s3cretpw@example.com/", "", "10", "true")
	f.Add("echo", "x", "a\r\nb", "NaN", "")
	f.Add("nope", "", "", "", "")
	f.Add("echo", strings.Repeat("a", 5000), "h:80", "1e308", "true")
	f.Add("echo", "x", "[::1]:80", "0.000001", "false")
	holder := config.NewHolder("", prometheus.NewRegistry())
	holder.Set(withTestModules(f, "modules: {}\n"))
	h := NewProbeHandler(ProbeOptions{Config: holder, Probers: testProbers(), History: NewHistory(10)})
	f.Fuzz(func(t *testing.T, module, target, hostname, timeout, debug string) {
		v := url.Values{"module": {module}, "target": {target}, "hostname": {hostname}, "debug": {debug}}
		r := httptest.NewRequest(http.MethodGet, "/probe?"+v.Encode(), nil)
		if timeout != "" && !strings.ContainsAny(timeout, "\r\n\x00") {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body := w.Body.String()
		switch w.Code {
		case http.StatusOK:
			if !strings.Contains(body, "probe_success") {
				t.Fatalf("200 without probe_success:\n%s", body)
			}
		case http.StatusBadRequest:
			if msg := strings.TrimSuffix(body, "\n"); msg == "" || strings.Contains(msg, "\n") || len(msg) > 600 {
				t.Fatalf("400 reason is not one short line: %q", body)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, body)
		}
		if u, err := url.Parse(target); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && len(pw) > 5 && strings.Contains(body, pw) {
				t.Fatalf("the target's password shows:\n%s", body)
			}
		}
	})
}
