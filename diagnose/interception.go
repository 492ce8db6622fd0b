package diagnose

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/isp-checker/isp-checker/prober"
)

// Networks that answer in the internet's place: a captive portal (every
// web request redirected to its login page, every name resolved to it)
// and a path-MTU black hole (small packets pass, large ones vanish).

// captivePortal is rule 2: every web site that answered was redirected
// off-site to one and the same host, and none worked without it. One
// redirected site could be an ordinary move (example.com to
// www.example.org); two sites sent to the same place, or one with a
// resolver answering a name that cannot exist, is a portal. Without a
// plain-HTTP site to redirect (https cannot be), a portal still shows in
// DNS: no internet target answers, and a resolver answers the name that
// cannot exist with an address on this network (the gateway's, or a
// private one).
func (f *facts) captivePortal() (string, bool) {
	if e, ok := f.portalByRedirect(); ok {
		return e, true
	}
	return f.portalByDNS()
}

func (f *facts) portalByDNS() (string, bool) {
	if len(f.measured) == 0 || len(f.answered) > 0 {
		return "", false
	}
	for _, d := range f.r.Checks.DNS {
		ok, addrs := d.RewritesNXDOMAIN()
		if !ok {
			continue
		}
		for _, a := range addrs {
			ip, err := netip.ParseAddr(a)
			if err == nil && (a == f.r.Plan.Gateway || ip.IsPrivate() || ip.IsLinkLocalUnicast()) {
				return fmt.Sprintf("a captive portal, most likely: no internet target answers, and %s answers a name that cannot exist with %s, an address on this network — open a web page over plain http:// to reach its login page → LAN",
					d.Server, a), true
			}
		}
	}
	return "", false
}

func (f *facts) portalByRedirect() (string, bool) {
	portal, portalHost, diverted := "", "", 0
	for _, h := range f.r.Checks.HTTP {
		if h == nil {
			continue
		}
		host, ok := divertedTo(h)
		switch {
		case !ok && h.Success:
			return "", false
		case !ok:
			continue
		case portalHost == "":
			portal, portalHost = h.FinalURL, host
		case host != portalHost:
			return "", false
		}
		diverted++
	}
	rewrites := ""
	for _, d := range f.r.Checks.DNS {
		if ok, addrs := d.RewritesNXDOMAIN(); ok {
			rewrites = fmt.Sprintf(", and %s answers a name that cannot exist with %s", d.Server, strings.Join(addrs, ", "))
			break
		}
	}
	if diverted == 0 || (diverted < 2 && rewrites == "") {
		return "", false
	}
	return fmt.Sprintf("a captive portal: %s redirected to %s%s — the network wants you to log in or accept its terms before it lets traffic through → LAN",
		plural(diverted, "web site"), portal, rewrites), true
}

// divertedTo returns the host a web request ended on when a redirect took
// it off the site it asked for (www. aside).
func divertedTo(h *prober.HTTPResult) (string, bool) {
	if h.Redirects == 0 || h.FinalURL == "" {
		return "", false
	}
	from, err1 := url.Parse(h.URL)
	to, err2 := url.Parse(h.FinalURL)
	if err1 != nil || err2 != nil || to.Hostname() == "" {
		return "", false
	}
	site := func(u *url.URL) string { return strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.") }
	if site(from) == site(to) {
		return "", false
	}
	return site(to), true
}

// mtuBlackHole is rule 10: packets above the path MTU vanish without an
// ICMP error (a router that cannot forward them drops the "fragmentation
// needed" it should send, or a firewall does). Ping and small pages work;
// TCP, which sends full-size segments, stalls. down when every web site
// fails without an HTTP answer.
func (f *facts) mtuBlackHole() (evidence string, down, ok bool) {
	m := f.r.Checks.MTU
	if m == nil || !m.Success || !m.BlackHole {
		return "", false, false
	}
	e := fmt.Sprintf("path-MTU black hole toward %s: packets above %d bytes vanish without an ICMP error (the local link allows %d): ping and small pages work, large transfers stall → ISP",
		m.Target, m.PathMTUBytes, m.MaxSizeBytes)
	var stalled []string
	for _, h := range f.httpFail {
		if h.StatusCode == 0 {
			stalled = append(stalled, h.Target)
		}
	}
	if len(stalled) > 0 {
		e += "; it explains why " + joinAnd(stalled) + " fail"
		if len(stalled) == 1 {
			e += "s"
		}
	}
	down = len(f.r.Checks.HTTP) > 0 && len(f.httpOK) == 0 && len(stalled) == len(f.httpFail)
	return e, down, true
}

// mtuContext is the evidence line of the path-MTU search.
func mtuContext(m *prober.MTUResult) string {
	switch {
	case !m.Success && m.PathMTUBytes == 0:
		return fmt.Sprintf("path MTU to %s not measured: %s", m.Target, unmeasuredWhy(m.Reason, Why(&m.Common)))
	case m.BlackHole:
		return fmt.Sprintf("path MTU to %s: %d bytes, and larger packets vanish (black hole)", m.Target, m.PathMTUBytes)
	case m.PathMTUBytes < m.MaxSizeBytes && m.ICMPFrom != "":
		return fmt.Sprintf("path MTU to %s: %d bytes, below the local link's %d (signalled by %s: path-MTU discovery works)", m.Target, m.PathMTUBytes, m.MaxSizeBytes, m.ICMPFrom)
	}
	return fmt.Sprintf("path MTU to %s: %d bytes", m.Target, m.PathMTUBytes)
}
