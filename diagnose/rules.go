package diagnose

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/isp-checker/isp-checker/prober"
)

// The rules, in the order they are tried; the first that matches decides
// the fault and the verdict (a lower layer's fault explains the failures
// above it, so it wins):
//
//  1. LAN, down: nothing can leave this host — every internet target (and
//     every resolver and web site that was tried) is unreachable for want
//     of a route (the link is down, or there is no default route).
//  2. LAN, down: a captive portal — every web site is redirected to one
//     other host (two or more sites, or one with a resolver that answers
//     names that cannot exist).
//  3. LAN, down: neither the gateway nor any internet target answers.
//  4. Unknown: no internet target could be pinged (no permission, no
//     socket, no time): loss, latency and jitter, which every later rule
//     needs, were not measured.
//  5. LAN, degraded: mean round-trip time or jitter at the gateway above
//     its threshold — whatever happens beyond it —, or loss above its
//     threshold at the gateway and on more than half the targets beyond
//     it; or this host has no route to some internet targets while the
//     others answer. Loss at the gateway alone is the router rate-limiting
//     the ICMP it answers itself (as mtr reads a hop whose loss does not
//     carry on to later hops): a note, not a fault.
//  6. ISP, down: the gateway is clean but no internet target answers.
//  7. ISP, degraded: loss, latency beyond the gateway (target RTT less the
//     gateway's) or jitter above its threshold on more than half the
//     targets, with a clean gateway.
//  8. DNS, down: IP connectivity works but no resolver answers.
//  9. DNS, degraded: some resolvers fail, a resolver answers a name that
//     cannot exist (it rewrites NXDOMAIN), or they answer slower than the
//     threshold (median of the time the user waited, retries included).
//  10. ISP, degraded (down when every web site fails): a path-MTU black
//     hole toward the first target (ping works, large transfers stall).
//  11. ISP, degraded: bufferbloat (latency under load rises above the
//     threshold; speed test only).
//  12. ISP, down: two or more web sites, and every one of them, fail
//     without an HTTP answer while ping and DNS work (something on the
//     path blocks web traffic). One site failing, even the only one, is
//     the site's: one site down looks exactly like that.
//  13. Remote, degraded: some web sites fail, or a minority of the targets
//     is lossy, slow or unreachable, while the rest is clean.
//  14. Otherwise none, healthy.
//
// An interrupted diagnosis (ISPResult.Interrupted) is unknown whatever the
// rules say: checks cut short at an arbitrary point judge nothing.
//
// A gateway that answers no ping while internet targets do is taken to
// filter ping and is not held against the LAN. A check that could not run
// (prober.Unmeasured) is never a pass and never a zero: it is left out,
// and said so.

// pingStat is the part of an ICMPResult the rules use.
type pingStat struct {
	target string
	// measured: packets were sent, or none could leave this host (noRoute:
	// that is a measurement too, of a dead link).
	measured bool
	noRoute  bool
	// filtered: the noRoute is this host's firewall refusing the packets
	// (prober.ReasonFiltered) rather than its routing table.
	filtered bool
	// couldNotRun: the ping could not run (prober.Unmeasured).
	couldNotRun bool
	reason      string
	// why is the ping's Why.
	why       string
	planned   int
	sent      int
	received  int
	loss      float64
	rtt       float64
	jitter    float64
	hasJitter bool
}

func statOf(r *prober.ICMPResult) pingStat {
	if r == nil {
		return pingStat{}
	}
	s := pingStat{target: r.Target, why: Why(&r.Common), reason: r.Reason, planned: r.PacketsPlanned, sent: r.PacketsSent, received: r.PacketsReceived,
		loss: r.LossRatio, rtt: r.RTTMeanSeconds, jitter: r.JitterSeconds, hasJitter: r.PacketsReceived >= 2}
	s.filtered = r.Reason == prober.ReasonFiltered && s.received == 0
	s.noRoute = (r.Reason == prober.ReasonNoRoute || s.filtered) && s.received == 0
	s.measured = s.sent > 0 || s.noRoute
	s.couldNotRun = !s.measured && prober.Unmeasured(r.Reason)
	if s.measured && s.received == 0 {
		s.loss = 1
	}
	return s
}

func (s pingStat) answered() bool { return s.received > 0 }

// facts is what the rules look at.
type facts struct {
	r       *ISPResult
	t       Thresholds
	gw      pingStat
	gwKnown bool // a gateway was pinged (packets sent, or no route to it)
	targets []pingStat
	// measured are the targets that were pinged (sent > 0), answered those
	// with at least one reply.
	measured, answered []pingStat
	dnsOK, dnsFail     []DNSCheck
	httpOK, httpFail   []*prober.HTTPResult
}

func newFacts(r *ISPResult) *facts {
	f := &facts{r: r, t: r.Thresholds}
	if r.Checks.Gateway != nil {
		f.gw = statOf(r.Checks.Gateway)
		f.gwKnown = f.gw.measured
	}
	for _, p := range r.Checks.Targets {
		s := statOf(p)
		f.targets = append(f.targets, s)
		if s.measured {
			f.measured = append(f.measured, s)
			if s.answered() {
				f.answered = append(f.answered, s)
			}
		}
	}
	for _, d := range r.Checks.DNS {
		if d.Result != nil && d.Result.Success {
			f.dnsOK = append(f.dnsOK, d)
		} else {
			f.dnsFail = append(f.dnsFail, d)
		}
	}
	for _, h := range r.Checks.HTTP {
		if h != nil && h.Success {
			f.httpOK = append(f.httpOK, h)
		} else if h != nil {
			f.httpFail = append(f.httpFail, h)
		}
	}
	return f
}

// gwRTT is the gateway's mean RTT when it answered, else 0: what is
// subtracted from a target's RTT to get the latency beyond the gateway.
func (f *facts) gwRTT() float64 {
	if f.gwKnown && f.gw.answered() {
		return f.gw.rtt
	}
	return 0
}

// targetProblems says what is wrong with one target ("" when clean).
type problems struct{ loss, latency, jitter bool }

func (p problems) any() bool { return p.loss || p.latency || p.jitter }

func (f *facts) targetProblems(s pingStat) problems {
	return problems{
		loss:    s.loss > f.t.LossRatio,
		latency: s.answered() && s.rtt-f.gwRTT() > f.t.LatencySeconds,
		jitter:  s.hasJitter && s.jitter > f.t.JitterSeconds,
	}
}

// gatewayProblems says what is wrong at the gateway: its loss only when it
// carries on beyond it (gatewayRateLimits otherwise).
func (f *facts) gatewayProblems() problems {
	if !f.gwKnown || !f.gw.answered() {
		return problems{}
	}
	return problems{
		loss:    f.gw.loss > f.t.LossRatio && f.lossBeyond(),
		latency: f.gw.rtt > f.t.GatewayLatencySeconds,
		jitter:  f.gw.hasJitter && f.gw.jitter > f.t.JitterSeconds,
	}
}

// lossBeyond says whether more than half the targets pinged are lossy:
// loss in the LAN shows at the gateway and at everything beyond it.
func (f *facts) lossBeyond() bool {
	lossy := 0
	for _, s := range f.measured {
		if s.loss > f.t.LossRatio {
			lossy++
		}
	}
	return 2*lossy > len(f.measured)
}

// gatewayRateLimits says whether the gateway loses pings to itself while
// the targets beyond it are not lossy: ICMP rate limiting on the router,
// not loss in the LAN.
func (f *facts) gatewayRateLimits() bool {
	return f.gwKnown && f.gw.answered() && f.gw.loss > f.t.LossRatio && !f.lossBeyond()
}

// DegradedMaxScore is the highest health score of a degraded verdict: a
// dimension's score at its threshold (grade C).
const DegradedMaxScore = 0.5

// Diagnose applies the rules to r.Checks with r.Thresholds and fills in
// Fault, Verdict, Evidence, Dimensions, Statuses, Score, Grade and Summary.
// It sends nothing.
func Diagnose(r *ISPResult) {
	f := newFacts(r)
	r.Dimensions, r.Statuses = f.dimensions(), f.statuses()
	fault, verdict, primary := f.classify()
	if r.Interrupted {
		fault, verdict, primary = FaultUnknown, VerdictUnknown,
			"interrupted: the diagnosis was stopped (Ctrl-C or SIGTERM) before its checks finished, so nothing is judged; what they measured so far follows"
	}
	r.Fault, r.Verdict = fault, verdict
	r.Evidence = append([]string{primary}, f.context(fault)...)
	r.Score, r.Grade = nil, ""
	if verdict != VerdictUnknown {
		score := 1.0
		for _, d := range r.Dimensions.List() {
			if d.Measured {
				score = min(score, *d.Score)
			}
		}
		switch verdict {
		case VerdictDown:
			score = 0
		case VerdictDegraded:
			// The verdict and the score agree: a fault is beyond a threshold,
			// where a dimension scores 0.5, also when no dimension measures
			// it (a failing web site, a rewriting resolver, a black hole, the
			// gateway's latency).
			score = min(score, DegradedMaxScore)
		}
		r.Score, r.Grade = &score, Grade(score)
	}
	switch fault {
	case FaultNone:
		r.Summary = "healthy: no fault found (score " + ScoreText(*r.Score) + ")"
	case FaultUnknown:
		r.Summary = "unknown: " + primary
	default:
		r.Summary = fmt.Sprintf("%s, fault %s: %s", verdict, fault, primary)
	}
}

// classify runs the rules in order and returns the fault, the verdict and
// the evidence line that decided them.
func (f *facts) classify() (fault, verdict, evidence string) {
	t := f.t
	gw := f.gw
	allDown := len(f.measured) > 0 && len(f.answered) == 0

	// 1. Nothing can leave this host.
	if e, ok := f.noRouteOut(); ok {
		return FaultLAN, VerdictDown, e
	}
	// 2. A captive portal.
	if e, ok := f.captivePortal(); ok {
		return FaultLAN, VerdictDown, e
	}
	// 3. Nothing answers.
	if allDown || (len(f.measured) == 0 && f.gwKnown && !gw.answered()) {
		switch {
		case f.gwKnown && !gw.answered():
			return FaultLAN, VerdictDown, fmt.Sprintf("no reply from the gateway %s (%s) nor from any internet target: the local network is down (cable, Wi-Fi, router) → LAN",
				gw.target, plural(gw.sent, "echo request"))
		case !f.gwKnown:
			if hop := f.firstTraceHop(); hop != nil {
				return FaultISP, VerdictDown, fmt.Sprintf("no gateway known; hop %d (%s) of the trace answers, but no internet target does → ISP", hop.TTL, hop.Address)
			}
			return FaultLAN, VerdictDown, "no gateway known and nothing answers, not even the first hop of a trace: check the local connection first → LAN"
		}
	}
	// 4. Loss, latency and jitter were not measured.
	if len(f.measured) == 0 {
		return FaultUnknown, VerdictUnknown, f.unmeasuredEvidence()
	}

	// 5. The gateway is lossy, slow or jittery.
	if p := f.gatewayProblems(); p.any() {
		var what, limits []string
		if p.loss {
			what, limits = append(what, Pct(gw.loss)+" loss"), append(limits, Pct(t.LossRatio))
		}
		if p.latency {
			what, limits = append(what, Dur(gw.rtt)+" mean round-trip time"), append(limits, Dur(t.GatewayLatencySeconds))
		}
		if p.jitter {
			what, limits = append(what, Dur(gw.jitter)+" jitter"), append(limits, Dur(t.JitterSeconds))
		}
		thr := "threshold"
		if len(limits) > 1 {
			thr = "thresholds"
		}
		return FaultLAN, VerdictDegraded, fmt.Sprintf("%s already at the gateway %s (%s %s) → LAN",
			joinAnd(what), gw.target, thr, strings.Join(limits, ", "))
	}

	// 5. This host has no route to some targets.
	if e, ok := f.someUnrouted(); ok {
		return FaultLAN, VerdictDegraded, e
	}

	// 6. The gateway is clean (or unknown) but nothing beyond it answers.
	if allDown {
		where := ""
		if tr := f.r.Checks.Trace; tr != nil && tr.HopCount > 0 && !tr.DestinationReached {
			last := tr.Hops[len(tr.Hops)-1]
			where = fmt.Sprintf("; the trace to %s stops after hop %d (%s)", tr.Target, last.TTL, last.Address)
		}
		none := fmt.Sprintf("none of the %d internet targets answers", len(f.measured))
		if len(f.measured) == 1 {
			none = "the internet target does not answer"
		}
		return FaultISP, VerdictDown, fmt.Sprintf("%s, but %s%s → ISP", f.gatewayClean(), none, where)
	}

	// 7. More than half the targets are lossy, slow or jittery.
	var lossy, slow, jittery []pingStat
	bad := 0
	for _, s := range f.measured {
		p := f.targetProblems(s)
		if p.loss {
			lossy = append(lossy, s)
		}
		if p.latency {
			slow = append(slow, s)
		}
		if p.jitter {
			jittery = append(jittery, s)
		}
		if p.any() {
			bad++
		}
	}
	if 2*bad > len(f.measured) {
		switch {
		case 2*len(lossy) > len(f.measured):
			return FaultISP, VerdictDegraded, f.lossEvidence(lossy)
		case 2*len(slow) > len(f.measured):
			return FaultISP, VerdictDegraded, f.latencyEvidence(slow)
		case 2*len(jittery) > len(f.measured):
			return FaultISP, VerdictDegraded, fmt.Sprintf("%s jitter beyond the gateway (median of %d of %d targets; threshold %s); %s → ISP",
				Dur(median(jitters(jittery))), len(jittery), len(f.measured), Dur(t.JitterSeconds), f.gatewayClean())
		}
		return FaultISP, VerdictDegraded, fmt.Sprintf("%d of %d internet targets are lossy, slow or jittery; %s → ISP", bad, len(f.measured), f.gatewayClean())
	}

	// 8, 9. DNS.
	if fault, verdict, e := f.dnsRules(); fault != "" {
		return fault, verdict, e
	}

	// 10. A path-MTU black hole.
	if e, down, ok := f.mtuBlackHole(); ok {
		if down {
			return FaultISP, VerdictDown, e
		}
		return FaultISP, VerdictDegraded, e
	}

	// 11. Bufferbloat.
	if bloat, ok := bufferbloat(f.r.Checks.Throughput); ok && bloat > t.BufferbloatSeconds {
		tp := f.r.Checks.Throughput
		return FaultISP, VerdictDegraded, fmt.Sprintf("latency rises by %s under load (idle %s, loaded %s; threshold %s): bufferbloat on the access link → ISP; smart queue management (fq_codel, cake) on the router cures it",
			Dur(bloat), Dur(tp.LatencyIdleSeconds), Dur(tp.LatencyLoadedSeconds), Dur(t.BufferbloatSeconds))
	}

	// 12, 13. Web sites.
	if n := len(f.r.Checks.HTTP); len(f.httpFail) > 0 {
		// A site that answered with an HTTP status, even a failing one, shows
		// that web traffic gets through: then it is the sites, not the path.
		if n >= 2 && len(f.httpOK) == 0 && !anyHTTPAnswer(f.httpFail) {
			return FaultISP, VerdictDown, fmt.Sprintf("none of the %d web sites answers (%s) although ping and DNS work: something on the path blocks web traffic (firewall, proxy, path-MTU black hole) → ISP",
				n, httpFailures(f.httpFail))
		}
		others := "the connection itself is fine"
		if len(f.httpOK) > 0 {
			others = fmt.Sprintf("%s works and the connection is fine", f.httpOK[0].Target)
		}
		return FaultRemote, VerdictDegraded, fmt.Sprintf("%s; %s → remote (the site)", httpFailures(f.httpFail), others)
	}
	if bad > 0 {
		var names []string
		for _, s := range f.measured {
			if p := f.targetProblems(s); p.any() {
				names = append(names, fmt.Sprintf("%s (%s)", s.target, pingBrief(s)))
			}
		}
		return FaultRemote, VerdictDegraded, fmt.Sprintf("%s: lossy, slow or unreachable while the other %d targets are clean → remote (that destination or its network)",
			strings.Join(names, ", "), len(f.measured)-bad)
	}

	// 14.
	return FaultNone, VerdictHealthy, f.healthyEvidence()
}

// dnsRules are rules 8 and 9: fault "" when neither matches.
func (f *facts) dnsRules() (fault, verdict, evidence string) {
	t := f.t
	if n := len(f.r.Checks.DNS); n > 0 {
		if len(f.dnsOK) == 0 {
			ip := "IP connectivity is fine"
			if len(f.measured) > 0 {
				ip = fmt.Sprintf("IP connectivity is fine (%d of %d targets answer)", len(f.answered), len(f.measured))
			}
			if n == 1 {
				return FaultDNS, VerdictDown, fmt.Sprintf("the resolver does not resolve %s (%s); %s → DNS", f.r.Plan.DNSName, dnsFailures(f.dnsFail), ip)
			}
			return FaultDNS, VerdictDown, fmt.Sprintf("none of the %d resolvers resolves %s (%s); %s → DNS", n, f.r.Plan.DNSName, dnsFailures(f.dnsFail), ip)
		}
		if len(f.dnsFail) > 0 {
			return FaultDNS, VerdictDegraded, fmt.Sprintf("%d of %d resolvers fail (%s) while %s answers → DNS",
				len(f.dnsFail), n, dnsFailures(f.dnsFail), f.dnsOK[0].Server)
		}
		for _, d := range f.r.Checks.DNS {
			if ok, addrs := d.RewritesNXDOMAIN(); ok {
				return FaultDNS, VerdictDegraded, fmt.Sprintf("%s answers a name that cannot exist (%s → %s): it rewrites NXDOMAIN (typo redirection, ads), so mistyped and removed names lead to its servers → DNS; use another resolver",
					d.Server, strings.TrimSuffix(d.Integrity.QueryName, "."), strings.Join(addrs, ", "))
			}
		}
		if m := median(dnsTimes(f.dnsOK)); m > t.DNSLatencySeconds {
			return FaultDNS, VerdictDegraded, fmt.Sprintf("resolvers answer slowly: %s (median of %d; threshold %s)%s → DNS",
				Dur(m), n, Dur(t.DNSLatencySeconds), dnsRetried(f.dnsOK))
		}
	}
	return "", "", ""
}

// dnsRetried says which resolvers answered only after a lost query: the
// user waited for the lost one's timeout.
func dnsRetried(ds []DNSCheck) string {
	var parts []string
	for _, d := range ds {
		if d.Attempts > 1 {
			lost := "a lost query"
			if d.Attempts > 2 {
				lost = fmt.Sprintf("%d lost queries", d.Attempts-1)
			}
			parts = append(parts, fmt.Sprintf("%s answered only on attempt %d, after %s", d.Server, d.Attempts, lost))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// healthyEvidence is the last rule's line: "every check passed" only when
// every check did; else what failed without being a fault.
func (f *facts) healthyEvidence() string {
	var notes []string
	if tr := f.r.Checks.Trace; tr != nil && !tr.Success {
		notes = append(notes, "the trace failed ("+Why(&tr.Common)+")")
	}
	if m := f.r.Checks.MTU; m != nil && !m.Success {
		notes = append(notes, "the path-MTU search failed ("+Why(&m.Common)+")")
	}
	if tp := f.r.Checks.Throughput; tp != nil && !tp.Success {
		notes = append(notes, "the speed test failed ("+Why(&tp.Common)+")")
	}
	gwFailed := f.r.Checks.Gateway != nil && (!f.gwKnown || !f.gw.answered())
	if len(notes) == 0 && !gwFailed && !f.gatewayRateLimits() {
		return "every check passed: " + f.gatewayClean()
	}
	line := "no fault found: " + f.gatewayClean()
	if gwFailed && f.gwKnown {
		line += ", which is common and not held against the LAN since the internet answers"
	}
	if len(notes) > 0 {
		line += "; not held against the connection: " + strings.Join(notes, "; ")
	}
	return line
}

// pingBrief is a ping's outcome in a few words: "100 % loss, no reply",
// "30 % loss, 12 ms".
func pingBrief(s pingStat) string {
	switch {
	case s.filtered:
		return "refused by this host"
	case s.noRoute:
		return "no route"
	case !s.answered():
		return "100 % loss, no reply"
	}
	return fmt.Sprintf("%s loss, %s", Pct(s.loss), Dur(s.rtt))
}

// gatewayClean describes a gateway that passed.
func (f *facts) gatewayClean() string {
	switch {
	case !f.gwKnown && f.r.Plan.GatewayNote == "gateway check turned off":
		return "gateway not checked (turned off)"
	case !f.gwKnown && f.r.Checks.Gateway != nil:
		return fmt.Sprintf("the gateway %s was not pinged (%s)", f.r.Checks.Gateway.Target, unmeasuredWhy(f.r.Checks.Gateway.Reason, Why(&f.r.Checks.Gateway.Common)))
	case !f.gwKnown:
		return "no gateway known"
	case f.gw.filtered:
		return fmt.Sprintf("the gateway %s was not reached: %s", f.gw.target, prober.SendRefusedWords)
	case f.gw.noRoute:
		return fmt.Sprintf("the gateway %s is unreachable (no route)", f.gw.target)
	case !f.gw.answered():
		return fmt.Sprintf("the gateway %s does not answer ping (filtered)", f.gw.target)
	case f.gatewayRateLimits():
		return fmt.Sprintf("the gateway %s drops some pings to itself (%s loss): ICMP rate limiting, harmless when the targets beyond are clean", f.gw.target, Pct(f.gw.loss))
	}
	return fmt.Sprintf("gateway %s clean (%s loss, %s)", f.gw.target, Pct(f.gw.loss), Dur(f.gw.rtt))
}

// lossEvidence places the start of loss on the path when the hops tell.
func (f *facts) lossEvidence(lossy []pingStat) string {
	gwShort := "gateway clean"
	if !f.gwKnown || !f.gw.answered() {
		gwShort = f.gatewayClean()
	}
	series := f.hopSeries()
	if k := persistsFrom(series, func(h hopStat) float64 { return h.loss }, f.t.LossRatio); k >= 0 {
		h := series[k]
		return fmt.Sprintf("%s loss starts at hop %d (%s); %s → ISP", Pct(h.loss), h.ttl, h.addr, gwShort)
	}
	return fmt.Sprintf("%s loss beyond the gateway (median of %d of %d targets; threshold %s); %s → ISP",
		Pct(median(losses(lossy))), len(lossy), len(f.measured), Pct(f.t.LossRatio), gwShort)
}

// latencyEvidence places where latency rises when the hops tell.
func (f *facts) latencyEvidence(slow []pingStat) string {
	gw := f.gwRTT()
	series := f.hopSeries()
	if k := persistsFrom(series, func(h hopStat) float64 {
		if h.received == 0 {
			return 0
		}
		return h.rtt - gw
	}, f.t.LatencySeconds); k >= 0 {
		h := series[k]
		return fmt.Sprintf("latency rises by %s at hop %d (%s) (threshold %s); %s → ISP", Dur(h.rtt-gw), h.ttl, h.addr, Dur(f.t.LatencySeconds), f.gatewayClean())
	}
	var rise []float64
	for _, s := range slow {
		rise = append(rise, s.rtt-gw)
	}
	return fmt.Sprintf("%s round-trip time beyond the gateway (median of %d of %d targets; threshold %s); %s → ISP",
		Dur(median(rise)), len(slow), len(f.measured), Dur(f.t.LatencySeconds), f.gatewayClean())
}

// hopStat is one hop of the path beyond the gateway, as measured by the
// hop pings (or, for a hop that was not pinged, the trace's own probes);
// the traced target comes last.
type hopStat struct {
	ttl      int
	addr     string
	received int
	loss     float64
	rtt      float64
}

// hopSeries is the path beyond the gateway up to the traced target. Hops
// that answered the trace but no ping (routers that filter ping) are left
// out: they say nothing about loss.
func (f *facts) hopSeries() []hopStat {
	tr := f.r.Checks.Trace
	if tr == nil || len(f.r.Checks.Targets) == 0 {
		return nil
	}
	pings := map[string]*prober.ICMPResult{}
	for _, h := range f.r.Checks.Hops {
		pings[h.Address] = h.Ping
	}
	gwTTL := f.gatewayTTL()
	dest := statOf(f.r.Checks.Targets[0])
	var out []hopStat
	for _, h := range tr.Hops {
		if h.TTL <= gwTTL || h.Address == prober.TracerouteSilentAddress || h.Destination ||
			h.Address == dest.target || h.Address == f.r.Checks.Targets[0].IPAddr {
			continue
		}
		if p := pings[h.Address]; p != nil {
			s := statOf(p)
			if !s.answered() {
				continue
			}
			out = append(out, hopStat{ttl: h.TTL, addr: h.Address, received: s.received, loss: s.loss, rtt: s.rtt})
			continue
		}
		if h.Sent == 0 {
			continue
		}
		out = append(out, hopStat{ttl: h.TTL, addr: h.Address, received: h.Received, loss: h.LossRatio, rtt: h.RTTMeanSeconds})
	}
	if dest.measured {
		ttl := tr.HopCount
		if !tr.DestinationReached || (len(out) > 0 && out[len(out)-1].ttl >= ttl) {
			ttl = 0
			if len(out) > 0 {
				ttl = out[len(out)-1].ttl + 1
			}
		}
		addr := dest.target
		if a := f.r.Checks.Targets[0].IPAddr; a != "" {
			addr = a
		}
		out = append(out, hopStat{ttl: ttl, addr: addr, received: dest.received, loss: dest.loss, rtt: dest.rtt})
	}
	return out
}

// persistsFrom returns the first index k whose value is above threshold
// while every later one stays above half the threshold (a rise that does
// not carry on to the destination is a router deprioritising its own
// answers, not a fault); -1 if none.
func persistsFrom(s []hopStat, value func(hopStat) float64, threshold float64) int {
	for k := range s {
		if value(s[k]) <= threshold {
			continue
		}
		ok := true
		for _, h := range s[k+1:] {
			if value(h) <= threshold/2 {
				ok = false
				break
			}
		}
		if ok {
			return k
		}
	}
	return -1
}

// gatewayTTL is the trace's hop of the gateway: the one answering from the
// gateway's address, else 1.
func (f *facts) gatewayTTL() int {
	if tr := f.r.Checks.Trace; tr != nil && f.r.Plan.Gateway != "" {
		for _, h := range tr.Hops {
			if h.Address == f.r.Plan.Gateway {
				return h.TTL
			}
		}
	}
	return 1
}

// firstTraceHop is the first hop of the trace that answered, if any.
func (f *facts) firstTraceHop() *prober.TracerouteHop {
	if tr := f.r.Checks.Trace; tr != nil {
		for i := range tr.Hops {
			if tr.Hops[i].Address != prober.TracerouteSilentAddress {
				return &tr.Hops[i]
			}
		}
	}
	return nil
}

// ISPStart is the trace's first hop beyond the gateway whose address is
// not private (RFC 1918, ULA, link-local, loopback): where the ISP's
// network starts. nil when the trace shows none.
func ISPStart(r *ISPResult) *prober.TracerouteHop {
	f := &facts{r: r}
	tr := r.Checks.Trace
	if tr == nil {
		return nil
	}
	gwTTL := f.gatewayTTL()
	for i := range tr.Hops {
		h := &tr.Hops[i]
		if h.TTL <= gwTTL || h.Address == prober.TracerouteSilentAddress {
			continue
		}
		a, err := netip.ParseAddr(h.Address)
		if err != nil || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			continue
		}
		return h
	}
	return nil
}

// context is the rest of the evidence: one line per kind of check, for
// the reader to see what the decision stood on.
func (f *facts) context(fault string) []string {
	out := []string{f.gatewayContext(fault)}
	if len(f.measured) > 0 {
		line := fmt.Sprintf("internet: %d of %d targets answer", len(f.answered), len(f.measured))
		if len(f.answered) > 0 {
			line += fmt.Sprintf("; median %s loss, %s round-trip time", Pct(median(losses(f.measured))), Dur(median(rtts(f.answered))))
			if j := jitters(f.answered); len(j) > 0 {
				line += fmt.Sprintf(", %s jitter", Dur(median(j)))
			}
		}
		out = append(out, line)
	}
	out = append(out, f.notPinged()...)
	if n := f.fewerPings(); n != "" {
		out = append(out, n)
	}
	if tr := f.r.Checks.Trace; tr != nil {
		out = append(out, traceContext(f.r, tr))
	}
	if m := f.r.Checks.MTU; m != nil && (!m.BlackHole || fault != FaultISP) { // else it is the first line
		out = append(out, mtuContext(m))
	}
	out = append(out, f.dnsContext(fault))
	if n := len(f.r.Checks.HTTP); n > 0 {
		// "healthy", not "answer": a site that returned an error status did
		// answer (web traffic got through), and says so.
		line := fmt.Sprintf("web: %d of %d sites healthy", len(f.httpOK), n)
		diverted := 0
		for _, h := range f.r.Checks.HTTP {
			if _, ok := divertedTo(h); h != nil && ok {
				diverted++
			}
		}
		if diverted > 0 {
			line += fmt.Sprintf(" (%d after a redirect to another host)", diverted)
		}
		var answered []string
		for _, h := range f.httpFail {
			if h.StatusCode > 0 {
				answered = append(answered, fmt.Sprintf("%s answered %d", h.Target, h.StatusCode))
			}
		}
		if len(answered) > 0 {
			line += ": " + strings.Join(answered, ", ")
		}
		if len(f.httpFail) > 0 && fault != FaultRemote {
			line += "; failing: " + httpFailures(f.httpFail)
		}
		out = append(out, line)
	}
	if tp := f.r.Checks.Throughput; tp != nil {
		if tp.Success {
			line := fmt.Sprintf("speed: %.1f Mbit/s %s", tp.BytesPerSecond*8/1e6, tp.Direction)
			if bloat, ok := bufferbloat(tp); ok {
				line += fmt.Sprintf("; latency idle %s, loaded %s (+%s)", Dur(tp.LatencyIdleSeconds), Dur(tp.LatencyLoadedSeconds), Dur(bloat))
			}
			out = append(out, line)
		} else {
			out = append(out, "speed test failed: "+Why(&tp.Common))
		}
	}
	if rr := f.r.Checks.Responsiveness; rr != nil {
		out = append(out, rpmLine(rr))
	}
	return out
}

func (f *facts) gatewayContext(fault string) string {
	switch {
	case !f.gwKnown && f.r.Checks.Gateway != nil:
		return fmt.Sprintf("gateway %s not pinged: %s", f.r.Checks.Gateway.Target, notPingedWhy(f.r.Checks.Gateway.Reason, Why(&f.r.Checks.Gateway.Common)))
	case !f.gwKnown:
		note := f.r.Plan.GatewayNote
		if note == "" {
			note = "no gateway checked"
		}
		return "gateway: " + note
	case f.gw.noRoute:
		return fmt.Sprintf("gateway %s: no route (%s)", f.gw.target, f.gw.why)
	case fault != FaultLAN:
		line := "gateway: " + strings.TrimPrefix(f.gatewayClean(), "gateway ")
		if !f.gw.answered() && len(f.answered) > 0 {
			line += ", but the internet answers: not held against the LAN"
		}
		return line
	case !f.gw.answered():
		return fmt.Sprintf("gateway %s: no reply to %s", f.gw.target, plural(f.gw.sent, "echo request"))
	}
	line := fmt.Sprintf("gateway %s: %s loss, %s mean", f.gw.target, Pct(f.gw.loss), Dur(f.gw.rtt))
	if f.gw.hasJitter {
		line += fmt.Sprintf(", %s jitter", Dur(f.gw.jitter))
	}
	return line
}

// notPinged lists the targets that could not be pinged, one line per
// reason (the same fix is not repeated for every target).
func (f *facts) notPinged() []string {
	var order []string
	byWhy := map[string][]string{}
	for _, s := range f.targets {
		if s.measured || s.target == "" {
			continue
		}
		why := notPingedWhy(s.reason, s.why)
		if byWhy[why] == nil {
			order = append(order, why)
		}
		byWhy[why] = append(byWhy[why], s.target)
	}
	var out []string
	for _, why := range order {
		ts := byWhy[why]
		if len(ts) == 1 {
			out = append(out, fmt.Sprintf("target %s not pinged: %s", ts[0], why))
		} else {
			out = append(out, fmt.Sprintf("targets %s not pinged: %s", joinAnd(ts), why))
		}
	}
	return out
}

// notPingedWhy: the few words of a ping that could not run (the first
// line of the evidence gives the fix), else why, the ping's Why.
func notPingedWhy(reason, why string) string {
	if prober.Unmeasured(reason) {
		return unmeasuredWhy(reason, why)
	}
	if why != "" {
		return why
	}
	return "no result"
}

// fewerPings says when fewer echo requests than configured fitted in the
// time the diagnosis had, or fewer than planned could be sent in time.
func (f *facts) fewerPings() string {
	want := f.r.Plan.Options.Packets
	planned, sent := want, want
	for _, s := range append([]pingStat{f.gw}, f.targets...) {
		if s.measured && !s.noRoute && s.planned > 0 {
			planned, sent = min(planned, s.planned), min(sent, s.sent)
		}
	}
	switch {
	case want == 0:
		return ""
	case planned < want:
		return fmt.Sprintf("only %d of the %d echo requests per target fitted in the time the diagnosis had (--timeout): loss and jitter rest on fewer samples", planned, want)
	case sent < planned && f.r.Interrupted:
		return fmt.Sprintf("only %d of the %d echo requests of a ping went out before the interrupt", sent, planned)
	case sent < planned:
		return fmt.Sprintf("only %d of the %d echo requests of a ping went out before its deadline (a busy machine?): loss and jitter rest on fewer samples", sent, planned)
	}
	return ""
}

func traceContext(r *ISPResult, tr *prober.TracerouteResult) string {
	if !tr.Success && tr.HopCount == 0 {
		return fmt.Sprintf("trace to %s failed: %s", tr.Target, Why(&tr.Common))
	}
	line := fmt.Sprintf("trace to %s: %s", tr.Target, plural(tr.HopCount, "hop"))
	if !tr.DestinationReached {
		line += " (destination not reached)"
	}
	if h := ISPStart(r); h != nil {
		line += fmt.Sprintf("; the ISP starts at hop %d (%s)", h.TTL, h.Address)
	}
	return line
}

func (f *facts) dnsContext(fault string) string {
	n := len(f.r.Checks.DNS)
	if n == 0 {
		note := f.r.Plan.DNSNote
		if note == "" {
			note = "no resolver checked"
		}
		return "DNS: " + note
	}
	line := fmt.Sprintf("DNS: %d of %d resolvers resolve %s", len(f.dnsOK), n, f.r.Plan.DNSName)
	if len(f.dnsOK) > 0 {
		line += fmt.Sprintf(" (median %s)", Dur(median(dnsTimes(f.dnsOK))))
	}
	if len(f.dnsFail) > 0 && fault != FaultDNS {
		line += "; failing: " + dnsFailures(f.dnsFail)
	}
	checked, rewriting := 0, 0
	var others []string // answers that are neither NXDOMAIN nor a rewrite
	for _, d := range f.r.Checks.DNS {
		if rc := d.IntegrityRcode(); rc != "" {
			checked++
			if ok, _ := d.RewritesNXDOMAIN(); ok {
				rewriting++
			} else if rc != "NXDOMAIN" {
				others = append(others, rc+" from "+d.Server)
			}
		}
	}
	switch {
	case rewriting > 0:
		line += fmt.Sprintf("; %d of %d rewrite NXDOMAIN", rewriting, checked)
	case len(others) > 0:
		line += "; a name that cannot exist gets " + joinAnd(others) + ": not NXDOMAIN, but no rewrite either"
	case checked > 0:
		line += "; a name that cannot exist gets NXDOMAIN, as it should"
	}
	return line
}

func dnsFailures(ds []DNSCheck) string {
	var parts []string
	for _, d := range ds {
		why := "no result"
		if d.Result != nil {
			why = Why(&d.Result.Common)
		}
		if d.Attempts > 1 {
			why += fmt.Sprintf(", %d attempts", d.Attempts)
		}
		parts = append(parts, fmt.Sprintf("%s: %s", d.Server, why))
	}
	return strings.Join(parts, "; ")
}

// anyHTTPAnswer reports whether any of hs got an HTTP response.
func anyHTTPAnswer(hs []*prober.HTTPResult) bool {
	for _, h := range hs {
		if h.StatusCode > 0 {
			return true
		}
	}
	return false
}

func httpFailures(hs []*prober.HTTPResult) string {
	var parts []string
	for _, h := range hs {
		why := Why(&h.Common)
		if why == "" && h.StatusCode > 0 {
			why = fmt.Sprintf("status %d", h.StatusCode)
		}
		parts = append(parts, fmt.Sprintf("%s fails (%s)", h.Target, why))
	}
	return strings.Join(parts, "; ")
}

// dnsTime is a query's connect and request time (not the resolution of
// the server's own name).
func dnsTime(r *prober.DNSResult) float64 {
	return r.Phases.ConnectSeconds + r.Phases.RequestSeconds
}

// Waited is the time the user waited for a resolver's answer, retries
// included (the last attempt's time for a check without WaitedSeconds).
func (c DNSCheck) Waited() float64 {
	if c.WaitedSeconds > 0 || c.Result == nil {
		return c.WaitedSeconds
	}
	return dnsTime(c.Result)
}

func dnsTimes(ds []DNSCheck) []float64 {
	var out []float64
	for _, d := range ds {
		out = append(out, d.Waited())
	}
	return out
}

func losses(s []pingStat) []float64 {
	var out []float64
	for _, p := range s {
		out = append(out, p.loss)
	}
	return out
}

func rtts(s []pingStat) []float64 {
	var out []float64
	for _, p := range s {
		if p.answered() {
			out = append(out, p.rtt)
		}
	}
	return out
}

func jitters(s []pingStat) []float64 {
	var out []float64
	for _, p := range s {
		if p.hasJitter {
			out = append(out, p.jitter)
		}
	}
	return out
}

// rpmEvidence is the responsiveness test's figure for the bufferbloat
// evidence ("; responsiveness 110 RPM (Low, grade F)"), or why it has
// none; "" when it did not run.
func rpmEvidence(r *prober.ResponsivenessResult) string {
	switch {
	case r == nil:
		return ""
	case r.RPM > 0:
		s := fmt.Sprintf("; responsiveness %.0f RPM (%s, grade %s", r.RPM, r.Level, r.BloatGrade)
		if !r.Stable {
			s += ", not stable"
		}
		return s + ")"
	case r.Error != "":
		return "; responsiveness: " + Why(&r.Common)
	}
	return ""
}

// rpmLine is the responsiveness test for the facts and the text report:
// the figure per direction and overall, the letter, or why there is none.
func rpmLine(r *prober.ResponsivenessResult) string {
	if r.RPM <= 0 {
		return "responsiveness test failed: " + Why(&r.Common)
	}
	line := fmt.Sprintf("responsiveness: %.0f RPM (%s; bufferbloat grade %s)", r.RPM, r.Level, r.BloatGrade)
	var dirs []string
	for _, st := range r.Stages {
		d := fmt.Sprintf("%s %.0f", st.Direction, st.RPM)
		if !st.Stable {
			d += " (not stable)"
		}
		dirs = append(dirs, d)
	}
	if len(dirs) > 0 {
		line += ": " + strings.Join(dirs, ", ")
	}
	return line
}

// bufferbloat is the rise of latency under load, when both phases had an
// answered sample.
func bufferbloat(tp *prober.ThroughputResult) (float64, bool) {
	if tp == nil || tp.LatencyIdleSamples == 0 || tp.LatencyLoadedSamples == 0 {
		return 0, false
	}
	return max(0, tp.LatencyLoadedSeconds-tp.LatencyIdleSeconds), true
}

// clip shortens s to one line of at most n runes. Never for a prober's
// error: the end of one often holds the fix.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// Why is why a check failed, in the words of its evidence: the prober's
// Cause (the error without the step and the addresses the evidence names
// already), or its Error when it has none (a Result failed without Fail),
// on one line. The end is never cut: that is where a fix ("setcap …") is.
func Why(c *prober.Common) string {
	why := c.Cause
	if why == "" {
		why = c.Error
	}
	return strings.Join(strings.Fields(why), " ")
}

// joinAnd joins words as "a", "a and b", "a, b and c".
func joinAnd(w []string) string {
	if len(w) <= 1 {
		return strings.Join(w, "")
	}
	return strings.Join(w[:len(w)-1], ", ") + " and " + w[len(w)-1]
}
