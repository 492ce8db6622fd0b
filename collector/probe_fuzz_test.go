package collector

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
)

// test_echo is a prober that sends nothing: it logs its target and succeeds,
// so the fuzzer can drive /probe with any parameters and no traffic.
func init() {
	config.Probers = append(config.Probers, "test_echo")
	prober.Register("test_echo", func(_ context.Context, req prober.Request) prober.Result {
		req.Logger.Info("echo", "hostname", req.Hostname)
		return &blockResult{Common: prober.Common{Success: true}}
	})
}

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
	cfg, err := config.Load([]byte("modules:\n  echo: {prober: test_echo}\n"), "")
	if err != nil {
		f.Fatal(err)
	}
	holder.Set(cfg)
	h := NewProbeHandler(ProbeOptions{Config: holder, History: NewHistory(10)})
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
