package icmpecho

import (
	"encoding/binary"
	"net/netip"

	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// IP protocol numbers of the quoted datagram (icmpwire has the ICMP types).
const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// MarkLen is the length of the mark that begins every echo payload: the
// process's magic number (4 bytes) and the probe's token (identifier and a
// random generation, 4 bytes). It is the smallest payload the engine sends.
const MarkLen = 8

// filler fills echo payloads after the mark, so a packet capture shows
// where they came from.
var filler = []byte("isp-checker echo ")

// buildEcho writes an echo request (ICMP, or ICMPv6 when v6) with id and
// sequence number 0 and a payload of size bytes (at least MarkLen) that
// begins with the mark. setSeq fills in the sequence number and, for IPv4,
// the checksum (the kernel computes ICMPv6 and datagram-socket checksums).
func buildEcho(v6 bool, id uint16, magic, token uint32, size int) []byte {
	size = max(size, MarkLen)
	b := make([]byte, 8+size)
	b[0] = icmpwire.ICMP4Echo
	if v6 {
		b[0] = icmpwire.ICMP6Echo
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], magic)
	binary.BigEndian.PutUint32(b[12:], token)
	for i := range b[16:] {
		b[16+i] = filler[i%len(filler)]
	}
	return b
}

// setSeq sets the sequence number of an echo request built by buildEcho
// and, for IPv4, its checksum.
func setSeq(b []byte, v6 bool, seq uint16) {
	binary.BigEndian.PutUint16(b[6:], seq)
	if v6 {
		return
	}
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[2:], checksum(b))
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 { return icmpwire.Checksum(0, b) }

// Kind classifies an ICMP message the engine received.
type Kind = icmpwire.Kind

// Kinds of message.
const (
	KindOther        = icmpwire.KindOther
	KindEchoReply    = icmpwire.KindEchoReply
	KindTimeExceeded = icmpwire.KindTimeExceeded
	KindUnreachable  = icmpwire.KindUnreachable
	KindTooBig       = icmpwire.KindTooBig // IPv4 fragmentation needed, ICMPv6 packet too big
	KindParamProblem = icmpwire.KindParamProblem
)

// message is a parsed ICMP message: an echo reply, or an error about an
// echo request (whose quoted header and, when quoted, payload it holds).
type message struct {
	kind      Kind
	typ, code uint8
	// id and seq are the echo's identifier and sequence number: the
	// reply's, or the quoted request's.
	id, seq uint16
	// data is the reply's payload, or the quoted request's payload (often
	// cut short: routers must quote only 8 bytes of the original).
	data []byte
	// mtu is the next-hop MTU of a too-big error (0: not given).
	mtu int
	// qDst is the quoted request's destination (errors only).
	qDst netip.Addr
}

// parseMessage parses an ICMP (ICMPv6 when v6) message without IP header.
// ok is false for anything that is neither an echo reply nor an error
// quoting an echo request.
func parseMessage(v6 bool, b []byte) (m message, ok bool) {
	h, ok := icmpwire.ParseHeader(v6, b)
	if !ok {
		return m, false
	}
	m.kind, m.typ, m.code, m.mtu = h.Kind, h.Type, h.Code, h.MTU
	if h.Kind == KindEchoReply {
		m.id, m.seq, m.data = h.ID, h.Seq, b[icmpwire.HeaderLen:]
		return m, true
	}
	return m, m.parseQuote(v6, b[icmpwire.HeaderLen:])
}

// parseQuote reads the echo request quoted in an error.
func (m *message) parseQuote(v6 bool, q []byte) bool {
	var proto, echo uint8
	var hdr int
	if v6 {
		if len(q) < 40+8 || q[0]>>4 != 6 {
			return false
		}
		proto, echo, hdr = q[6], icmpwire.ICMP6Echo, 40
		m.qDst, _ = netip.AddrFromSlice(q[24:40])
	} else {
		if len(q) < 20 || q[0]>>4 != 4 {
			return false
		}
		hdr = int(q[0]&0x0f) * 4
		if hdr < 20 || len(q) < hdr+8 {
			return false
		}
		proto, echo = q[9], icmpwire.ICMP4Echo
		m.qDst, _ = netip.AddrFromSlice(q[16:20])
	}
	want := uint8(protoICMP)
	if v6 {
		want = protoICMPv6
	}
	e := q[hdr:]
	if proto != want || e[0] != echo {
		return false
	}
	m.id = binary.BigEndian.Uint16(e[4:])
	m.seq = binary.BigEndian.Uint16(e[6:])
	m.data = e[8:]
	return true
}

// mark reads the magic number and token at the start of an echo payload;
// ok is false when the payload is too short to hold them.
func mark(data []byte) (magic, token uint32, ok bool) {
	if len(data) < MarkLen {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(data), binary.BigEndian.Uint32(data[4:]), true
}
