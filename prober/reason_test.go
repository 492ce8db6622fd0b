package prober

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
)

// The errors are shaped as the probers see them: a net.OpError around an
// os.SyscallError around the errno, wrapped again by the prober.
func TestReasonOf(t *testing.T) {
	op := func(errno syscall.Errno) error {
		return fmt.Errorf("sending echo request: %w", &net.OpError{Op: "write", Net: "ip4:icmp", Err: os.NewSyscallError("sendto", errno)})
	}
	// A TCP connect to loopback, which always has a route: the errno came
	// from the path (a router's ICMP answer), not from this host.
	answered := func(errno syscall.Errno) error {
		return fmt.Errorf("dialing: %w", &net.OpError{Op: "dial", Net: "tcp4", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80},
			Err: os.NewSyscallError("connect", errno)})
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("i/o timeout"), ""},
		{op(syscall.ECONNREFUSED), ""},
		{op(syscall.EHOSTUNREACH), ""}, // no destination to look the route up: may be a router's answer
		{answered(syscall.EHOSTUNREACH), ""},
		{answered(syscall.EHOSTDOWN), ""},
		{answered(syscall.ENETUNREACH), ""},
		{answered(syscall.EACCES), ""}, // ICMPv6 administratively prohibited
		{answered(syscall.EINVAL), ""},
		{fmt.Errorf("cannot probe target: %w", &routeError{dst: "192.0.2.1", errno: syscall.EACCES}), ReasonNoRoute},
		{op(syscall.ENETUNREACH), ReasonNoRoute},
		{op(syscall.ENETDOWN), ReasonNoRoute},
		{op(syscall.EPERM), ReasonPermission},
		{fmt.Errorf("no ICMP socket is allowed (raw: %w; datagram: %w): fix", syscall.EPERM, syscall.EACCES), ReasonPermission},
		{op(syscall.EAFNOSUPPORT), ReasonNoSocket},
		{op(syscall.EMFILE), ReasonNoSocket},
	} {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestRouteErrorSaysWhichRoute(t *testing.T) {
	for errno, want := range map[syscall.Errno]string{
		syscall.ENETUNREACH:  "this host has no route to 192.0.2.1: network is unreachable",
		syscall.EHOSTUNREACH: "this host has no route to 192.0.2.1: no route to host (an unreachable route)",
		syscall.EACCES:       "this host has no route to 192.0.2.1: permission denied (a prohibit route)",
		syscall.EINVAL:       "this host has no route to 192.0.2.1: invalid argument (a blackhole route)",
	} {
		err := error(&routeError{dst: "192.0.2.1", errno: errno})
		if err.Error() != want || !errors.Is(err, errno) || !errors.Is(err, errLocalRoute) {
			t.Errorf("%v: %q, want %q wrapping the errno", errno, err, want)
		}
	}
	// Loopback always has a route; nothing is sent to look it up.
	if err := localRoute(nil, &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Errorf("localRoute(::1) = %v", err)
	}
}

func TestFailSetsReason(t *testing.T) {
	var c Common
	c.Fail(slog.New(slog.DiscardHandler), "cannot probe target", fmt.Errorf("setting up: %w", syscall.EACCES))
	if c.Reason != ReasonPermission || c.Error != "cannot probe target: setting up: permission denied" {
		t.Errorf("got reason %q, error %q", c.Reason, c.Error)
	}
	c.Fail(slog.New(slog.DiscardHandler), "no reply", nil) // a later failure without a cause keeps the reason
	if c.Reason != ReasonPermission {
		t.Errorf("reason %q after a failure without a cause", c.Reason)
	}
	if !Unmeasured(ReasonPermission) || !Unmeasured(ReasonNoSocket) || !Unmeasured(ReasonNotRun) || Unmeasured(ReasonNoRoute) || Unmeasured("") {
		t.Error("Unmeasured: permission, no_socket and not_run measure nothing; no_route and a plain failure do")
	}
}
