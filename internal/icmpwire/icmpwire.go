// Package icmpwire decodes the fixed part of ICMP and ICMPv6 messages:
// the type numbers, the classification of a message (echo reply, time
// exceeded, unreachable, too big, parameter problem) with the next-hop MTU
// a too-big error carries, and the names of destination-unreachable codes.
// The echo engine (internal/icmpecho) and the traceroute and mtu probers
// read the same messages; what each does with the quoted datagram differs
// and stays with them. It is pure byte work, without sockets.
package icmpwire

import (
	"encoding/binary"
	"strconv"
)

// ICMP and ICMPv6 types, and the codes that matter to a classification.
const (
	ICMP4EchoReply    = 0
	ICMP4DstUnreach   = 3
	ICMP4Echo         = 8
	ICMP4TimeExceeded = 11
	ICMP4ParamProblem = 12
	ICMP6DstUnreach   = 1
	ICMP6PacketTooBig = 2
	ICMP6TimeExceeded = 3
	ICMP6ParamProblem = 4
	ICMP6Echo         = 128
	ICMP6EchoReply    = 129

	ICMP4CodeFragNeeded = 4
)

// HeaderLen is the length of the fixed ICMP header; what follows it is an
// echo reply's payload or the datagram an error quotes.
const HeaderLen = 8

// Kind classifies an ICMP message.
type Kind uint8

// Kinds of message.
const (
	KindOther Kind = iota
	KindEchoReply
	KindTimeExceeded
	KindUnreachable
	KindTooBig // IPv4 fragmentation needed, ICMPv6 packet too big
	KindParamProblem
)

// Header is the decoded fixed header of an ICMP message.
type Header struct {
	Kind       Kind
	Type, Code uint8
	// ID and Seq are an echo reply's identifier and sequence number.
	ID, Seq uint16
	// MTU is the next-hop MTU of a too-big error (0: not given).
	MTU int
}

// ParseHeader decodes the fixed header of an ICMP (ICMPv6 when v6) message
// without IP header. ok is false when b is shorter than HeaderLen or the
// message is of a kind not listed (KindOther): an echo request, a
// redirect, neighbour discovery and the like.
func ParseHeader(v6 bool, b []byte) (h Header, ok bool) {
	if len(b) < HeaderLen {
		return h, false
	}
	h.Type, h.Code = b[0], b[1]
	switch {
	case !v6 && h.Type == ICMP4EchoReply, v6 && h.Type == ICMP6EchoReply:
		h.Kind = KindEchoReply
		h.ID = binary.BigEndian.Uint16(b[4:])
		h.Seq = binary.BigEndian.Uint16(b[6:])
	case !v6 && h.Type == ICMP4TimeExceeded, v6 && h.Type == ICMP6TimeExceeded:
		h.Kind = KindTimeExceeded
	case !v6 && h.Type == ICMP4DstUnreach && h.Code == ICMP4CodeFragNeeded:
		h.Kind = KindTooBig
		h.MTU = int(binary.BigEndian.Uint16(b[6:])) // RFC 1191
	case !v6 && h.Type == ICMP4DstUnreach, v6 && h.Type == ICMP6DstUnreach:
		h.Kind = KindUnreachable
	case v6 && h.Type == ICMP6PacketTooBig:
		h.Kind = KindTooBig
		h.MTU = int(binary.BigEndian.Uint32(b[4:]))
	case !v6 && h.Type == ICMP4ParamProblem, v6 && h.Type == ICMP6ParamProblem:
		h.Kind = KindParamProblem
	default:
		return h, false
	}
	return h, true
}

// unreachableName is a destination-unreachable code's name in both the
// forms callers use: label, a token for results and metric-style values
// (traceroute's !N, !H, !P, !X …), and text, words for error messages.
// An empty form falls back to the code number.
type unreachableName struct{ label, text string }

var (
	// unreachable4 has no text for fragmentation needed: ParseHeader
	// classifies it as too big, and messages say so.
	unreachable4 = map[uint8]unreachableName{
		0: {"network", "network"}, 6: {"network", "network"}, 11: {"network", "network"},
		1: {"host", "host"}, 7: {"host", "host"}, 12: {"host", "host"},
		2:  {"protocol", "protocol"},
		3:  {"port", "port"},
		4:  {"fragmentation_needed", ""},
		9:  {"admin_prohibited", "administratively prohibited"},
		10: {"admin_prohibited", "administratively prohibited"},
		13: {"admin_prohibited", "administratively prohibited"},
	}
	unreachable6 = map[uint8]unreachableName{
		0: {"no_route", "no route"},
		1: {"admin_prohibited", "administratively prohibited"},
		5: {"admin_prohibited", "administratively prohibited"},
		6: {"admin_prohibited", "administratively prohibited"},
		3: {"address", "address"},
		4: {"port", "port"},
	}
)

func lookupUnreachable(v6 bool, code uint8) unreachableName {
	if v6 {
		return unreachable6[code]
	}
	return unreachable4[code]
}

// UnreachableLabel names a destination-unreachable code as a token:
// "port", "admin_prohibited", "code_8".
func UnreachableLabel(v6 bool, code uint8) string {
	if n := lookupUnreachable(v6, code).label; n != "" {
		return n
	}
	return "code_" + strconv.Itoa(int(code))
}

// UnreachableText names a destination-unreachable code in words: "port",
// "administratively prohibited", "code 8".
func UnreachableText(v6 bool, code uint8) string {
	if n := lookupUnreachable(v6, code).text; n != "" {
		return n
	}
	return "code " + strconv.Itoa(int(code))
}

// OnesSum adds b to sum as big-endian 16-bit words: the ones' complement
// sum of RFC 1071 before folding (an odd last byte is padded with zero).
func OnesSum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// Fold reduces a ones' complement sum to 16 bits.
func Fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// Checksum is the Internet checksum (RFC 1071) of b with an initial sum
// (a pseudo header's, or 0).
func Checksum(sum uint32, b []byte) uint16 { return ^Fold(OnesSum(sum, b)) }
