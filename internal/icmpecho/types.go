package icmpecho

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// Request is one probe: Packets echo requests to Dst, Interval apart.
type Request struct {
	Dst netip.Addr
	// Zone is Dst's IPv6 zone (interface), for link-local addresses.
	Zone string
	// Src, when valid, is the source address (the socket is bound to it).
	Src  netip.Addr
	Mode Mode
	// Packets (at least 1) and Interval (above 0) plan the requests.
	Packets  int
	Interval time.Duration
	// Size is the payload length in bytes, raised to MarkLen.
	Size int
	// TTL is the IP TTL (hop limit) of the requests; 0 is DefaultTTL.
	TTL int
	// DontFragment sets DF (IPv4) or forbids fragmentation (IPv6).
	DontFragment bool
	// StopAt, when set, ends the probe at the latest then.
	StopAt time.Time
	// ReplyTimeout, when above 0, ends the probe that long after its last
	// request was sent.
	ReplyTimeout time.Duration
}

// Result is what one probe saw, request by request.
type Result struct {
	Mode Mode
	// ID is the identifier in the probe's requests: its own on a raw
	// socket, the socket's (chosen by the kernel) on a datagram socket.
	ID uint16
	// Sent counts requests the kernel accepted.
	Sent int
	// Replied and RTTs are by sequence number (0…Packets-1). An RTT runs
	// from just before the request was handed to the kernel to the
	// kernel's receive timestamp of the reply.
	Replied []bool
	RTTs    []time.Duration
	// Duplicates are further replies to an answered request; Foreign are
	// replies to the probe from an address other than Dst (not counted as
	// replies).
	Duplicates, Foreign int
	// HopLimit is the TTL (hop limit) of the last reply; -1 when unknown.
	HopLimit int
	// SendErr is the first error sending a request; ICMPErr the first ICMP
	// error (unreachable, time exceeded, too big) about one of them.
	SendErr, ICMPErr error
}

// SocketError is returned by Start when the probe's socket cannot be
// opened; Err is the kernel's errno (EPERM, EACCES …) or a bind error.
type SocketError struct {
	Mode Mode
	Err  error
}

func (e *SocketError) Error() string { return fmt.Sprintf("%s ICMP socket: %v", e.Mode, e.Err) }
func (e *SocketError) Unwrap() error { return e.Err }

// ICMPError is an ICMP error a router (or the target) sent about one of a
// probe's requests.
type ICMPError struct {
	Kind       Kind
	Type, Code uint8
	From       netip.Addr
	// MTU is the next-hop MTU of a too-big error (0: not given).
	MTU int
}

func (e *ICMPError) Error() string {
	var what string
	switch e.Kind {
	case KindTimeExceeded:
		what = "time exceeded"
	case KindTooBig:
		what = "packet too big"
		if e.MTU > 0 {
			what += fmt.Sprintf(" (next-hop MTU %d)", e.MTU)
		}
	case KindUnreachable:
		what = "destination unreachable (" + icmpwire.UnreachableText(e.From.Is6(), e.Code) + ")"
	case KindParamProblem:
		what = "parameter problem"
	default:
		what = fmt.Sprintf("ICMP type %d code %d", e.Type, e.Code)
	}
	return fmt.Sprintf("%s from %s", what, e.From)
}
