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

// common is a Result's Common; a failure's err is also its Cause, as
// Common.Fail sets them for a message without a wrapped error.
func common(name, target string, ok bool, err string) prober.Common {
	return prober.Common{Prober: name, Target: target, Success: ok, Error: err, Cause: err, StartedAt: Start, DurationSeconds: 1, TimeoutSeconds: 10}
}

// Failed fails c as Common.Fail does for a message without a wrapped
// error: msg is its Error and its Cause.
func Failed(c *prober.Common, msg string) {
	c.Success, c.Error, c.Cause = false, msg, msg
}

// FailStep fails c as Common.FailStep does: Error is the step and the
// cause, Cause the cause alone.
func FailStep(c *prober.Common, step, cause string) {
	c.Success, c.Error, c.Cause = false, step+": "+cause, cause
}

// Ping is a ping of packets echo requests with received replies, a mean
// round-trip time and jitter in seconds.
func Ping(target string, sent, received int, rtt, jitter float64) *prober.ICMPResult {
	err := ""
	if received == 0 {
		err = fmt.Sprintf("no reply to any of %d echo requests", sent)
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

// IntegrityName is the name that cannot exist of the synthetic checks.
const IntegrityName = "isp-checker-mfrggzdfmztwq2lk.invalid."

// DNS is a query through server that succeeded (in seconds) or failed
// (three attempts of 2 s), with the query for a name that cannot exist
// answered NXDOMAIN (or lost, when the resolver fails).
func DNS(server string, ok bool, seconds float64) diagnose.DNSCheck {
	r := &prober.DNSResult{Common: common("dns", server, ok, ""), Transport: "udp", Server: server + ":53", QueryName: DNSName + ".", QueryType: "A", QueryClass: "IN"}
	c := diagnose.DNSCheck{Server: server, Attempts: 1, Result: r, WaitedSeconds: seconds}
	if ok {
		r.QuerySucceeded, r.Rcode, r.AnswerRRs = true, "NOERROR", 1
		r.Phases.RequestSeconds = seconds
		r.Answer = []string{DNSName + ".\t300\tIN\tA\t" + Target1}
		c.Integrity = Integrity(server, "")
	} else {
		c.Attempts, c.WaitedSeconds = 3, 6
		FailStep(&r.Common, "error while sending a DNS query", "no complete answer from "+server+":53 before the probe timeout: i/o timeout")
		r.Cause = "no complete answer: i/o timeout" // the prober's short form
		c.Integrity = &prober.DNSResult{Common: r.Common, Transport: "udp", Server: server + ":53",
			QueryName: IntegrityName, QueryType: "A", QueryClass: "IN"}
	}
	return c
}

// Integrity is the answer to the name that cannot exist: NXDOMAIN, or an
// A record for answer (a resolver that rewrites NXDOMAIN).
func Integrity(server, answer string) *prober.DNSResult {
	r := &prober.DNSResult{Common: common("dns", server, false, "rcode NXDOMAIN is not one of the valid rcodes NOERROR"),
		Transport: "udp", Server: server + ":53", QueryName: IntegrityName, QueryType: "A", QueryClass: "IN",
		QuerySucceeded: true, Rcode: "NXDOMAIN"}
	r.Phases.RequestSeconds = 0.01
	if answer != "" {
		r.Success, r.Error, r.Cause, r.Rcode, r.AnswerRRs = true, "", "", "NOERROR", 1
		r.Answer = []string{IntegrityName + "\t60\tIN\tA\t" + answer}
	}
	return r
}

// MTU is a path-MTU search that found mtu bytes (a black hole when
// blackHole) below a 1500-byte link.
func MTU(target string, mtu int, blackHole bool) *prober.MTUResult {
	r := &prober.MTUResult{Common: common("mtu", target, true, ""), PathMTUBytes: mtu, Method: prober.MTUMethodLocal,
		BlackHole: blackHole, MinSizeBytes: 576, MaxSizeBytes: 1500, Interface: "eth0", InterfaceMTUBytes: 1500,
		Rounds: 1, ProbesSent: 9, RTTSeconds: 0.012}
	r.IPAddr, r.IPProtocol = target, 4
	if blackHole {
		r.Method, r.Rounds, r.ProbesSent = prober.MTUMethodSearch, 3, 40
	}
	return r
}

// NoPermission is a check that could not run: no permission to open its
// socket, with the fix in the error as the icmp prober writes it.
func NoPermission(c *prober.Common) {
	c.Reason = prober.ReasonPermission
	FailStep(c, "cannot probe target", "no ICMP socket is allowed (raw: operation not permitted; datagram: permission denied): "+
		"raw sockets need CAP_NET_RAW: run as root or grant it with `setcap cap_net_raw+ep /usr/bin/isp-checker`; "+
		"unprivileged ICMP sockets need the process's group (gid 65534) inside net.ipv4.ping_group_range (now \"1 0\"): "+
		"allow it with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`; or use protocol: tcp")
}

// NoRoute is a ping that could not leave this host: no route.
func NoRoute(target string) *prober.ICMPResult {
	r := Ping(target, 0, 0, 0, 0)
	r.Reason = prober.ReasonNoRoute
	FailStep(&r.Common, "cannot probe target", "sending echo request: write ip4 0.0.0.0->"+target+": sendto: network is unreachable")
	return r
}

// HTTP is a request to url that succeeded (200) or was refused.
func HTTP(url string, ok bool) *prober.HTTPResult {
	r := &prober.HTTPResult{Common: common("http", url, ok, ""), URL: url, FinalURL: url}
	if ok {
		r.StatusCode, r.HTTPVersion, r.SSL, r.DurationSeconds = 200, "HTTP/2.0", true, 0.125
	} else {
		FailStep(&r.Common, "HTTP request failed", `Get "`+url+`": dial tcp 203.0.113.99:443: connect: connection refused`)
		r.Cause = "connect: connection refused" // without net/http's operation and address
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
		MTU:  MTU(Target1, 1500, false),
	}
	r.Plan.Options = config.DefaultISPProbe()
	return r
}

// Scenario returns a diagnosed synthetic connection: healthy, lan (30 %
// loss at the gateway), isp (30 % loss from hop 3 on), dns (every resolver
// silent), remote (one of two web sites refuses), bufferbloat (the speed
// test's latency rises by 250 ms), unknown (no permission to ping or
// trace), noroute (the link is down), rewrite (a resolver answers a name
// that cannot exist), portal (a captive portal) or blackhole (a path-MTU
// black hole at 1400 bytes).
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
	case "unknown":
		for _, p := range append([]*prober.ICMPResult{c.Gateway}, c.Targets...) {
			*p = *Ping(p.Target, 0, 0, 0, 0)
			NoPermission(&p.Common)
		}
		c.Trace = &prober.TracerouteResult{Common: common("traceroute", Target1, false, ""), Protocol: "icmp", FirstHop: 1, MaxHops: 30, PacketsPerHop: 5}
		NoPermission(&c.Trace.Common)
		Failed(&c.Trace.Common, "cannot trace target: raw socket: operation not permitted: raw sockets need CAP_NET_RAW")
		c.Hops = nil
		c.MTU = &prober.MTUResult{Common: common("mtu", Target1, false, "")}
		NoPermission(&c.MTU.Common)
		FailStep(&c.MTU.Common, "cannot probe target", "listen ip4:icmp 0.0.0.0: socket: operation not permitted")
	case "noroute":
		c.Gateway = NoRoute(Gateway)
		for i, t := range c.Targets {
			c.Targets[i] = NoRoute(t.Target)
		}
		c.Trace = &prober.TracerouteResult{Common: common("traceroute", Target1, false, "no probe could be sent: sendto: network is unreachable"), Protocol: "icmp"}
		c.Trace.Reason, c.Hops, c.MTU = prober.ReasonNoRoute, nil, nil
		for i, d := range c.DNS {
			c.DNS[i] = DNS(d.Server, false, 0)
			FailStep(&c.DNS[i].Result.Common, "error while sending a DNS query", "dial udp "+d.Server+":53: connect: network is unreachable")
			c.DNS[i].Result.Cause = "connect: network is unreachable"
			c.DNS[i].Result.Reason, c.DNS[i].Integrity.Reason = prober.ReasonNoRoute, prober.ReasonNoRoute
		}
		for i, h := range c.HTTP {
			c.HTTP[i] = HTTP(h.Target, false)
			FailStep(&c.HTTP[i].Common, "HTTP request failed", `Get "`+h.Target+`": dial tcp 203.0.113.99:443: connect: network is unreachable`)
			c.HTTP[i].Cause = "connect: network is unreachable"
			c.HTTP[i].Reason = prober.ReasonNoRoute
		}
	case "rewrite":
		c.DNS[1].Integrity = Integrity(DNS2, "198.51.100.80")
	case "portal":
		const portal = "http://192.0.2.1:8080/login"
		for i, t := range c.Targets {
			c.Targets[i] = Ping(t.Target, 30, 0, 0, 0)
		}
		c.Trace = &prober.TracerouteResult{Common: common("traceroute", Target1, false, "destination not reached: the last answer came from hop 1 (192.0.2.1); TTLs 2-30 got none"),
			Protocol: "icmp", FirstHop: 1, MaxHops: 30, PacketsPerHop: 5, HopCount: 1,
			Hops: []prober.TracerouteHop{{TTL: 1, Address: Gateway, Sent: 5, Received: 5, RTTMeanSeconds: 0.0008}}}
		c.Hops, c.MTU = nil, nil
		for i, d := range c.DNS {
			c.DNS[i].Integrity = Integrity(d.Server, Gateway)
		}
		for _, h := range c.HTTP {
			h.FinalURL, h.Redirects, h.SSL = portal, 1, false
		}
	case "blackhole":
		c.MTU = MTU(Target1, 1400, true)
	default:
		panic("diagnosetest: no scenario " + name)
	}
	diagnose.Diagnose(r)
	if r.Verdict == diagnose.VerdictDown || r.Verdict == diagnose.VerdictUnknown {
		r.Success, r.Error = false, r.Summary
	} else {
		r.Success = true
	}
	return r
}

// Scenarios are the names Scenario knows.
var Scenarios = []string{"healthy", "lan", "isp", "dns", "remote", "bufferbloat", "unknown", "noroute", "rewrite", "portal", "blackhole"}
