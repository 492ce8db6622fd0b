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
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("i/o timeout"), ""},
		{op(syscall.ECONNREFUSED), ""},
		{op(syscall.EHOSTUNREACH), ""}, // may be a router's answer: not this host's
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
