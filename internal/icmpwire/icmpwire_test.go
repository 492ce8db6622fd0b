package icmpwire

import "testing"

func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		v6   bool
		msg  []byte
		ok   bool
		want Header
	}{
		{"v4 echo reply", false, []byte{0, 0, 0, 0, 0, 7, 0, 3}, true, Header{Kind: KindEchoReply, ID: 7, Seq: 3}},
		{"v6 echo reply", true, []byte{129, 0, 0, 0, 1, 0, 0, 2}, true, Header{Kind: KindEchoReply, Type: 129, ID: 256, Seq: 2}},
		{"v4 frag needed", false, []byte{3, 4, 0, 0, 0, 0, 5, 0xdc}, true, Header{Kind: KindTooBig, Type: 3, Code: 4, MTU: 1500}},
		{"v4 port unreachable", false, []byte{3, 3, 0, 0, 0, 0, 5, 0xdc}, true, Header{Kind: KindUnreachable, Type: 3, Code: 3}},
		{"v6 too big", true, []byte{2, 0, 0, 0, 0, 0, 5, 0x78}, true, Header{Kind: KindTooBig, Type: 2, MTU: 1400}},
		{"v6 time exceeded", true, []byte{3, 0, 0, 0, 0, 0, 0, 0}, true, Header{Kind: KindTimeExceeded, Type: 3}},
		{"v4 parameter problem", false, []byte{12, 0, 0, 0, 0, 0, 0, 0}, true, Header{Kind: KindParamProblem, Type: 12}},
		// Type 3 is time exceeded in ICMPv6 but unreachable in ICMP.
		{"v4 type 3 is unreachable", false, []byte{3, 0, 0, 0, 0, 0, 0, 0}, true, Header{Kind: KindUnreachable, Type: 3}},
		{"v4 echo request", false, []byte{8, 0, 0, 0, 0, 0, 0, 0}, false, Header{}},
		{"v6 neighbour solicitation", true, []byte{135, 0, 0, 0, 0, 0, 0, 0}, false, Header{}},
		{"short", false, []byte{0, 0, 0, 0, 0, 0, 0}, false, Header{}},
	} {
		h, ok := ParseHeader(tc.v6, tc.msg)
		if ok != tc.ok || (ok && h != tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tc.name, h, ok, tc.want, tc.ok)
		}
	}
}

// The two forms of a code's name: traceroute's hop marks and the echo
// engine's error messages have always differed, and each must keep its own.
func TestUnreachableNames(t *testing.T) {
	for _, tc := range []struct {
		v6          bool
		code        uint8
		label, text string
	}{
		{false, 3, "port", "port"},
		{false, 13, "admin_prohibited", "administratively prohibited"},
		{false, 4, "fragmentation_needed", "code 4"},
		{false, 5, "code_5", "code 5"},
		{true, 0, "no_route", "no route"},
		{true, 3, "address", "address"},
		{true, 6, "admin_prohibited", "administratively prohibited"},
		{true, 7, "code_7", "code 7"},
	} {
		if got := UnreachableLabel(tc.v6, tc.code); got != tc.label {
			t.Errorf("UnreachableLabel(%v, %d) = %q, want %q", tc.v6, tc.code, got, tc.label)
		}
		if got := UnreachableText(tc.v6, tc.code); got != tc.text {
			t.Errorf("UnreachableText(%v, %d) = %q, want %q", tc.v6, tc.code, got, tc.text)
		}
	}
}

// RFC 1071, section 3's worked example, then an odd length and a message
// whose checksum field is set: it sums to zero.
func TestChecksum(t *testing.T) {
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Fold(OnesSum(0, b)); got != 0xddf2 {
		t.Errorf("folded sum %#04x, want 0xddf2", got)
	}
	if got := Checksum(0, b); got != 0x220d {
		t.Errorf("checksum %#04x, want 0x220d", got)
	}
	if got := Checksum(0, []byte{0x01}); got != ^uint16(0x0100) {
		t.Errorf("odd length: %#04x, want %#04x", got, ^uint16(0x0100))
	}
	echo := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n'}
	c := Checksum(0, echo)
	echo[2], echo[3] = byte(c>>8), byte(c)
	if got := Checksum(0, echo); got != 0 {
		t.Errorf("a message with its checksum set sums to %#04x, want 0", got)
	}
}
