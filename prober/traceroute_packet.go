package prober

import (
	"encoding/binary"
	"net/netip"

	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// This file builds the traceroute and mtu probe packets and parses what
// comes back. It is pure byte work (no sockets), so it is unit-tested
// without privileges.

// ICMP codes and IP protocol numbers used here (icmpwire has the ICMP types).
const (
	icmp4CodePortUnreach = 3
	icmp6CodePortUnreach = 4

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// tracePayloadLen is the payload of icmp and udp probes: IPv4 packets are
// 60 bytes, as traceroute's default, IPv6 ones 80.
const tracePayloadLen = 32

// traceFiller fills probe payloads after the fixed fields, so a packet
// capture shows where the probe came from.
var traceFiller = []byte("isp-checker traceroute probe....")

// pseudoHeaderSum is the ones' complement sum of the TCP/UDP/ICMPv6 pseudo
// header for a transport segment of length n.
func pseudoHeaderSum(src, dst netip.Addr, proto uint8, n int) uint32 {
	s, d := src.AsSlice(), dst.AsSlice()
	sum := icmpwire.OnesSum(0, s)
	sum = icmpwire.OnesSum(sum, d)
	return sum + uint32(proto) + uint32(n&0xffff) + uint32(n>>16)
}

// buildEcho returns an ICMP (ipv6 false) or ICMPv6 echo request with id and
// seq and a payload of size bytes (at least 6) that begins with token and
// the 16-bit complement of seq, followed by filler.
//
// Paris traceroute keeps the checksum constant across the probes of a
// trace, because per-flow load balancers hash ICMP on the first four bytes
// of the header (type, code, checksum) as they hash UDP and TCP on the
// ports. The sequence number identifies the probe (routers quote it back
// in the first 8 bytes of the original datagram), and the complement word
// ^seq in the payload cancels it out of the sum: seq + ^seq = 0xffff in
// ones' complement arithmetic, whatever seq is. The identifier and token are
// constant per trace, so the checksum is too. For IPv4 the checksum is
// filled in here; for ICMPv6 the kernel computes it (over a pseudo-header
// that is constant per trace, so it is constant as well).
func buildEcho(ipv6 bool, id, seq uint16, token uint32, size int) []byte {
	size = max(size, 6)
	b := make([]byte, 8+size)
	b[0] = icmpwire.ICMP4Echo
	if ipv6 {
		b[0] = icmpwire.ICMP6Echo
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	binary.BigEndian.PutUint32(b[8:], token)
	binary.BigEndian.PutUint16(b[12:], ^seq)
	fill(b[14:])
	if !ipv6 {
		binary.BigEndian.PutUint16(b[2:], icmpwire.Checksum(0, b))
	}
	return b
}

func fill(b []byte) {
	for i := range b {
		b[i] = traceFiller[i%len(traceFiller)]
	}
}

// buildUDP returns a UDP datagram from src:sport to dst:dport whose checksum
// is exactly want (not 0 or 0xffff, which UDP reserves): Paris traceroute
// identifies UDP probes by their checksum, which routers quote back in the
// first 8 bytes of the original datagram but which no load balancer hashes,
// while the ports (the flow) stay constant for the whole trace. The first two
// payload bytes are chosen to make the sum come out right.
func buildUDP(src, dst netip.Addr, sport, dport, want uint16, payload int) []byte {
	payload = max(payload, 2)
	b := make([]byte, 8+payload)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	fill(b[10:])
	// With the checksum field and the adjust word w zero, the sum is s; the
	// sender's checksum is ^(s + w), so w = ^want - s = ^want + ^s.
	ph := pseudoHeaderSum(src, dst, protoUDP, len(b))
	s := icmpwire.Fold(icmpwire.OnesSum(ph, b))
	w := icmpwire.Fold(uint32(^want) + uint32(^s))
	binary.BigEndian.PutUint16(b[8:], w)
	c := icmpwire.Checksum(ph, b)
	if c != want {
		// ones' complement has two zeros (0x0000 and 0xffff): the other
		// one gives the same sum.
		binary.BigEndian.PutUint16(b[8:], ^w)
		if icmpwire.Checksum(ph, b) != want {
			binary.BigEndian.PutUint16(b[8:], w)
		}
		c = icmpwire.Checksum(ph, b)
	}
	binary.BigEndian.PutUint16(b[6:], c)
	return b
}

// buildSYN returns a TCP SYN from src:sport to dst:dport with sequence
// number seq and an MSS option (a SYN without options looks odd to some
// firewalls).
func buildSYN(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	b := make([]byte, 24)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = 6 << 4 // data offset: 6 words
	b[13] = tcpSYN
	binary.BigEndian.PutUint16(b[14:], 65535)
	b[20], b[21] = 2, 4 // MSS
	mss := uint16(1460)
	if dst.Is6() {
		mss = 1440
	}
	binary.BigEndian.PutUint16(b[22:], mss)
	binary.BigEndian.PutUint16(b[16:], icmpwire.Checksum(pseudoHeaderSum(src, dst, protoTCP, len(b)), b))
	return b
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// tcpSegment is the part of a received TCP header a trace looks at.
type tcpSegment struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
}

func parseTCP(b []byte) (tcpSegment, bool) {
	if len(b) < 20 {
		return tcpSegment{}, false
	}
	return tcpSegment{
		sport: binary.BigEndian.Uint16(b[0:]),
		dport: binary.BigEndian.Uint16(b[2:]),
		seq:   binary.BigEndian.Uint32(b[4:]),
		ack:   binary.BigEndian.Uint32(b[8:]),
		flags: b[13],
	}, true
}

// icmpKind classifies a received ICMP message.
type icmpKind = icmpwire.Kind

const (
	icmpOther        = icmpwire.KindOther
	icmpEchoReply    = icmpwire.KindEchoReply
	icmpTimeExceeded = icmpwire.KindTimeExceeded
	icmpUnreachable  = icmpwire.KindUnreachable
	icmpTooBig       = icmpwire.KindTooBig // IPv4 fragmentation-needed or ICMPv6 packet-too-big
)

// icmpPacket is a parsed ICMP or ICMPv6 message. For errors, the quoted
// fields describe the original datagram the message is about.
type icmpPacket struct {
	kind icmpKind
	typ  int
	code int
	// id, seq and data are the echo reply's identifier, sequence number
	// and payload.
	id, seq uint16
	data    []byte
	// mtu is the next-hop MTU of a too-big message (0: not given).
	mtu int
	// The quoted datagram: protocol, addresses, total length (0 when the
	// quote does not say) and transport header (at least 8 bytes).
	qProto   int
	qSrc     netip.Addr
	qDst     netip.Addr
	qLen     int
	qPayload []byte
}

// parseICMP parses an ICMP (ipv6 false) or ICMPv6 message as read from a
// raw socket (without the IP header). ok is false for messages too short to
// be useful, and for kinds a trace does not use (parameter problem).
func parseICMP(ipv6 bool, b []byte) (p icmpPacket, ok bool) {
	h, ok := icmpwire.ParseHeader(ipv6, b)
	if !ok || h.Kind == icmpwire.KindParamProblem {
		return p, false
	}
	p.kind, p.typ, p.code, p.mtu = h.Kind, int(h.Type), int(h.Code), h.MTU
	if h.Kind == icmpEchoReply {
		p.id, p.seq, p.data = h.ID, h.Seq, b[icmpwire.HeaderLen:]
		return p, true
	}
	return p, p.parseQuote(ipv6, b[icmpwire.HeaderLen:])
}

// parseQuote reads the original datagram quoted in an ICMP error.
func (p *icmpPacket) parseQuote(ipv6 bool, q []byte) bool {
	if ipv6 {
		if len(q) < 40+8 || q[0]>>4 != 6 {
			return false
		}
		p.qProto = int(q[6])
		p.qSrc, _ = netip.AddrFromSlice(q[8:24])
		p.qDst, _ = netip.AddrFromSlice(q[24:40])
		p.qLen = 40 + int(binary.BigEndian.Uint16(q[4:]))
		p.qPayload = q[40:]
		return true
	}
	if len(q) < 20 || q[0]>>4 != 4 {
		return false
	}
	ihl := int(q[0]&0x0f) * 4
	if ihl < 20 || len(q) < ihl+8 {
		return false
	}
	p.qProto = int(q[9])
	p.qSrc, _ = netip.AddrFromSlice(q[12:16])
	p.qDst, _ = netip.AddrFromSlice(q[16:20])
	p.qLen = int(binary.BigEndian.Uint16(q[2:]))
	p.qPayload = q[ihl:]
	return true
}

// unreachableName names an ICMP destination-unreachable code, as traceroute
// marks them (!N, !H, !P, !X …).
func unreachableName(ipv6 bool, code int) string {
	return icmpwire.UnreachableLabel(ipv6, uint8(code))
}
