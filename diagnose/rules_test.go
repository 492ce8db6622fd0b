package diagnose_test

import (
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/diagnose"
	dt "github.com/isp-checker/isp-checker/internal/diagnosetest"
	"github.com/isp-checker/isp-checker/prober"
)

// partialTrace is a trace that got answers up to the given hops only.
func partialTrace(target string, hops ...string) *prober.TracerouteResult {
	t := dt.Trace(append(hops, target)...)
	t.Hops = t.Hops[:len(hops)]
	t.HopCount, t.DestinationReached, t.Success = len(hops), false, false
	return t
}

// diagnosed is the healthy connection, changed by change (unless nil),
// diagnosed.
func diagnosed(change func(r *diagnose.ISPResult)) *diagnose.ISPResult {
	r := dt.Healthy()
	if change != nil {
		change(r)
	}
	diagnose.Diagnose(r)
	return r
}

func TestRules(t *testing.T) {
	tests := []struct {
		name    string
		change  func(r *diagnose.ISPResult)
		fault   string
		verdict string
		// evidence is a substring of the evidence, the first line's exact
		// text when it starts with "=", or its start after "^".
		evidence string
	}{
		{"healthy", nil, diagnose.FaultNone, diagnose.VerdictHealthy, "=every check passed: gateway 192.0.2.1 clean (0 % loss, 0.8 ms)"},
		{"interrupted is never healthy", func(r *diagnose.ISPResult) { r.Interrupted = true },
			diagnose.FaultUnknown, diagnose.VerdictUnknown, "^interrupted: the diagnosis was stopped"},
		{"interrupted pings are cut short by the interrupt, not a busy machine", func(r *diagnose.ISPResult) {
			r.Interrupted = true
			for _, p := range r.Checks.Targets {
				p.PacketsPlanned, p.PacketsSent, p.PacketsReceived = 30, 3, 3
			}
		}, diagnose.FaultUnknown, diagnose.VerdictUnknown, "only 3 of the 30 echo requests of a ping went out before the interrupt"},

		// The LAN: loss, latency or jitter at the gateway.
		{"gateway loss at the threshold is fine", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 20, 19, 0.001, 0.0001) // 1/20 = 5 %
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "every check passed"},
		// Loss at the gateway alone, with clean targets beyond it, is the
		// router rate-limiting ICMP to itself (as mtr reads a hop whose loss
		// does not carry on): a note, not a LAN fault.
		{"gateway loss alone is ICMP rate limiting, not the LAN", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 20, 15, 0.001, 0.0001)
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "=no fault found: the gateway 192.0.2.1 drops some pings to itself (25 % loss): ICMP rate limiting, harmless when the targets beyond are clean"},
		{"gateway loss that carries on beyond it", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 20, 18, 0.001, 0.0001)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Lossy(p.Target, 0.1, p.RTTMeanSeconds)
			}
		}, diagnose.FaultLAN, diagnose.VerdictDegraded, "=10 % loss already at the gateway 192.0.2.1 (threshold 5 %) → LAN"},
		{"gateway latency at the threshold is fine", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.050, 0.001)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Clean(p.Target, 0.050+p.RTTMeanSeconds)
			}
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "every check passed"},
		{"gateway latency above the threshold", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 30, 0.051, 0.001)
		}, diagnose.FaultLAN, diagnose.VerdictDegraded, "=51 ms mean round-trip time already at the gateway 192.0.2.1 (threshold 50 ms) → LAN"},
		{"gateway jitter and loss", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 27, 0.004, 0.031)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Lossy(p.Target, 0.1, p.RTTMeanSeconds)
			}
		}, diagnose.FaultLAN, diagnose.VerdictDegraded, "=10 % loss and 31 ms jitter already at the gateway 192.0.2.1 (thresholds 5 %, 30 ms) → LAN"},
		{"gateway jitter with loss at the gateway alone", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 27, 0.004, 0.031)
		}, diagnose.FaultLAN, diagnose.VerdictDegraded, "=31 ms jitter already at the gateway 192.0.2.1 (threshold 30 ms) → LAN"},
		{"gateway loss wins over loss beyond it", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Lossy(dt.Gateway, 0.3, 0.001)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 30, 0, 0, 0)
			}
		}, diagnose.FaultLAN, diagnose.VerdictDegraded, "30 % loss already at the gateway"},
		{"nothing answers", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 0, 0, 0)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 30, 0, 0, 0)
			}
		}, diagnose.FaultLAN, diagnose.VerdictDown, "no reply from the gateway 192.0.2.1 (30 echo requests) nor from any internet target"},
		{"a gateway that filters ping is not held against the LAN", func(r *diagnose.ISPResult) {
			r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 0, 0, 0)
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "the gateway 192.0.2.1 does not answer ping (filtered)"},
		{"no gateway, nothing answers, not even the first hop", func(r *diagnose.ISPResult) {
			r.Checks.Gateway, r.Plan.Gateway = nil, ""
			r.Checks.Trace = partialTrace(dt.Target1)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 30, 0, 0, 0)
			}
		}, diagnose.FaultLAN, diagnose.VerdictDown, "no gateway known and nothing answers"},
		{"no gateway, the first hop answers, nothing beyond", func(r *diagnose.ISPResult) {
			r.Checks.Gateway, r.Plan.Gateway = nil, ""
			r.Checks.Trace = partialTrace(dt.Target1, dt.Gateway)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 30, 0, 0, 0)
			}
		}, diagnose.FaultISP, diagnose.VerdictDown, "hop 1 (192.0.2.1) of the trace answers"},

		// The ISP.
		{"clean gateway, nothing beyond", func(r *diagnose.ISPResult) {
			r.Checks.Trace = partialTrace(dt.Target1, dt.Gateway, dt.ISP1)
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 30, 0, 0, 0)
			}
		}, diagnose.FaultISP, diagnose.VerdictDown,
			"=gateway 192.0.2.1 clean (0 % loss, 0.8 ms), but none of the 3 internet targets answers; the trace to 203.0.113.10 stops after hop 2 (198.51.100.1) → ISP"},
		{"loss starts inside the ISP", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Lossy(p.Target, 0.3, p.RTTMeanSeconds)
			}
			r.Checks.Hops[1].Ping = dt.Lossy(dt.ISP2, 0.3, 0.009)
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "=30 % loss starts at hop 3 (198.51.100.2); gateway clean → ISP"},
		{"loss at a router that does not carry on is ignored", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Lossy(p.Target, 0.3, p.RTTMeanSeconds)
			}
			r.Checks.Hops[0].Ping = dt.Lossy(dt.ISP1, 0.5, 0.009) // deprioritised, hop 3 is clean
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "=30 % loss starts at hop 4 (203.0.113.10); gateway clean → ISP"},
		{"a router that answers no ping says nothing", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Lossy(p.Target, 0.3, p.RTTMeanSeconds)
			}
			r.Checks.Hops[0].Ping = dt.Ping(dt.ISP1, 30, 0, 0, 0)
			r.Checks.Hops[1].Ping = dt.Lossy(dt.ISP2, 0.3, 0.009)
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "starts at hop 3 (198.51.100.2)"},
		{"loss without a trace", func(r *diagnose.ISPResult) {
			r.Checks.Trace, r.Checks.Hops = nil, nil
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Lossy(p.Target, 0.3, p.RTTMeanSeconds)
			}
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "=30 % loss beyond the gateway (median of 3 of 3 targets; threshold 5 %); gateway clean → ISP"},
		{"latency beyond the gateway at the threshold is fine", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Clean(p.Target, 0.0008+0.150)
			}
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "every check passed"},
		{"latency beyond the gateway", func(r *diagnose.ISPResult) {
			r.Checks.Trace, r.Checks.Hops = nil, nil
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Clean(p.Target, 0.0008+0.2)
			}
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "=200 ms round-trip time beyond the gateway (median of 3 of 3 targets; threshold 150 ms); gateway 192.0.2.1 clean (0 % loss, 0.8 ms) → ISP"},
		{"latency rises at a hop", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Clean(p.Target, 0.3)
			}
			r.Checks.Hops[1].Ping = dt.Clean(dt.ISP2, 0.28)
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "latency rises by 279 ms at hop 3 (198.51.100.2)"},
		{"jitter beyond the gateway", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 30, 30, 0.02, 0.045)
			}
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "45 ms jitter beyond the gateway (median of 3 of 3 targets; threshold 30 ms)"},

		// DNS.
		{"every resolver fails", func(r *diagnose.ISPResult) {
			r.Checks.DNS = []diagnose.DNSCheck{dt.DNS(dt.DNS1, false, 0), dt.DNS(dt.DNS2, false, 0)}
		}, diagnose.FaultDNS, diagnose.VerdictDown,
			"=none of the 2 resolvers resolves example.com (198.51.100.53: no complete answer: i/o timeout, 3 attempts; 198.51.100.54: no complete answer: i/o timeout, 3 attempts); IP connectivity is fine (3 of 3 targets answer) → DNS"},
		{"the only resolver fails", func(r *diagnose.ISPResult) {
			r.Checks.DNS = []diagnose.DNSCheck{dt.DNS(dt.DNS1, false, 0)}
		}, diagnose.FaultDNS, diagnose.VerdictDown, "the resolver does not resolve example.com"},
		{"one resolver of two fails", func(r *diagnose.ISPResult) {
			r.Checks.DNS[1] = dt.DNS(dt.DNS2, false, 0)
		}, diagnose.FaultDNS, diagnose.VerdictDegraded, "1 of 2 resolvers fail (198.51.100.54: no complete answer: i/o timeout, 3 attempts) while 198.51.100.53 answers → DNS"},
		{"slow resolvers", func(r *diagnose.ISPResult) {
			r.Checks.DNS = []diagnose.DNSCheck{dt.DNS(dt.DNS1, true, 0.6), dt.DNS(dt.DNS2, true, 0.8)}
		}, diagnose.FaultDNS, diagnose.VerdictDegraded, "=resolvers answer slowly: 700 ms (median of 2; threshold 500 ms) → DNS"},
		{"resolvers at the threshold are fine", func(r *diagnose.ISPResult) {
			r.Checks.DNS = []diagnose.DNSCheck{dt.DNS(dt.DNS1, true, 0.5), dt.DNS(dt.DNS2, true, 0.5)}
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "every check passed"},
		{"DNS failing because nothing answers is the ISP's", func(r *diagnose.ISPResult) {
			r.Checks.DNS = []diagnose.DNSCheck{dt.DNS(dt.DNS1, false, 0), dt.DNS(dt.DNS2, false, 0)}
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 30, 0, 0, 0)
			}
		}, diagnose.FaultISP, diagnose.VerdictDown, "none of the 3 internet targets answers"},

		// Bufferbloat.
		{"bufferbloat", func(r *diagnose.ISPResult) { r.Checks.Throughput = dt.Speed(0.015, 0.265) },
			diagnose.FaultISP, diagnose.VerdictDegraded, "=latency rises by 250 ms under load (idle 15 ms, loaded 265 ms; threshold 100 ms): bufferbloat on the access link → ISP; smart queue management (fq_codel, cake) on the router cures it"},
		{"bufferbloat at the threshold is fine", func(r *diagnose.ISPResult) { r.Checks.Throughput = dt.Speed(0.015, 0.115) },
			diagnose.FaultNone, diagnose.VerdictHealthy, "every check passed"},

		// The remote end.
		{"one web site of two fails", func(r *diagnose.ISPResult) { r.Checks.HTTP[1] = dt.HTTP(dt.Site2, false) },
			diagnose.FaultRemote, diagnose.VerdictDegraded, "=https://b.example/ fails (connect: connection refused); https://a.example/ works and the connection is fine → remote (the site)"},
		{"the only web site fails", func(r *diagnose.ISPResult) { r.Checks.HTTP = []*prober.HTTPResult{dt.HTTP(dt.Site1, false)} },
			diagnose.FaultRemote, diagnose.VerdictDegraded, "the connection itself is fine → remote"},
		{"every web site fails", func(r *diagnose.ISPResult) {
			r.Checks.HTTP = []*prober.HTTPResult{dt.HTTP(dt.Site1, false), dt.HTTP(dt.Site2, false)}
		}, diagnose.FaultISP, diagnose.VerdictDown, "none of the 2 web sites answers"},
		{"every web site answers with an error status: the sites, not the path", func(r *diagnose.ISPResult) {
			a, b := dt.HTTP(dt.Site1, false), dt.HTTP(dt.Site2, false)
			a.StatusCode, b.StatusCode = 404, 500
			dt.Failed(&a.Common, "Invalid HTTP response status code 404")
			dt.Failed(&b.Common, "Invalid HTTP response status code 500")
			r.Checks.HTTP = []*prober.HTTPResult{a, b}
		}, diagnose.FaultRemote, diagnose.VerdictDegraded, "→ remote (the site)"},
		{"a site that answers 404 answered: the web line says so", func(r *diagnose.ISPResult) {
			a := dt.HTTP(dt.Site1, false)
			a.StatusCode = 404
			dt.Failed(&a.Common, "Invalid HTTP response status code 404")
			r.Checks.HTTP = []*prober.HTTPResult{a}
		}, diagnose.FaultRemote, diagnose.VerdictDegraded, "web: 0 of 1 sites healthy: https://a.example/ answered 404"},
		{"one reply per target: jitter not measured, still healthy", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 1, 1, 0.010, 0)
				r.Checks.Targets[i].JitterSeconds = 0
			}
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "every check passed"},
		{"one target of three unreachable", func(r *diagnose.ISPResult) {
			r.Checks.Targets[2] = dt.Ping(dt.Target3, 30, 0, 0, 0)
		}, diagnose.FaultRemote, diagnose.VerdictDegraded, "=203.0.113.30 (100 % loss, no reply): lossy, slow or unreachable while the other 2 targets are clean → remote (that destination or its network)"},
		{"two targets of three lossy is the ISP's", func(r *diagnose.ISPResult) {
			r.Checks.Targets[1] = dt.Lossy(dt.Target2, 0.2, 0.015)
			r.Checks.Targets[2] = dt.Lossy(dt.Target3, 0.2, 0.021)
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "loss"},

		// Nothing can leave this host.
		{"link down: no route to the gateway or anything", func(r *diagnose.ISPResult) {
			*r = *dt.Scenario("noroute")
		}, diagnose.FaultLAN, diagnose.VerdictDown,
			"=nothing can leave this host: the gateway 192.0.2.1 and every internet target are unreachable from it (network is unreachable): its network link is down, unplugged or not configured → LAN"},
		{"no default route: the gateway answers, nothing beyond is routed", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.NoRoute(p.Target)
			}
			r.Checks.Trace, r.Checks.Hops = nil, nil
			for i := range r.Checks.HTTP {
				r.Checks.HTTP[i] = dt.HTTP(r.Checks.HTTP[i].Target, false)
				r.Checks.HTTP[i].Reason = prober.ReasonNoRoute
			}
			for i := range r.Checks.DNS {
				r.Checks.DNS[i] = dt.DNS(r.Checks.DNS[i].Server, false, 0)
			}
		}, diagnose.FaultLAN, diagnose.VerdictDown, "the gateway 192.0.2.1 answers, but this host has no route to the internet"},
		{"no ICMP permission, and the resolvers and sites find no route", func(r *diagnose.ISPResult) {
			*r = *dt.Scenario("noroute")
			for _, p := range append([]*prober.ICMPResult{r.Checks.Gateway}, r.Checks.Targets...) {
				*p = *dt.Ping(p.Target, 0, 0, 0, 0)
				dt.NoPermission(&p.Common)
			}
		}, diagnose.FaultLAN, diagnose.VerdictDown, "this host has no route to the internet"},
		{"one target without a route is this host's, not the destination's", func(r *diagnose.ISPResult) {
			r.Checks.Targets[2] = dt.NoRoute(dt.Target3)
		}, diagnose.FaultLAN, diagnose.VerdictDegraded, "=this host has no route to 203.0.113.30 while the other 2 targets answer: its routing table has none, or an unreachable, prohibit or blackhole route (a VPN, a firewall or a static route; for an IPv6 target, no IPv6 on this network) → LAN"},
		{"two of three targets without a route is not the ISP's loss", func(r *diagnose.ISPResult) {
			r.Checks.Targets[1], r.Checks.Targets[2] = dt.NoRoute(dt.Target2), dt.NoRoute(dt.Target3)
		}, diagnose.FaultLAN, diagnose.VerdictDegraded, "^this host has no route to 203.0.113.20 and 203.0.113.30 while the other target answers"},

		// Nothing measured.
		{"no ICMP permission: unknown, with the fix first", func(r *diagnose.ISPResult) {
			*r = *dt.Scenario("unknown")
		}, diagnose.FaultUnknown, diagnose.VerdictUnknown, "^cannot ping: no permission — run as root, widen net.ipv4.ping_group_range or grant CAP_NET_RAW: `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` (now "},
		{"no time left to ping", func(r *diagnose.ISPResult) {
			for _, p := range append([]*prober.ICMPResult{r.Checks.Gateway}, r.Checks.Targets...) {
				*p = *dt.Ping(p.Target, 0, 0, 0, 0)
				p.Reason = prober.ReasonNotRun
				dt.Failed(&p.Common, "not run")
			}
		}, diagnose.FaultUnknown, diagnose.VerdictUnknown, "=the pings did not run: the diagnosis ran out of time (raise --timeout); loss, latency and jitter were not measured → unknown"},
		{"a gateway that could not be pinged is not 'no gateway known'", func(r *diagnose.ISPResult) {
			*r = *dt.Scenario("unknown")
		}, diagnose.FaultUnknown, diagnose.VerdictUnknown, "gateway 192.0.2.1 not pinged: no permission"},

		// What answers in the internet's place.
		{"a resolver that refuses or fails the name that cannot exist does not rewrite it", func(r *diagnose.ISPResult) {
			r.Checks.DNS[0].Integrity.Rcode, r.Checks.DNS[1].Integrity.Rcode = "REFUSED", "SERVFAIL"
		}, diagnose.FaultNone, diagnose.VerdictHealthy,
			"DNS: 2 of 2 resolvers resolve example.com (median 15 ms); a name that cannot exist gets REFUSED from 198.51.100.53 and SERVFAIL from 198.51.100.54: not NXDOMAIN, but no rewrite either"},
		{"an empty answer to the name that cannot exist is no rewrite", func(r *diagnose.ISPResult) {
			r.Checks.DNS[1].Integrity.Rcode = "NOERROR"
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "a name that cannot exist gets NOERROR with no records from 198.51.100.54: not NXDOMAIN"},
		{"a resolver that answers every name", func(r *diagnose.ISPResult) { *r = *dt.Scenario("rewrite") },
			diagnose.FaultDNS, diagnose.VerdictDegraded,
			"=198.51.100.54 answers a name that cannot exist (isp-checker-mfrggzdfmztwq2lk.invalid → 198.51.100.80): it rewrites NXDOMAIN (typo redirection, ads), so mistyped and removed names lead to its servers → DNS; use another resolver"},
		{"a captive portal", func(r *diagnose.ISPResult) { *r = *dt.Scenario("portal") },
			diagnose.FaultLAN, diagnose.VerdictDown,
			"=a captive portal: 2 web sites redirected to http://192.0.2.1:8080/login, and 198.51.100.53 answers a name that cannot exist with 192.0.2.1 — the network wants you to log in or accept its terms before it lets traffic through → LAN"},
		{"a captive portal seen in DNS only (https sites cannot be redirected)", func(r *diagnose.ISPResult) {
			*r = *dt.Scenario("portal")
			for i := range r.Checks.HTTP {
				r.Checks.HTTP[i] = dt.HTTP(r.Checks.HTTP[i].Target, false)
			}
			r.Checks.DNS[1].Integrity = dt.Integrity(dt.DNS2, "10.1.0.1")
			r.Checks.DNS[0].Integrity = dt.Integrity(dt.DNS1, "")
		}, diagnose.FaultLAN, diagnose.VerdictDown,
			"=a captive portal, most likely: no internet target answers, and 198.51.100.54 answers a name that cannot exist with 10.1.0.1, an address on this network — open a web page over plain http:// to reach its login page → LAN"},
		{"a rewriting resolver with a public address and no ping is the ISP's outage", func(r *diagnose.ISPResult) {
			*r = *dt.Scenario("portal")
			for i := range r.Checks.HTTP {
				r.Checks.HTTP[i] = dt.HTTP(r.Checks.HTTP[i].Target, false)
			}
			for i, d := range r.Checks.DNS {
				r.Checks.DNS[i].Integrity = dt.Integrity(d.Server, "198.51.100.80")
			}
		}, diagnose.FaultISP, diagnose.VerdictDown, "none of the 3 internet targets answers"},
		{"no default route, with the gateway as the resolver (it answers)", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.NoRoute(p.Target)
			}
			for i := range r.Checks.HTTP {
				r.Checks.HTTP[i] = dt.HTTP(r.Checks.HTTP[i].Target, false)
				r.Checks.HTTP[i].Reason = prober.ReasonNoRoute
			}
			r.Checks.Trace, r.Checks.Hops = nil, nil
		}, diagnose.FaultLAN, diagnose.VerdictDown, "^the gateway 192.0.2.1 answers, but this host has no route to the internet"},
		{"one site that moved elsewhere is no portal", func(r *diagnose.ISPResult) {
			r.Checks.HTTP[0].FinalURL, r.Checks.HTTP[0].Redirects = "https://www.elsewhere.example/", 1
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "every check passed"},
		{"a path-MTU black hole", func(r *diagnose.ISPResult) { *r = *dt.Scenario("blackhole") },
			diagnose.FaultISP, diagnose.VerdictDegraded,
			"=path-MTU black hole toward 203.0.113.10: packets above 1400 bytes vanish without an ICMP error (the local link allows 1500): ping and small pages work, large transfers stall → ISP"},
		{"a path-MTU black hole explains a stalled site", func(r *diagnose.ISPResult) {
			*r = *dt.Scenario("blackhole")
			r.Checks.HTTP[1] = dt.HTTP(dt.Site2, false)
			dt.Failed(&r.Checks.HTTP[1].Common, "context deadline exceeded")
		}, diagnose.FaultISP, diagnose.VerdictDegraded, "; it explains why https://b.example/ fails"},
		{"a smaller path MTU that is signalled is no fault", func(r *diagnose.ISPResult) {
			r.Checks.MTU = dt.MTU(dt.Target1, 1492, false)
			r.Checks.MTU.Method, r.Checks.MTU.ICMPMTUBytes, r.Checks.MTU.ICMPFrom = prober.MTUMethodICMP, 1492, dt.Gateway
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "path MTU to 203.0.113.10: 1492 bytes, below the local link's 1500 (signalled by 192.0.2.1: path-MTU discovery works)"},

		// Only "every check passed" when every check did.
		{"a trace that could not run is said, not hidden", func(r *diagnose.ISPResult) {
			dt.NoPermission(&r.Checks.Trace.Common)
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "^no fault found: gateway 192.0.2.1 clean (0 % loss, 0.8 ms); not held against the connection: the trace failed (no ICMP socket is allowed"},
		{"fewer pings than configured are said", func(r *diagnose.ISPResult) {
			for i, p := range r.Checks.Targets {
				r.Checks.Targets[i] = dt.Ping(p.Target, 4, 4, 0.012, 0.001)
			}
		}, diagnose.FaultNone, diagnose.VerdictHealthy, "only 4 of the 30 echo requests per target fitted in the time the diagnosis had (--timeout)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := diagnosed(tc.change)
			if r.Fault != tc.fault || r.Verdict != tc.verdict {
				t.Errorf("fault %s, verdict %s; want %s, %s\n%s", r.Fault, r.Verdict, tc.fault, tc.verdict, strings.Join(r.Evidence, "\n"))
			}
			got := r.Evidence[0]
			if want, exact := strings.CutPrefix(tc.evidence, "="); exact && got != want {
				t.Errorf("evidence\n got %q\nwant %q", got, want)
			} else if want, prefix := strings.CutPrefix(tc.evidence, "^"); prefix && !strings.HasPrefix(got, want) {
				t.Errorf("evidence\n got %q\nwant %q…", got, want)
			} else if !exact && !prefix && !strings.Contains(strings.Join(r.Evidence, "\n"), tc.evidence) {
				t.Errorf("evidence %q lacks %q", r.Evidence, tc.evidence)
			}
			if (r.Fault == diagnose.FaultNone) != (r.Verdict == diagnose.VerdictHealthy) {
				t.Errorf("fault %s with verdict %s: only fault none is healthy", r.Fault, r.Verdict)
			}
			switch {
			case (r.Verdict == diagnose.VerdictUnknown) != (r.Score == nil):
				t.Errorf("verdict %s with score %v: exactly an unknown verdict has no score", r.Verdict, r.Score)
			case r.Verdict == diagnose.VerdictHealthy && *r.Score < 0.25:
				t.Errorf("healthy with score %v: a dimension beyond its threshold, or one counted without being measured", *r.Score)
			case r.Verdict == diagnose.VerdictDown && *r.Score != 0:
				t.Errorf("score %v with verdict down", *r.Score)
			case r.Verdict == diagnose.VerdictDegraded && *r.Score > 0.5:
				t.Errorf("degraded with score %v (%s): a degraded verdict scores at most 0.5 (C), as a dimension at its threshold", *r.Score, r.Grade)
			}
			for _, d := range r.Dimensions.List() {
				if !d.Measured && (d.Score != nil || d.Value != nil || d.Grade != "") {
					t.Errorf("dimension %s not measured but scored %v, value %v, grade %q", d.Name, d.Score, d.Value, d.Grade)
				}
			}
		})
	}
}

func TestScoresAndGrades(t *testing.T) {
	for _, tc := range []struct {
		v, threshold, score float64
		grade               string
	}{
		{0, 0.05, 1, "A"}, {0.005, 0.05, 0.95, "A"}, {0.01, 0.05, 0.9, "A"}, {0.025, 0.05, 0.75, "B"},
		{0.05, 0.05, 0.5, "C"}, {0.075, 0.05, 0.25, "D"}, {0.1, 0.05, 0, "F"}, {1, 0.05, 0, "F"},
		{0.012, 0.150, 0.96, "A"},
	} {
		if got := diagnose.LinearScore(tc.v, tc.threshold); got != tc.score || diagnose.Grade(got) != tc.grade {
			t.Errorf("LinearScore(%v, %v) = %v (%s), want %v (%s)", tc.v, tc.threshold, got, diagnose.Grade(got), tc.score, tc.grade)
		}
	}
	// The dimensions of the synthetic scenarios.
	for _, tc := range []struct {
		scenario string
		score    float64
		dims     map[string]float64 // score per measured dimension; absent: not measured
	}{
		{"healthy", 0.95, map[string]float64{"loss": 1, "latency": 0.95, "jitter": 0.975, "dns": 0.985}},
		{"lan", 0, map[string]float64{"loss": 0, "latency": 0.95, "jitter": 0.975, "dns": 0.985}},
		{"dns", 0, map[string]float64{"loss": 1, "latency": 0.95, "jitter": 0.975, "dns": 0}},
		{"bufferbloat", 0, map[string]float64{"loss": 1, "latency": 0.95, "jitter": 0.975, "dns": 0.985, "bufferbloat": 0}},
	} {
		r := dt.Scenario(tc.scenario)
		if r.Score == nil || *r.Score != tc.score || r.Grade != diagnose.Grade(tc.score) {
			t.Errorf("%s: score %v (%s), want %v", tc.scenario, r.Score, r.Grade, tc.score)
		}
		for _, d := range r.Dimensions.List() {
			want, measured := tc.dims[d.Name]
			if d.Measured != measured || measured && (d.Score == nil || *d.Score != want || d.Grade != diagnose.Grade(want)) {
				t.Errorf("%s: dimension %s measured %v score %v grade %q; want measured %v score %v", tc.scenario, d.Name, d.Measured, d.Score, d.Grade, measured, want)
			}
		}
	}
	// DNS: the latency score times the share of resolvers that answered.
	r := dt.Healthy()
	r.Checks.DNS[1] = dt.DNS(dt.DNS2, false, 0)
	diagnose.Diagnose(r)
	if got := r.Dimensions.DNS.Score; got == nil || *got != 0.495 {
		t.Errorf("dns score with 1 of 2 resolvers (11 ms) = %v, want 0.495", got)
	}
	// DNS: the time the user waited counts, a lost first query included.
	r = dt.Healthy()
	for i := range r.Checks.DNS {
		r.Checks.DNS[i].Attempts, r.Checks.DNS[i].WaitedSeconds = 2, 2.011
	}
	diagnose.Diagnose(r)
	if d := r.Dimensions.DNS; d.Value == nil || *d.Value != 2.011 || *d.Score != 0 || r.Fault != diagnose.FaultDNS {
		t.Errorf("dns after a lost first query: value %v score %v, fault %s; want 2.011 s, 0, dns", d.Value, d.Score, r.Fault)
	}
	// No reply: latency fails with no value rather than "0 ms".
	r = dt.Scenario("isp")
	r.Checks.Gateway = dt.Ping(dt.Gateway, 30, 0, 0, 0)
	for i, p := range r.Checks.Targets {
		r.Checks.Targets[i] = dt.Ping(p.Target, 30, 0, 0, 0)
	}
	diagnose.Diagnose(r)
	if d := r.Dimensions.Latency; !d.Measured || d.Value != nil || d.Score == nil || *d.Score != 0 {
		t.Errorf("latency with no reply: measured %v value %v score %v; want measured, no value, score 0", d.Measured, d.Value, d.Score)
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0 %", 0.05: "5 %", 0.3125: "31 %", 0.025: "2.5 %", 1: "100 %", 0.001: "0.1 %"} {
		if got := diagnose.Pct(v); got != want {
			t.Errorf("Pct(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{0.0004: "0.4 ms", 0.012: "12 ms", 0.0125: "13 ms", 1.25: "1.25 s", 2: "2 s", 0.001: "1 ms"} {
		if got := diagnose.Dur(v); got != want {
			t.Errorf("Dur(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestWhy: the evidence gives a prober's Cause, on one line, or its Error
// when it has none. (What Cause holds is the prober's: TestCause.)
func TestWhy(t *testing.T) {
	for _, tc := range []struct {
		c    prober.Common
		want string
	}{
		{prober.Common{Error: `HTTP request failed: Get "http://x/": dial tcp 203.0.113.38:80: connect: connection refused`, Cause: "connect:\n  connection refused"},
			"connect: connection refused"},
		{prober.Common{Error: "not run:  the diagnosis\tran out of time"}, "not run: the diagnosis ran out of time"},
	} {
		if got := diagnose.Why(&tc.c); got != tc.want {
			t.Errorf("Why(%+v) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for v, want := range map[string]int{diagnose.VerdictHealthy: 0, diagnose.VerdictDegraded: 1, diagnose.VerdictDown: 2, diagnose.VerdictUnknown: 4} {
		if got := diagnose.ExitCode(v); got != want {
			t.Errorf("ExitCode(%s) = %d, want %d", v, got, want)
		}
	}
}

// TestGatewayNotPinged: a gateway the policy refuses (a link-local IPv6
// gateway under the default target_policy) is reported, not silently
// dropped, and the diagnosis goes on without it.
func TestGatewayNotPinged(t *testing.T) {
	r := dt.Healthy()
	r.Checks.Gateway = dt.Ping("fe80::1%wlan0", 0, 0, 0, 0)
	dt.FailStep(&r.Checks.Gateway.Common, "cannot probe target", "denied by target_policy: address fe80::1 is in deny_networks fe80::/10")
	diagnose.Diagnose(r)
	if r.Fault != diagnose.FaultNone || !strings.Contains(strings.Join(r.Evidence, "\n"), "gateway fe80::1%wlan0 not pinged: denied by target_policy") {
		t.Errorf("%s: %q", r.Fault, r.Evidence)
	}
}

// TestOneOfEach: counts of one are worded in the singular.
func TestOneOfEach(t *testing.T) {
	r := dt.Healthy()
	r.Plan.Targets, r.Plan.DNSServers = []string{dt.Target1}, []string{dt.DNS1}
	r.Checks.Targets = []*prober.ICMPResult{dt.Ping(dt.Target1, 30, 0, 0, 0)}
	r.Checks.DNS = []diagnose.DNSCheck{dt.DNS(dt.DNS1, false, 0)}
	diagnose.Diagnose(r)
	if want := "gateway 192.0.2.1 clean (0 % loss, 0.8 ms), but the internet target does not answer → ISP"; r.Evidence[0] != want {
		t.Errorf("evidence %q, want %q", r.Evidence[0], want)
	}
	if d := r.Dimensions; d.Loss.Detail != "median of 1 internet target" || d.DNS.Detail != "none of 1 resolver answered" {
		t.Errorf("loss %q, dns %q", d.Loss.Detail, d.DNS.Detail)
	}
	r.Checks.Gateway = dt.Ping(dt.Gateway, 1, 0, 0, 0)
	diagnose.Diagnose(r)
	if want := "no reply from the gateway 192.0.2.1 (1 echo request) nor from any internet target"; !strings.HasPrefix(r.Evidence[0], want) {
		t.Errorf("evidence %q, want it to start %q", r.Evidence[0], want)
	}
	if want := "gateway 192.0.2.1: no reply to 1 echo request"; r.Evidence[1] != want {
		t.Errorf("gateway line %q, want %q", r.Evidence[1], want)
	}
}
