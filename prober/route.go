package prober

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// routeReason classifies the errors a route can cause, ok false for any
// other.
//
// "Unreachable" errors (ENETUNREACH, EHOSTUNREACH, EHOSTDOWN) and EACCES
// come from two places: this host's own route lookup (no route, an
// unreachable or prohibit route; EINVAL for a blackhole route), and a
// router's ICMP destination-unreachable answer, which the kernel hands to
// a TCP connect as the same errno (net or host unreachable; ICMPv6
// "administratively prohibited" as EACCES). A router's answer is a
// measurement of the path, not a fault of this host, so when err names its
// destination the route is looked up again (localRoute, which sends
// nothing): only when that lookup fails too is the cause this host's.
func routeReason(err error) (string, bool) {
	if errors.Is(err, errLocalRoute) {
		return ReasonNoRoute, true
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Addr == nil {
		return "", false
	}
	unreachable := errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.EHOSTDOWN)
	refused := errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EINVAL)
	switch {
	case !unreachable && !refused:
		return "", false
	case localRoute(op.Source, op.Addr) != nil:
		return ReasonNoRoute, true
	case unreachable:
		return "", true // a router's answer, or a next hop that does not answer ARP/ND
	case strings.HasPrefix(op.Net, "tcp") && errors.Is(err, syscall.EACCES):
		return "", true // a router's "administratively prohibited"
	}
	return "", false // EACCES: a local firewall or a broadcast address
}

// errLocalRoute is what every routeError is (errors.Is): this host's own
// route lookup refused the destination.
var errLocalRoute = errors.New("this host has no route")

// routeError is a destination this host's routing table refuses.
type routeError struct {
	dst   string
	errno syscall.Errno
}

func (e *routeError) Error() string {
	s := "this host has no route to " + e.dst + ": " + e.errno.Error()
	switch e.errno {
	case syscall.EHOSTUNREACH:
		s += " (an unreachable route)"
	case syscall.EACCES:
		s += " (a prohibit route)"
	case syscall.EINVAL:
		s += " (a blackhole route)"
	}
	return s
}

func (e *routeError) Unwrap() error        { return e.errno }
func (e *routeError) Is(target error) bool { return target == errLocalRoute }

// localRoute asks this host's routing table for the way from src (nil:
// any) to dst by connecting a UDP socket, which sends nothing. It returns
// a routeError when the table has none (ENETUNREACH, ENETDOWN) or an
// unreachable, prohibit or blackhole route for it (EHOSTUNREACH, EACCES,
// EINVAL), and nil otherwise — a route exists, or the lookup failed for a
// reason that is no route's (a source address this host does not have).
// Policy routing by firewall mark or interface is not seen.
func localRoute(src, dst net.Addr) error {
	ip, zone := addrIP(dst)
	if ip == nil {
		return nil
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		// A broadcast address needs SO_BROADCAST, else connect fails with
		// EACCES as for a prohibit route.
		return c.Control(setBroadcast)
	}}
	if sip, szone := addrIP(src); sip != nil && !sip.IsUnspecified() {
		d.LocalAddr = &net.UDPAddr{IP: sip, Zone: szone}
	}
	c, err := d.Dial("udp", net.JoinHostPort(joinZone(ip.String(), zone), strconv.Itoa(9)))
	if err == nil {
		_ = c.Close()
		return nil
	}
	for _, errno := range []syscall.Errno{syscall.ENETUNREACH, syscall.ENETDOWN, syscall.EHOSTUNREACH, syscall.EHOSTDOWN, syscall.EACCES, syscall.EINVAL} {
		if errors.Is(err, errno) {
			return &routeError{dst: ip.String(), errno: errno}
		}
	}
	return nil
}

func addrIP(a net.Addr) (net.IP, string) {
	switch a := a.(type) {
	case *net.IPAddr:
		return a.IP, a.Zone
	case *net.UDPAddr:
		return a.IP, a.Zone
	case *net.TCPAddr:
		return a.IP, a.Zone
	}
	return nil, ""
}

func joinZone(ip, zone string) string {
	if zone == "" {
		return ip
	}
	return ip + "%" + zone
}
