package icmpecho

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// An echo request carries the mark after its header; its IPv4 checksum is
// right whatever the sequence number.
func TestBuildEcho(t *testing.T) {
	for _, seq := range []uint16{0, 1, 0x8000, 0xffff} {
		b := buildEcho(false, 0x1234, 0xdeadbeef, 0x12340042, 28)
		setSeq(b, false, seq)
		if len(b) != 36 || b[0] != icmpwire.ICMP4Echo || binary.BigEndian.Uint16(b[4:]) != 0x1234 || binary.BigEndian.Uint16(b[6:]) != seq {
			t.Fatalf("header % x", b[:8])
		}
		if checksum(b) != 0 {
			t.Errorf("seq %d: checksum does not verify", seq)
		}
		if m, tok, ok := mark(b[8:]); !ok || m != 0xdeadbeef || tok != 0x12340042 {
			t.Errorf("mark %x %x %v", m, tok, ok)
		}
	}
	if b := buildEcho(true, 1, 2, 3, 0); len(b) != 8+MarkLen || b[0] != icmpwire.ICMP6Echo {
		t.Errorf("short IPv6 request % x", b)
	}
}

// Replies and errors parse; an error's quote gives the request's
// identifier, sequence number, destination and (when quoted) mark.
func TestParseMessage(t *testing.T) {
	req := buildEcho(false, 7, 0xabcdef01, 0x00070009, 28)
	setSeq(req, false, 3)
	reply := append([]byte{}, req...)
	reply[0] = icmpwire.ICMP4EchoReply
	m, ok := parseMessage(false, reply)
	if !ok || m.kind != KindEchoReply || m.id != 7 || m.seq != 3 {
		t.Fatalf("reply: %+v %v", m, ok)
	}
	ip := make([]byte, 20)
	ip[0], ip[9] = 0x45, protoICMP
	copy(ip[16:], []byte{192, 0, 2, 7})
	for _, tc := range []struct {
		typ, code uint8
		kind      Kind
		quote     int
	}{
		{icmpwire.ICMP4TimeExceeded, 0, KindTimeExceeded, 8},
		{icmpwire.ICMP4DstUnreach, 1, KindUnreachable, 16},
		{icmpwire.ICMP4DstUnreach, icmpwire.ICMP4CodeFragNeeded, KindTooBig, 36},
	} {
		msg := append([]byte{tc.typ, tc.code, 0, 0, 0, 0, 0x05, 0xdc}, append(ip, req[:tc.quote]...)...)
		m, ok := parseMessage(false, msg)
		if !ok || m.kind != tc.kind || m.id != 7 || m.seq != 3 || m.qDst != netip.MustParseAddr("192.0.2.7") {
			t.Errorf("type %d code %d: %+v %v", tc.typ, tc.code, m, ok)
		}
		if _, _, marked := mark(m.data); marked != (tc.quote >= 16) {
			t.Errorf("quote of %d bytes: marked %v", tc.quote, marked)
		}
		if tc.kind == KindTooBig && m.mtu != 1500 {
			t.Errorf("next-hop MTU %d", m.mtu)
		}
	}
	// Not an echo request quoted, too short, another type: ignored.
	udp := append([]byte{}, ip...)
	udp[9] = 17
	for _, b := range [][]byte{
		append([]byte{icmpwire.ICMP4TimeExceeded, 0, 0, 0, 0, 0, 0, 0}, append(udp, req[:8]...)...),
		reply[:6],
		{13, 0, 0, 0, 0, 0, 0, 0},
	} {
		if m, ok := parseMessage(false, b); ok {
			t.Errorf("% x parsed as %+v", b, m)
		}
	}
}
