package diagnose

import "github.com/isp-checker/isp-checker/prober"

// Check statuses: each check's outcome as the rules judge it, with the
// thresholds that decide the verdict, so that a report shows them without
// judging anything itself.
const (
	StatusOK = "ok"
	// StatusFail: measured, and failed (no reply, refused, no route).
	StatusFail = "fail"
	// StatusUnmeasured: the check could not run (prober.Unmeasured).
	StatusUnmeasured = "unmeasured"
	// StatusLossy: a ping's loss is above the loss threshold.
	StatusLossy = "lossy"
	// StatusSlow: a ping's round-trip time (beyond the gateway, for an
	// internet target) or jitter is above its threshold.
	StatusSlow = "slow"
	// StatusSilent: a router of the trace answers no ping. Routers may
	// ignore ping; only loss that carries on to the destination counts.
	StatusSilent = "silent"
	// StatusBlackHole: the path-MTU search found a black hole.
	StatusBlackHole = "blackhole"
	// StatusRewrites: the resolver answers a name that cannot exist.
	StatusRewrites = "rewrites"
)

// Statuses are the checks' statuses, in the order of Checks; a check that
// is absent (nil) has "".
type Statuses struct {
	Gateway    string
	Targets    []string
	Trace      string
	Hops       []string
	MTU        string
	DNS        []string
	HTTP       []string
	Throughput string
	// Responsiveness is the RPM test's.
	Responsiveness string
}

// statuses judges every check.
func (f *facts) statuses() Statuses {
	c := &f.r.Checks
	var s Statuses
	if c.Gateway != nil {
		s.Gateway = f.pingStatus(c.Gateway, f.gatewayProblems())
	}
	for i, p := range c.Targets {
		st := ""
		if p != nil {
			st = f.pingStatus(p, f.targetProblems(f.targets[i]))
		}
		s.Targets = append(s.Targets, st)
	}
	if tr := c.Trace; tr != nil {
		s.Trace = outcome(&tr.Common)
	}
	for _, h := range c.Hops {
		st := ""
		if h.Ping != nil {
			// Only loss counts against a router: latency and jitter of its
			// own answers say little about the path.
			st = f.pingStatus(h.Ping, problems{loss: statOf(h.Ping).loss > f.t.LossRatio})
			if st == StatusFail {
				st = StatusSilent
			}
		}
		s.Hops = append(s.Hops, st)
	}
	if m := c.MTU; m != nil {
		s.MTU = outcome(&m.Common)
		if m.BlackHole {
			s.MTU = StatusBlackHole
		}
	}
	for _, d := range c.DNS {
		st := StatusUnmeasured
		if d.Result != nil {
			st = outcome(&d.Result.Common)
		}
		if ok, _ := d.RewritesNXDOMAIN(); ok {
			st = StatusRewrites
		}
		s.DNS = append(s.DNS, st)
	}
	for _, h := range c.HTTP {
		st := ""
		if h != nil {
			st = outcome(&h.Common)
		}
		s.HTTP = append(s.HTTP, st)
	}
	if tp := c.Throughput; tp != nil {
		s.Throughput = outcome(&tp.Common)
	}
	if rr := c.Responsiveness; rr != nil {
		s.Responsiveness = outcome(&rr.Common)
	}
	return s
}

// pingStatus is a ping's status: fail (no reply) or unmeasured, then
// lossy, then slow (p says which thresholds it is above).
func (f *facts) pingStatus(r *prober.ICMPResult, p problems) string {
	switch {
	case r.PacketsReceived == 0:
		return outcome(&r.Common)
	case p.loss:
		return StatusLossy
	case p.latency || p.jitter:
		return StatusSlow
	}
	return StatusOK
}

// outcome is ok for a check that succeeded, else fail, or unmeasured for
// one that could not run.
func outcome(c *prober.Common) string {
	switch {
	case c.Success:
		return StatusOK
	case prober.Unmeasured(c.Reason):
		return StatusUnmeasured
	}
	return StatusFail
}
