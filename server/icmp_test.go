package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/samples"
)

// End to end: /probe with a blackbox icmp module against 127.0.0.1 sends
// one echo request and answers with blackbox's metrics alone; a multi-packet
// module on the same clean path reports loss 0 and every statistic.
func TestICMPProbeHandlerLoopback(t *testing.T) {
	needRawICMP(t)
	s := httptest.NewServer(loadedProbeHandler(t, `
modules:
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
  ping:
    prober: icmp
    timeout: 5s
    icmp:
      packets: 10
      interval: 10ms
      fail_if_loss_ratio_above: 0
`, ProbeOptions{}))
	defer s.Close()
	scrape := func(query string) map[string]float64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/probe?"+query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return parseMetrics(t, string(body))
	}

	bb := scrape("module=icmp&target=127.0.0.1")
	if k := samples.Keys(bb, "probe_icmp_"); k != samples.Set(samples.ICMPPhases, "probe_icmp_reply_hop_limit") {
		t.Errorf("blackbox module metrics: %s", k)
	}
	for k, v := range map[string]float64{"probe_success": 1, "probe_icmp_reply_hop_limit": 64, "probe_ip_protocol": 4} {
		if bb[k] != v {
			t.Errorf("blackbox module: %s = %v, want %v", k, bb[k], v)
		}
	}
	if rtt := bb["probe_icmp_duration_seconds{phase=rtt}"]; rtt <= 0 || rtt > 0.5 {
		t.Errorf("rtt phase %v", rtt)
	}

	ping := scrape("module=ping&target=::1")
	if k := samples.Keys(ping, "probe_icmp_"); k != samples.Set(samples.ICMPPhases, samples.ICMPCounts, "probe_icmp_jitter_seconds probe_icmp_reply_hop_limit", samples.ICMPRTTStats) {
		t.Errorf("multi-packet metrics: %s", k)
	}
	for k, v := range map[string]float64{"probe_success": 1, "probe_icmp_packets_sent": 10, "probe_icmp_packets_received": 10,
		"probe_icmp_packet_loss_ratio": 0, "probe_icmp_duplicates": 0, "probe_ip_protocol": 6} {
		if ping[k] != v {
			t.Errorf("multi-packet: %s = %v, want %v", k, ping[k], v)
		}
	}
	if ping["probe_icmp_rtt_mean_seconds"] != ping["probe_icmp_duration_seconds{phase=rtt}"] {
		t.Errorf("rtt phase %v is not the mean %v", ping["probe_icmp_duration_seconds{phase=rtt}"], ping["probe_icmp_rtt_mean_seconds"])
	}
}
