// Package diagnosetest builds synthetic diagnoses — Results with fixed
// values, as the probers would return them — for the tests of the rules,
// the reports and the metrics. It is for tests only.
package diagnosetest

import (
	"fmt"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/diagnose"
	"github.com/isp-checker/isp-checker/prober"
)

// Start is the fixed start time of every synthetic check.
var Start = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// Addresses of the synthetic network (documentation ranges).
const (
	Gateway  = "192.0.2.1"
	ISP1     = "198.51.100.1"
	ISP2     = "198.51.100.2"
	Target1  = "203.0.113.10"
	Target2  = "203.0.113.20"
	Target3  = "203.0.113.30"
	DNS1     = "198.51.100.53"
	DNS2     = "198.51.100.54"
	Site1    = "https://a.example/"
	Site2    = "https://b.example/"
	SpeedURL = "https://speed.example/download"
	DNSName  = "example.com"
)

func common(name, target string, ok bool, err string) prober.Common {
	return prober.Common{Prober: name, Target: target, Success: ok, Error: err, StartedAt: Start, DurationSeconds: 1, TimeoutSeconds: 10}
}

// Ping is a ping of packets echo requests with received replies, a mean
// round-trip time and jitter in seconds.
func Ping(target string, sent, received int, rtt, jitter float64) *prober.ICMPResult {
	err := ""
	if received == 0 {
		err = fmt.Sprintf("probe failed: no reply to any of %d echo requests", sent)
	}
	r := &prober.ICMPResult{Common: common("icmp", target, received > 0, err), Protocol: "icmp",
		PacketsPlanned: sent, PacketsSent: sent, PacketsReceived: received}
	r.IPAddr, r.IPProtocol = target, 4
	if sent > 0 {
		r.LossRatio = float64(sent-received) / float64(sent)
	}
	if received > 0 {
		r.RTTMeanSeconds, r.RTTMinSeconds, r.RTTMaxSeconds = rtt, rtt-jitter/2, rtt+jitter
		if received > 1 {
			r.JitterSeconds = jitter
		}
	}
	return r
}

// Clean is a ping with no loss.
func Clean(target string, rtt float64) *prober.ICMPResult { return Ping(target, 30, 30, rtt, rtt/10) }

// Lossy is a ping that lost ratio of 30 packets.
func Lossy(target string, ratio, rtt float64) *prober.ICMPResult {
	return Ping(target, 30, 30-int(ratio*30+0.5), rtt, rtt/10)
}

// Trace is a trace reaching the last address of hops (gateway first).
func Trace(hops ...string) *prober.TracerouteResult {
	t := &prober.TracerouteResult{Common: common("traceroute", hops[len(hops)-1], true, ""), Protocol: "icmp",
		FirstHop: 1, MaxHops: 30, PacketsPerHop: 3, HopCount: len(hops), DestinationReached: true}
	t.IPAddr = hops[len(hops)-1]
	for i, a := range hops {
		h := prober.TracerouteHop{TTL: i + 1, Address: a, Sent: 3, Received: 3, RTTMeanSeconds: 0.001 * float64(i+1)}
		if a == prober.TracerouteSilentAddress {
			h.Received, h.LossRatio, h.RTTMeanSeconds = 0, 1, 0
		}
		h.Destination = i == len(hops)-1
		t.Hops = append(t.Hops, h)
		t.PacketsSent += 3
	}
	return t
}

// DNS is a query through server that succeeded (in seconds) or failed.
func DNS(server string, ok bool, seconds float64) diagnose.DNSCheck {
	r := &prober.DNSResult{Common: common("dns", server, ok, ""), Transport: "udp", Server: server + ":53", QueryName: DNSName + ".", QueryType: "A", QueryClass: "IN"}
	c := diagnose.DNSCheck{Server: server, Attempts: 1, Result: r}
	if ok {
		r.QuerySucceeded, r.Rcode, r.AnswerRRs = true, "NOERROR", 1
		r.Phases.RequestSeconds = seconds
		r.Answer = []string{DNSName + ".\t300\tIN\tA\t" + Target1}
	} else {
		c.Attempts = 3
		r.Error = "error while sending a DNS query: no complete answer from " + server + ":53 before the probe timeout: i/o timeout"
	}
	return c
}

// HTTP is a request to url that succeeded (200) or was refused.
func HTTP(url string, ok bool) *prober.HTTPResult {
	r := &prober.HTTPResult{Common: common("http", url, ok, ""), URL: url, FinalURL: url}
	if ok {
		r.StatusCode, r.HTTPVersion, r.SSL, r.DurationSeconds = 200, "HTTP/2.0", true, 0.125
	} else {
		r.Error = `HTTP request failed: Get "` + url + `": dial tcp 203.0.113.99:443: connect: connection refused`
		r.DurationSeconds = 0.002
	}
	return r
}

// Speed is a speed test with an idle and a loaded latency (seconds).
func Speed(idle, loaded float64) *prober.ThroughputResult {
	return &prober.ThroughputResult{Common: common("throughput", SpeedURL, true, ""), URL: SpeedURL, Direction: "download",
		Connections: 4, ConnectionsOpened: 4, Requests: 4, StatusCode: 200, Bytes: 62_500_000, BytesPerSecond: 12_500_000,
		TransferSeconds: 5, RateWindowSeconds: 4, RampUpSeconds: 1, PlannedSeconds: 5, StopReason: "duration",
		LatencyProtocol: "tcp", LatencyIdleSeconds: idle, LatencyLoadedSeconds: loaded,
		LatencyIdleSamples: 10, LatencyLoadedSamples: 40, ResponsivenessRPM: 60 / loaded}
}

// Healthy returns the checks of a healthy connection: gateway, three
// targets, a trace with hop pings, two resolvers, two web sites.
func Healthy() *diagnose.ISPResult {
	r := &diagnose.ISPResult{Thresholds: diagnose.ThresholdsFrom(config.DefaultISPThresholds())}
	r.Prober, r.Target, r.StartedAt, r.DurationSeconds, r.TimeoutSeconds = "isp", Target1, Start, 7.25, 60
	r.Plan = diagnose.Plan{
		Gateway: Gateway, GatewaySource: diagnose.SourceRoute,
		Targets:    []string{Target1, Target2, Target3},
		DNSServers: []string{DNS1, DNS2}, DNSSource: diagnose.SourceResolvConf, DNSName: DNSName,
		HTTPURLs: []string{Site1, Site2},
	}
	r.Checks = diagnose.Checks{
		Gateway: Clean(Gateway, 0.0008),
		Targets: []*prober.ICMPResult{Clean(Target1, 0.012), Clean(Target2, 0.015), Clean(Target3, 0.021)},
		Trace:   Trace(Gateway, ISP1, ISP2, Target1),
		Hops: []diagnose.HopCheck{
			{TTL: 2, Address: ISP1, Ping: Clean(ISP1, 0.006)},
			{TTL: 3, Address: ISP2, Ping: Clean(ISP2, 0.009)},
		},
		DNS:  []diagnose.DNSCheck{DNS(DNS1, true, 0.011), DNS(DNS2, true, 0.019)},
		HTTP: []*prober.HTTPResult{HTTP(Site1, true), HTTP(Site2, true)},
	}
	return r
}

// Scenario returns a diagnosed synthetic connection: healthy, lan (30 %
// loss at the gateway), isp (30 % loss from hop 3 on), dns (every resolver
// silent), remote (one of two web sites refuses) or bufferbloat (the speed
// test's latency rises by 250 ms).
func Scenario(name string) *diagnose.ISPResult {
	r := Healthy()
	c := &r.Checks
	switch name {
	case "healthy":
	case "lan":
		c.Gateway = Lossy(Gateway, 0.3, 0.0009)
		for i, t := range c.Targets {
			c.Targets[i] = Lossy(t.Target, 0.3, t.RTTMeanSeconds)
		}
		for i, h := range c.Hops {
			c.Hops[i].Ping = Lossy(h.Address, 0.3, h.Ping.RTTMeanSeconds)
		}
	case "isp":
		for i, t := range c.Targets {
			c.Targets[i] = Lossy(t.Target, 0.3, t.RTTMeanSeconds)
		}
		c.Hops[1].Ping = Lossy(ISP2, 0.3, 0.009)
	case "dns":
		c.DNS = []diagnose.DNSCheck{DNS(DNS1, false, 0), DNS(DNS2, false, 0)}
	case "remote":
		c.HTTP[1] = HTTP(Site2, false)
	case "bufferbloat":
		r.Plan.SpeedURL = SpeedURL
		c.Throughput = Speed(0.015, 0.265)
	default:
		panic("diagnosetest: no scenario " + name)
	}
	diagnose.Diagnose(r)
	if r.Verdict == diagnose.VerdictDown {
		r.Success, r.Error = false, r.Summary
	} else {
		r.Success = true
	}
	return r
}

// Scenarios are the names Scenario knows.
var Scenarios = []string{"healthy", "lan", "isp", "dns", "remote", "bufferbloat"}
