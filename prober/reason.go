package prober

import (
	"errors"
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
