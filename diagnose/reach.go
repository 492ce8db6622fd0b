package diagnose

import (
	"fmt"
	"os"
	"strings"

	"github.com/isp-checker/isp-checker/prober"
)

// Whether this host could reach, or even measure, anything: the first
// rules. A check that could not run (prober.Unmeasured) measured nothing;
// one that found no route measured a dead link.

// noRouteOut is rule 1: nothing beyond this host could be reached because
// it has no route (its link is down, or it has no default route). Every
// internet target that was tried found no route; when none could be
// pinged (no permission), a resolver or web site that found no route
// stands in. A target or a web site that answered rules it out.
func (f *facts) noRouteOut() (string, bool) {
	// A resolver that answers does not rule it out: it is often the
	// gateway itself, on the LAN.
	if len(f.answered) > 0 || len(f.httpOK) > 0 {
		return "", false
	}
	routed, unrouted := 0, 0
	for _, s := range f.measured {
		if s.noRoute {
			unrouted++
		} else {
			routed++
		}
	}
	if routed > 0 {
		return "", false
	}
	if unrouted == 0 && !f.othersUnrouted() {
		return "", false
	}
	switch {
	case f.gwKnown && f.gw.noRoute:
		return fmt.Sprintf("nothing can leave this host: the gateway %s and every internet target are unreachable from it (network is unreachable): its network link is down, unplugged or not configured → LAN", f.gw.target), true
	case f.gwKnown && f.gw.answered():
		return fmt.Sprintf("the gateway %s answers, but this host has no route to the internet (none to any target): it has no default route, or one that refuses (an unreachable, prohibit or blackhole route, as a VPN's kill switch leaves) — check DHCP, the VPN or the network settings → LAN", f.gw.target), true
	}
	return "this host has no route to the internet (none to any target): its link is down, or it has no default route or one that refuses → LAN", true
}

// someUnrouted is rule 5's other half: this host has no route to some
// internet targets while others answer. Nothing left this host toward
// them, so neither the ISP nor those destinations can be at fault: the
// host's routing table is (a VPN, a firewall or a static route that
// refuses them; for an IPv6 target, no IPv6 on this network).
func (f *facts) someUnrouted() (string, bool) {
	var names []string
	for _, s := range f.measured {
		if s.noRoute {
			names = append(names, s.target)
		}
	}
	if len(names) == 0 || len(f.answered) == 0 {
		return "", false
	}
	others := fmt.Sprintf("the other %d targets answer", len(f.answered))
	if len(f.answered) == 1 {
		others = "the other target answers"
	}
	return fmt.Sprintf("this host has no route to %s while %s: its routing table has none, or an unreachable, prohibit or blackhole route (a VPN, a firewall or a static route; for an IPv6 target, no IPv6 on this network) → LAN",
		joinAnd(names), others), true
}

// othersUnrouted: some resolver or web site found no route, and none of
// them failed any other way (so the no-route is not one odd address).
func (f *facts) othersUnrouted() bool {
	var reasons []string
	for _, d := range f.dnsFail {
		if d.Result != nil {
			reasons = append(reasons, d.Result.Reason)
		}
	}
	for _, h := range f.httpFail {
		reasons = append(reasons, h.Reason)
	}
	some := false
	for _, r := range reasons {
		switch {
		case r == prober.ReasonNoRoute:
			some = true
		case !prober.Unmeasured(r):
			return false
		}
	}
	return some
}

// unmeasuredEvidence is rule 4's line: why no target could be pinged, the
// fix first.
func (f *facts) unmeasuredEvidence() string {
	const tail = "; loss, latency and jitter were not measured → unknown"
	var first *pingStat
	for i := range f.targets {
		if s := &f.targets[i]; first == nil || (s.couldNotRun && !first.couldNotRun) {
			first = s
		}
	}
	if first == nil {
		return "no internet target was pinged" + tail
	}
	switch first.reason {
	case prober.ReasonPermission:
		return "cannot ping: no permission — " + pingPermissionFix() + tail
	case prober.ReasonNoSocket:
		return "cannot ping: no ICMP socket could be opened (" + first.why + ")" + tail
	case prober.ReasonNotRun:
		return "the pings did not run: the diagnosis ran out of time (raise --timeout)" + tail
	}
	why := first.why
	if why == "" {
		why = "no result"
	}
	return fmt.Sprintf("no internet target could be pinged (%s: %s)%s", first.target, why, tail)
}

// pingPermissionFix says how to allow ping, with this host's values.
func pingPermissionFix() string {
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, ".test") {
		exe = "/path/to/isp-checker"
	}
	cur := "unknown"
	if b, err := os.ReadFile(PingGroupRangeFile); err == nil {
		cur = strings.Join(strings.Fields(string(b)), " ")
	}
	// The three ways first, in words, so they fit the first line of a
	// report; the commands follow.
	return fmt.Sprintf("run as root, widen net.ipv4.ping_group_range or grant CAP_NET_RAW: `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` (now %q) or `setcap cap_net_raw+ep %s`",
		cur, exe)
}

// unmeasuredWhy says in a few words why a check measured nothing; why is
// the check's Why.
func unmeasuredWhy(reason, why string) string {
	switch reason {
	case prober.ReasonPermission:
		return "no permission"
	case prober.ReasonNoSocket:
		return "no socket"
	case prober.ReasonNotRun:
		return "not run: out of time"
	case prober.ReasonNoRoute:
		return "no route"
	}
	if why != "" {
		return why
	}
	return "no result"
}

// plural is "1 router", "3 routers".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
