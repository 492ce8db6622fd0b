package prober

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
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

// TestCause: what a reader that names the check shows of a failure, for
// errors shaped as the probers see them; the Error keeps every word.
func TestCause(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{Op: "dial", Net: "tcp",
		Addr: &net.TCPAddr{IP: net.IPv4(203, 0, 113, 38), Port: 80}, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	timeout := &dnsNoAnswerError{server: "198.51.100.46:53", err: &net.OpError{Op: "read", Net: "udp",
		Source: &net.UDPAddr{IP: net.IPv4(1, 2, 3, 4), Port: 5}, Addr: &net.UDPAddr{IP: net.IPv4(6, 7, 8, 9), Port: 53}, Err: os.ErrDeadlineExceeded}}
	unreachable := fmt.Errorf("sending echo request: %w", &net.OpError{Op: "write", Net: "ip4", Source: &net.IPAddr{IP: net.IPv4zero},
		Addr: &net.IPAddr{IP: net.IPv4(203, 0, 113, 10)}, Err: os.NewSyscallError("sendto", syscall.ENETUNREACH)})
	logger := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		fail         func(c *Common)
		error, cause string
	}{
		{func(c *Common) { c.FailStep(logger, "HTTP request failed", refused) },
			`HTTP request failed: Get "http://x/": dial tcp 203.0.113.38:80: connect: connection refused`, "connect: connection refused"},
		{func(c *Common) { c.Fail(logger, "HTTP request did not complete before the probe timeout", refused) },
			`HTTP request did not complete before the probe timeout: Get "http://x/": dial tcp 203.0.113.38:80: connect: connection refused`,
			"HTTP request did not complete before the probe timeout: connect: connection refused"},
		{func(c *Common) { c.FailStep(logger, "error while sending a DNS query", timeout) },
			"error while sending a DNS query: no complete answer from 198.51.100.46:53 before the probe timeout: read udp 1.2.3.4:5->6.7.8.9:53: i/o timeout",
			"no complete answer: i/o timeout"},
		// A write names the socket's own address, which the cause does not.
		{func(c *Common) { c.FailStep(logger, "cannot probe target", unreachable) },
			"cannot probe target: sending echo request: write ip4 0.0.0.0->203.0.113.10: sendto: network is unreachable",
			"sending echo request: write ip4 0.0.0.0->203.0.113.10: sendto: network is unreachable"},
		{func(c *Common) { c.Fail(logger, "no reply to any of 30 echo requests", nil) },
			"no reply to any of 30 echo requests", "no reply to any of 30 echo requests"},
		{func(c *Common) {
			c.Fail(logger, "Target refused by target_policy", fmt.Errorf("%w: host x is in deny_hosts", ErrDenied))
		},
			"Target refused by target_policy: host x is in deny_hosts", "Target refused by target_policy: host x is in deny_hosts"},
	} {
		var c Common
		tc.fail(&c)
		if c.Error != tc.error || c.Cause != tc.cause || c.Success {
			t.Errorf("error %q, cause %q; want %q, %q", c.Error, c.Cause, tc.error, tc.cause)
		}
	}
}
