package diagnose

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/speedtest"
)

// Timing of the checks.
const (
	// pingReplyWait is how long a ping waits for replies after its last
	// echo request.
	pingReplyWait = time.Second
	// probeMargin is added to every check's planned time for its start
	// and stop.
	probeMargin = 500 * time.Millisecond
	// pingSlack extends a ping's deadline beyond its plan. It costs no
	// time (a ping ends pingReplyWait after its last echo request), but on
	// a busy machine, where the sends fall behind their interval, it keeps
	// the last ones from being cut off before their replies could arrive
	// (and counted as lost).
	pingSlack = 2 * time.Second
	// traceHopTimeout is the trace's wait for answers after its last probe.
	traceHopTimeout = time.Second
	// tracePacketsPerHop keeps within a router's burst of ICMP errors (6 on
	// Linux) while making a hop that exists unlikely to look silent on a
	// lossy path: at 30 % loss all 3 probes vanish 2.7 % of the time, all 5
	// only 0.24 % (and a silent hop cannot be named as where loss starts).
	tracePacketsPerHop = 5
	// maxHopPings caps the routers pinged after the trace.
	maxHopPings = 16
	// speedReserve is the time a speed test needs beyond its duration:
	// idle latency samples, the last loaded samples, closing.
	speedReserve = 4 * time.Second
	// The responsiveness test of a run: drafts 02–08's (and goresponsiveness's)
	// 1 s interval, so that each direction can stabilise in a dozen seconds;
	// rpmStage bounds each, rpmMinBudget is the least worth starting.
	rpmInterval  = time.Second
	rpmStage     = 12 * time.Second
	rpmMinBudget = 10 * time.Second
	// mtuMinBudget is the least time the path-MTU search gets (it runs
	// beside the pings, and gets as long as they take when that is more):
	// a black hole costs a few rounds of silence.
	mtuMinBudget = 4 * time.Second
	// integrityZone is where the name that cannot exist lives: .invalid
	// is reserved (RFC 6761) and never delegated, so an address for a name
	// under it can only come from the resolver itself.
	integrityZone = "invalid."
	// defaultBudget bounds a diagnosis whose context has no deadline.
	defaultBudget = time.Minute
)

// Checks, as Step names them.
const (
	CheckGateway    = "gateway"
	CheckPing       = "ping"
	CheckTrace      = "trace"
	CheckHop        = "hop"
	CheckDNS        = "dns"
	CheckHTTP       = "http"
	CheckThroughput = "speed"
	CheckRPM        = "responsiveness"
	CheckMTU        = "mtu"
)

// Step reports one finished check to Options.Progress.
type Step struct {
	Check  string
	Target string
	OK     bool
	// Done checks of Total so far. Total is known before the first check
	// runs: the pings of the routers the trace finds count as one step.
	Done, Total int
}

// Options are how Run runs the checks.
type Options struct {
	// Policy guards every address probed (nil allows everything).
	Policy *prober.Policy
	Logger *slog.Logger
	// Progress, when set, is called after each check, one call at a time.
	Progress func(Step)
}

// Flagged says which of a plan's inputs came from command-line flags (so
// Plan can say so); the rest came from the module or auto-detection.
type Flagged struct{ Gateway, DNS bool }

// NewPlan turns module options into a plan: the gateway from the options
// or the routing table, the resolvers from the options or
// /etc/resolv.conf. It reads those files; it sends nothing. o is config's:
// loaded, or config.DefaultISPProbe() with changes checked by Validate.
func NewPlan(o config.ISPProbe, flagged Flagged) Plan {
	p := Plan{
		Targets:  dedupe(o.Targets),
		DNSName:  o.DNSQueryName,
		HTTPURLs: dedupe(o.HTTPURLs),
		Options:  o,
	}
	switch {
	case o.Gateway == config.ISPGatewayNone:
		p.GatewaySource, p.GatewayNote = SourceNone, "gateway check turned off"
	case o.Gateway != "":
		p.Gateway, p.GatewaySource = o.Gateway, source(flagged.Gateway)
	default:
		gw, err := DefaultGateway()
		if err != nil {
			p.GatewaySource, p.GatewayNote = SourceNone, "no default gateway found in the routing table: "+clip(err.Error(), 160)
		} else {
			p.Gateway, p.GatewaySource = gw, SourceRoute
		}
	}
	if len(o.DNSServers) > 0 {
		p.DNSServers, p.DNSSource = dedupe(o.DNSServers), source(flagged.DNS)
	} else if rs, err := SystemResolvers(); err != nil {
		p.DNSServers, p.DNSSource, p.DNSNote = []string{}, SourceNone, "no resolver found in "+ResolvConf+": "+clip(err.Error(), 160)
	} else {
		p.DNSServers, p.DNSSource = rs, SourceResolvConf
	}
	if o.Speed {
		p.SpeedURL = o.SpeedURL
		p.ResponsivenessURL = o.ResponsivenessURL
		if p.ResponsivenessURL == "" {
			p.ResponsivenessURL = responsivenessURL(o.SpeedURL)
		}
	}
	return p
}

// responsivenessURL is the configuration document of the isp-checker whose
// https speed-test download is speedURL; "" for any other URL (plain
// http cannot carry the test's HTTP/2, and another server's layout is
// unknown).
func responsivenessURL(speedURL string) string {
	u, err := url.Parse(speedURL)
	if err != nil || u.Scheme != "https" || u.Path != speedtest.DownloadPath {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: speedtest.WellKnownPath}).String()
}

// dedupe copies list without repeats (a check is run, and reported, once).
func dedupe(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func source(flag bool) string {
	if flag {
		return SourceFlag
	}
	return SourceConfig
}

// Run runs the plan's checks — in parallel, except the speed test, which
// loads the link and so runs alone afterwards — and diagnoses their
// Results. It returns before ctx is done.
func Run(ctx context.Context, plan Plan, opt Options) *ISPResult {
	start := time.Now()
	o := plan.Options
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	res := &ISPResult{Plan: plan, Thresholds: ThresholdsFrom(o.Thresholds)}
	res.Prober = "isp"
	res.StartedAt = start
	if len(plan.Targets) > 0 {
		res.Target = plan.Targets[0]
	}
	res.Checks.Targets = make([]*prober.ICMPResult, len(plan.Targets))
	res.Checks.DNS = make([]DNSCheck, len(plan.DNSServers))
	res.Checks.HTTP = make([]*prober.HTTPResult, len(plan.HTTPURLs))
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultBudget)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		// Nothing was measured: unknown, not down.
		res.Interrupted = cancelled(ctx)
		res.Fail(opt.Logger, "diagnosis not started", err)
		res.Reason = prober.ReasonNotRun
		res.Verdict, res.Fault, res.Summary = VerdictUnknown, FaultUnknown, "unknown: "+res.Error
		res.Evidence = []string{res.Error}
		f := newFacts(res)
		res.Dimensions, res.Statuses = f.dimensions(), f.statuses()
		return res
	}
	r := &runner{ctx: ctx, o: o, opt: opt, plan: plan, total: PlannedSteps(plan)}

	var wg sync.WaitGroup
	if plan.Gateway != "" {
		wg.Go(func() { res.Checks.Gateway = r.ping(CheckGateway, plan.Gateway) })
	}
	for i, t := range plan.Targets {
		wg.Go(func() { res.Checks.Targets[i] = r.ping(CheckPing, t) })
	}
	if o.Trace && len(plan.Targets) > 0 {
		wg.Go(func() {
			res.Checks.Trace = r.trace(plan.Targets[0])
			if o.HopPings {
				res.Checks.Hops = r.hopPings(res.Checks.Trace, plan.Gateway)
			}
		})
	}
	for i, s := range plan.DNSServers {
		wg.Go(func() { res.Checks.DNS[i] = r.dns(s) })
	}
	for i, u := range plan.HTTPURLs {
		wg.Go(func() { res.Checks.HTTP[i] = r.http(u) })
	}
	if o.MTU && len(plan.Targets) > 0 {
		wg.Go(func() { res.Checks.MTU = r.mtu(plan.Targets[0]) })
	}
	wg.Wait()
	if plan.SpeedURL != "" {
		res.Checks.Throughput = r.throughput(plan.SpeedURL)
	}
	if plan.ResponsivenessURL != "" {
		res.Checks.Responsiveness = r.responsiveness(plan.ResponsivenessURL)
	}

	// Cancelled rather than out of time: the checks were cut short at an
	// arbitrary point, so whatever they found so far is not a verdict.
	res.Interrupted = cancelled(ctx)
	Diagnose(res)
	res.DurationSeconds = time.Since(start).Seconds()
	if res.Verdict == VerdictDown || res.Verdict == VerdictUnknown {
		res.Fail(opt.Logger, res.Summary, nil)
	} else {
		res.Success = true
		opt.Logger.Info("diagnosis finished", "verdict", res.Verdict, "fault", res.Fault, "score", *res.Score)
	}
	return res
}

// cancelled says whether ctx ended by cancellation, not by its deadline.
func cancelled(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

// PlannedSteps is the number of progress steps Run reports for plan: one
// per check, the pings of the trace's routers counting as one.
func PlannedSteps(plan Plan) int {
	o := plan.Options
	n := len(plan.Targets) + len(plan.DNSServers) + len(plan.HTTPURLs)
	if plan.Gateway != "" {
		n++
	}
	if o.Trace && len(plan.Targets) > 0 {
		n++
		if o.HopPings {
			n++
		}
	}
	if o.MTU && len(plan.Targets) > 0 {
		n++
	}
	if plan.SpeedURL != "" {
		n++
	}
	if plan.ResponsivenessURL != "" {
		n++
	}
	return n
}

// runner runs the checks of one diagnosis.
type runner struct {
	ctx  context.Context
	o    config.ISPProbe
	opt  Options
	plan Plan

	mu          sync.Mutex
	done, total int
}

func (r *runner) report(check, target string, ok bool) {
	if r.opt.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	r.opt.Progress(Step{Check: check, Target: target, OK: ok, Done: r.done, Total: r.total})
}

// probe runs one prober with a timeout (capped by the diagnosis's deadline).
func (r *runner) probe(f prober.Func, check, target string, m config.Module, timeout time.Duration) prober.Result {
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	// Not "target": the isp probe's logger names its own.
	logger := r.opt.Logger.With("check", check, "check_target", target)
	return prober.Run(ctx, f, prober.Request{Target: target, Module: &m, ModuleName: "isp/" + check, Policy: r.opt.Policy, Logger: logger})
}

// pingTimeout is the time a ping may take: its packets, the reply wait, a
// margin and the slack for a busy machine.
func (r *runner) pingTimeout() time.Duration {
	return time.Duration(r.o.Packets-1)*r.o.Interval + pingReplyWait + probeMargin + pingSlack
}

func (r *runner) ping(check, target string) *prober.ICMPResult {
	res := r.pingQuiet(check, target)
	r.report(check, target, res.PacketsReceived > 0)
	return res
}

// pingQuiet pings without reporting a progress step.
func (r *runner) pingQuiet(check, target string) *prober.ICMPResult {
	m := config.NewModule("icmp")
	m.ICMP.IPProtocol, m.ICMP.IPProtocolFallback = r.o.IPProtocol, r.o.IPProtocolFallback
	m.ICMP.Packets, m.ICMP.Interval, m.ICMP.ReplyTimeout = r.o.Packets, r.o.Interval, pingReplyWait
	return asICMP(r.probe(prober.ProbeICMP, check, target, m, r.pingTimeout()))
}

// mtu searches the path MTU toward target, beside the pings.
func (r *runner) mtu(target string) *prober.MTUResult {
	m := config.NewModule("mtu")
	m.MTU.IPProtocol, m.MTU.IPProtocolFallback = r.o.IPProtocol, r.o.IPProtocolFallback
	res := asMTU(r.probe(prober.ProbeMTU, CheckMTU, target, m, max(r.pingTimeout()-pingSlack, mtuMinBudget)))
	r.report(CheckMTU, target, res.Success && !res.BlackHole)
	return res
}

func (r *runner) trace(target string) *prober.TracerouteResult {
	m := config.NewModule("traceroute")
	m.Traceroute.IPProtocol, m.Traceroute.IPProtocolFallback = r.o.IPProtocol, r.o.IPProtocolFallback
	m.Traceroute.MaxHops = r.o.TraceMaxHops
	m.Traceroute.PacketsPerHop = tracePacketsPerHop
	m.Traceroute.HopTimeout = traceHopTimeout
	res := asTrace(r.probe(prober.ProbeTraceroute, CheckTrace, target, m, traceHopTimeout+3*probeMargin))
	r.report(CheckTrace, target, res.Success)
	return res
}

// hopPings pings the routers the trace found beyond the gateway (not the
// destination, which is pinged as a target), as mtr does. They are one
// progress step, reported when the last ping ends.
func (r *runner) hopPings(tr *prober.TracerouteResult, gateway string) []HopCheck {
	hops := r.pingHops(tr, gateway)
	ok := true
	for _, h := range hops {
		ok = ok && h.Ping.PacketsReceived > 0
	}
	r.report(CheckHop, plural(len(hops), "router"), ok)
	return hops
}

func (r *runner) pingHops(tr *prober.TracerouteResult, gateway string) []HopCheck {
	if tr == nil {
		return nil
	}
	gwTTL := 1
	for _, h := range tr.Hops {
		if h.Address == gateway {
			gwTTL = h.TTL
		}
	}
	var hops []HopCheck
	seen := map[string]bool{}
	for _, h := range tr.Hops {
		if h.TTL <= gwTTL || h.Destination || h.Address == prober.TracerouteSilentAddress || h.Address == tr.IPAddr || seen[h.Address] {
			continue
		}
		seen[h.Address] = true
		hops = append(hops, HopCheck{TTL: h.TTL, Address: h.Address})
		if len(hops) == maxHopPings {
			break
		}
	}
	var wg sync.WaitGroup
	for i := range hops {
		wg.Go(func() { hops[i].Ping = r.pingQuiet(CheckHop, hops[i].Address) })
	}
	wg.Wait()
	return hops
}

// dns asks server for the plan's name, up to dns_attempts times, and
// beside it (one attempt) for a name that cannot exist.
func (r *runner) dns(server string) DNSCheck {
	m := r.dnsModule(r.o.DNSQueryName, r.o.DNSQueryType)
	c := DNSCheck{Server: server}
	var wg sync.WaitGroup
	if r.o.DNSIntegrity {
		im := r.dnsModule(integrityName(), "A")
		wg.Go(func() { c.Integrity = asDNS(r.probe(prober.ProbeDNS, CheckDNS, server, im, r.o.DNSTimeout)) })
	}
	for c.Attempts < r.o.DNSAttempts && r.ctx.Err() == nil {
		c.Attempts++
		c.Result = asDNS(r.probe(prober.ProbeDNS, CheckDNS, server, m, r.o.DNSTimeout))
		if !c.Result.Success {
			c.WaitedSeconds += c.Result.DurationSeconds
			continue
		}
		c.WaitedSeconds += dnsTime(c.Result)
		break
	}
	wg.Wait()
	if c.Result == nil {
		c.Result = &prober.DNSResult{}
		c.Result.Target, c.Result.Prober, c.Result.Error = server, "dns", "not run: the diagnosis ran out of time"
		c.Result.Reason = prober.ReasonNotRun
	}
	r.report(CheckDNS, server, c.Result.Success)
	return c
}

func (r *runner) dnsModule(name, qtype string) config.Module {
	m := config.NewModule("dns")
	m.DNS.QueryName, m.DNS.QueryType = name, qtype
	m.DNS.TransportProtocol = "udp"
	m.DNS.IPProtocol, m.DNS.IPProtocolFallback = r.o.IPProtocol, r.o.IPProtocolFallback
	return m
}

// integrityName is a fresh random name under .invalid, so no cache can
// hold an answer for it.
func integrityName() string {
	return "isp-checker-" + strings.ToLower(rand.Text()) + "." + integrityZone
}

func (r *runner) http(url string) *prober.HTTPResult {
	m := config.NewModule("http")
	m.HTTP.IPProtocol, m.HTTP.IPProtocolFallback = r.o.IPProtocol, r.o.IPProtocolFallback
	res := asHTTP(r.probe(prober.ProbeHTTP, CheckHTTP, url, m, r.o.HTTPTimeout))
	r.report(CheckHTTP, url, res.Success)
	return res
}

func (r *runner) throughput(url string) *prober.ThroughputResult {
	need := r.o.SpeedDuration + speedReserve
	if dl, _ := r.ctx.Deadline(); time.Until(dl) < need {
		res := &prober.ThroughputResult{}
		res.Prober, res.Target = "throughput", url
		res.Error = fmt.Sprintf("not run: the speed test needs %s and only %s is left of the timeout", need, time.Until(dl).Round(time.Second))
		res.Reason = prober.ReasonNotRun
		r.report(CheckThroughput, url, false)
		return res
	}
	m := config.NewModule("throughput")
	m.Throughput.Duration = r.o.SpeedDuration
	m.Throughput.RampUp = min(m.Throughput.RampUp, r.o.SpeedDuration/2)
	m.Throughput.IPProtocol, m.Throughput.IPProtocolFallback = r.o.IPProtocol, r.o.IPProtocolFallback
	res := asThroughput(r.probe(prober.ProbeThroughput, CheckThroughput, url, m, need))
	r.report(CheckThroughput, url, res.Success)
	return res
}

// responsiveness runs the responsiveness test, both directions one after
// the other, in what the diagnosis has left (at most rpmStage each).
func (r *runner) responsiveness(url string) *prober.ResponsivenessResult {
	dl, _ := r.ctx.Deadline()
	left := time.Until(dl)
	if left < rpmMinBudget {
		res := &prober.ResponsivenessResult{}
		res.Prober, res.Target = "responsiveness", url
		res.Error = fmt.Sprintf("not run: the responsiveness test needs %s and only %s is left of the timeout", rpmMinBudget, left.Round(time.Second))
		res.Reason = prober.ReasonNotRun
		r.report(CheckRPM, url, false)
		return res
	}
	m := config.DefaultModule()
	m.Prober = "responsiveness"
	o := &m.Responsiveness
	o.IntervalDuration, o.StageTimeout = rpmInterval, rpmStage
	o.IPProtocol, o.IPProtocolFallback = r.o.IPProtocol, r.o.IPProtocolFallback
	res := asResponsiveness(r.probe(prober.ProbeResponsiveness, CheckRPM, url, m, min(left, 2*rpmStage+5*time.Second)))
	r.report(CheckRPM, url, res.Success)
	return res
}

func asResponsiveness(r prober.Result) *prober.ResponsivenessResult {
	if t, ok := r.(*prober.ResponsivenessResult); ok {
		return t
	}
	return &prober.ResponsivenessResult{Common: *r.Base()}
}

// as* recover the typed Result; a prober that panicked returns a bare
// Common, which is kept as the typed Result's Common.

func asICMP(r prober.Result) *prober.ICMPResult {
	if t, ok := r.(*prober.ICMPResult); ok {
		return t
	}
	return &prober.ICMPResult{Common: *r.Base()}
}

func asTrace(r prober.Result) *prober.TracerouteResult {
	if t, ok := r.(*prober.TracerouteResult); ok {
		return t
	}
	return &prober.TracerouteResult{Common: *r.Base()}
}

func asDNS(r prober.Result) *prober.DNSResult {
	if t, ok := r.(*prober.DNSResult); ok {
		return t
	}
	return &prober.DNSResult{Common: *r.Base()}
}

func asHTTP(r prober.Result) *prober.HTTPResult {
	if t, ok := r.(*prober.HTTPResult); ok {
		return t
	}
	return &prober.HTTPResult{Common: *r.Base()}
}

func asMTU(r prober.Result) *prober.MTUResult {
	if t, ok := r.(*prober.MTUResult); ok {
		return t
	}
	return &prober.MTUResult{Common: *r.Base()}
}

func asThroughput(r prober.Result) *prober.ThroughputResult {
	if t, ok := r.(*prober.ThroughputResult); ok {
		return t
	}
	return &prober.ThroughputResult{Common: *r.Base()}
}
