package prober

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// Reasons: why a probe failed, when the cause is on this host and a
// program should act on it (Common.Reason). Error keeps the words for
// people; Reason is the short code beside it, so that a reader such as the
// diagnosis never has to match error text. Most failures (a timeout, a
// refused connection, a failed check) have no Reason: they are
// measurements.
const (
	// ReasonPermission: the kernel refused the probe (EPERM, EACCES): no
	// capability or group to open the socket, or a local firewall rule
	// refused the packet. Nothing was measured.
	ReasonPermission = "permission"
	// ReasonNoSocket: no socket of the kind the probe needs could be opened
	// (address family or protocol not supported, out of file descriptors).
	// Nothing was measured.
	ReasonNoSocket = "no_socket"
	// ReasonNoRoute: this host's routing table has no way to the target:
	// no route or the link it would leave by is down (ENETUNREACH,
	// ENETDOWN), or an unreachable, prohibit or blackhole route for it
	// (EHOSTUNREACH, EACCES, EINVAL from this host's own route lookup; see
	// routeReason). That is a measurement: nothing can leave this host
	// that way.
	ReasonNoRoute = "no_route"
	// ReasonNotRun: the probe was never started (the caller ran out of
	// time). Nothing was measured.
	ReasonNotRun = "not_run"
)

// ReasonOf classifies err by the system error it wraps ("" when it says
// nothing about this host). Common.Fail applies it to every failure.
func ReasonOf(err error) string {
	if r, ok := routeReason(err); ok {
		return r
	}
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ENETDOWN):
		return ReasonNoRoute
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return ReasonPermission
	case errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EPROTONOSUPPORT),
		errors.Is(err, syscall.ESOCKTNOSUPPORT), errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return ReasonNoSocket
	}
	return ""
}

// Unmeasured reports whether a failure with this reason measured nothing
// (the probe could not run), as opposed to a failure that is itself a
// measurement (no reply, no route, refused).
func Unmeasured(reason string) bool {
	return reason == ReasonPermission || reason == ReasonNoSocket || reason == ReasonNotRun
}

// Cause is err in the words a reader that already names the check needs:
// without the operation and addresses Go's net and net/http packages put
// before the cause (`Get "https://example.com/": `, `dial tcp
// 192.0.2.1:443: `, `read udp 192.0.2.7:5353->192.0.2.53:53: `), and in
// the short form of a prober's own errors that have one. The diagnosis
// shows it as "https://example.com/ fails (connect: connection refused)".
// Common.Fail sets Common.Cause from it.
func Cause(err error) string {
	// One layer at a time, so a wrapping's words stay: errors.As would
	// look through them.
	switch e := any(err).(type) {
	case nil:
		return ""
	case causer:
		return e.cause()
	case *url.Error:
		return Cause(e.Err)
	case *net.OpError:
		// A write or a socket call names what the cause does not say (the
		// address family, the socket's own address); a dial or a read of a
		// TCP or UDP socket names only the target's address.
		if (e.Op == "dial" || e.Op == "read") && (strings.HasPrefix(e.Net, "tcp") || strings.HasPrefix(e.Net, "udp")) && e.Err != nil {
			return Cause(e.Err)
		}
	}
	// A wrapping ("sending the query: %w") stays; what it wraps is
	// shortened in turn.
	inner := errors.Unwrap(err)
	if inner == nil {
		return err.Error()
	}
	if prefix, ok := strings.CutSuffix(err.Error(), inner.Error()); ok {
		return prefix + Cause(inner)
	}
	return err.Error()
}

// causer is an error of a prober's with a short form for Cause.
type causer interface {
	error
	cause() string
}
