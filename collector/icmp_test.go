package collector

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
)

// icmpSet sorts a space-separated list of metric keys.
func icmpSet(keys ...string) string {
	f := strings.Fields(strings.Join(keys, " "))
	sort.Strings(f)
	return strings.Join(f, " ")
}

func icmpKeys(m map[string]float64) string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, "probe_icmp_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

const (
	icmpPhases  = "probe_icmp_duration_seconds{phase=resolve} probe_icmp_duration_seconds{phase=rtt} probe_icmp_duration_seconds{phase=setup}"
	icmpCounts  = "probe_icmp_duplicates probe_icmp_packet_loss_ratio probe_icmp_packets_received probe_icmp_packets_sent"
	icmpRTTStat = "probe_icmp_rtt_max_seconds probe_icmp_rtt_mean_seconds probe_icmp_rtt_min_seconds probe_icmp_rtt_stddev_seconds"
)

// Which metrics each kind of result has, and their values.
func TestICMPRender(t *testing.T) {
	hop := 57
	ok := &prober.ICMPResult{
		Common:          prober.Common{Success: true, Resolved: true, DNSLookupSeconds: 0.002, IPProtocol: 4, IPAddr: "192.0.2.1"},
		MultiPacket:     true,
		PacketsPlanned:  4,
		PacketsSent:     4,
		PacketsReceived: 3, Duplicates: 1, LossRatio: 0.25,
		SetupSeconds: 0.001, RTTMinSeconds: 0.01, RTTMaxSeconds: 0.03, RTTMeanSeconds: 0.02, RTTStddevSeconds: 0.008, JitterSeconds: 0.005,
		HopLimit: &hop,
	}
	one := &prober.ICMPResult{
		Common:      prober.Common{Success: true, Resolved: true, IPProtocol: 6, IPAddr: "::1"},
		PacketsSent: 1, PacketsReceived: 1, PacketsPlanned: 1, RTTMinSeconds: 0.0001, RTTMaxSeconds: 0.0001, RTTMeanSeconds: 0.0001,
		HopLimit: new(int), // 0 is a valid IPv6 hop limit
	}
	lost := &prober.ICMPResult{
		Common:      prober.Common{Resolved: true, IPProtocol: 4, IPAddr: "192.0.2.1"},
		MultiPacket: true, PacketsSent: 5, PacketsPlanned: 5, LossRatio: 1,
	}
	unresolved := &prober.ICMPResult{Common: prober.Common{Resolved: true, DNSLookupSeconds: 0.5}}
	for _, tc := range []struct {
		name string
		res  *prober.ICMPResult
		keys string
		want map[string]float64
	}{
		{"multi-packet", ok, icmpSet(icmpPhases, icmpCounts, "probe_icmp_jitter_seconds probe_icmp_reply_hop_limit", icmpRTTStat),
			map[string]float64{
				"probe_icmp_duration_seconds{phase=resolve}": 0.002, "probe_icmp_duration_seconds{phase=setup}": 0.001,
				"probe_icmp_duration_seconds{phase=rtt}": 0.02, "probe_icmp_reply_hop_limit": 57,
				"probe_icmp_packets_sent": 4, "probe_icmp_packets_received": 3, "probe_icmp_duplicates": 1,
				"probe_icmp_packet_loss_ratio": 0.25, "probe_icmp_rtt_min_seconds": 0.01, "probe_icmp_rtt_max_seconds": 0.03,
				"probe_icmp_rtt_mean_seconds": 0.02, "probe_icmp_rtt_stddev_seconds": 0.008, "probe_icmp_jitter_seconds": 0.005,
				"probe_success": 1,
			}},
		{"one packet (blackbox's series only)", one, icmpSet(icmpPhases, "probe_icmp_reply_hop_limit"),
			map[string]float64{"probe_icmp_reply_hop_limit": 0, "probe_icmp_duration_seconds{phase=rtt}": 0.0001, "probe_ip_protocol": 6}},
		{"multi-packet module, one packet fitted (no jitter)", &prober.ICMPResult{Common: one.Common, MultiPacket: true, PacketsSent: 1, PacketsReceived: 1, PacketsPlanned: 1,
			RTTMinSeconds: 0.0001, RTTMaxSeconds: 0.0001, RTTMeanSeconds: 0.0001}, icmpSet(icmpPhases, icmpCounts, icmpRTTStat),
			map[string]float64{"probe_icmp_packets_sent": 1, "probe_icmp_rtt_min_seconds": 0.0001}},
		{"all lost (no RTT statistics)", lost, icmpSet(icmpPhases, icmpCounts),
			map[string]float64{"probe_icmp_packet_loss_ratio": 1, "probe_icmp_packets_received": 0, "probe_success": 0,
				"probe_icmp_duration_seconds{phase=rtt}": 0}},
		{"not resolved (blackbox's three zero phases)", unresolved, icmpSet(icmpPhases),
			map[string]float64{"probe_icmp_duration_seconds{phase=resolve}": 0, "probe_dns_lookup_time_seconds": 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderSamples(t, tc.res)
			if k := icmpKeys(got); k != tc.keys {
				t.Errorf("metrics:\n got %s\nwant %s", k, tc.keys)
			}
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
		})
	}
}

// End to end: /probe with a blackbox icmp module against 127.0.0.1 sends
// one echo request and answers with blackbox's metrics alone; a multi-packet
// module on the same clean path reports loss 0 and every statistic.
func TestICMPProbeHandlerLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: the ICMP end-to-end test needs root (raw sockets)")
		}
		t.Skip("needs root for raw ICMP sockets")
	}
	cfg, err := config.Load([]byte(`
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
`), "")
	if err != nil {
		t.Fatal(err)
	}
	holder := config.NewHolder("", prometheus.NewRegistry())
	holder.Set(cfg)
	s := httptest.NewServer(NewProbeHandler(ProbeOptions{Config: holder}))
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
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		var list []*dto.MetricFamily
		for _, mf := range mfs {
			list = append(list, mf)
		}
		return gatheredSamples(list)
	}

	bb := scrape("module=icmp&target=127.0.0.1")
	if k := icmpKeys(bb); k != icmpSet(icmpPhases, "probe_icmp_reply_hop_limit") {
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
	if k := icmpKeys(ping); k != icmpSet(icmpPhases, icmpCounts, "probe_icmp_jitter_seconds probe_icmp_reply_hop_limit", icmpRTTStat) {
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
