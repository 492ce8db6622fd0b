package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The binary parks icmp probes (server.Parker): a kept-alive connection
// serves probe after probe, under a route prefix too, and any other
// request after them.
func TestServeParksICMPProbes(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: icmp probes through the binary need root (raw sockets)")
		}
		t.Skip("needs root for raw ICMP sockets")
	}
	path := filepath.Join(t.TempDir(), "c.yml")
	cfg := "modules:\n  ping:\n    prober: icmp\n    icmp:\n      socket: privileged\n      packets: 3\n      interval: 50ms\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startServer(t, "--config.file="+path, "--web.route-prefix=/isp")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(url string) (status int, body string, reused bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), reused
	}
	for i := range 3 {
		status, body, reused := get(base + "/isp/probe?module=ping&target=127.0.0.1")
		if status != 200 || !strings.Contains(body, "\nprobe_success 1\n") || !strings.Contains(body, "\nprobe_icmp_packets_received 3\n") {
			t.Fatalf("probe %d: %d\n%s", i, status, body)
		}
		if i > 0 && !reused {
			t.Errorf("probe %d came on a new connection: the parked one was not kept", i)
		}
	}
	status, body, reused := get(base + "/isp/metrics")
	if status != 200 || !strings.Contains(body, `isp_checker_probes_total{module="ping",result="success"} 3`) || !reused ||
		!strings.Contains(body, "\nisp_checker_parked_probes_total 3\n") || !strings.Contains(body, `isp_checker_parked_connections{state="idle"} 0`) {
		t.Errorf("/metrics after parked probes: %d, reused %v\n%.400s", status, reused, body)
	}
	// The Parker read all three itself, the new connection's first too
	// (listenAndServe gives it the listener).
	if !strings.Contains(body, "\nisp_checker_parked_requests_read_total 3\n") {
		i := strings.Index(body, "isp_checker_parked_requests_read_total ")
		t.Errorf("the Parker did not read the three probes' requests itself: %.60s", body[max(i, 0):])
	}
}
