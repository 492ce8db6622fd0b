//go:build linux

package prober

import (
	"encoding/binary"
	"testing"

	"github.com/isp-checker/isp-checker/internal/bpftest"
	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// A trace's or path-MTU search's ICMP socket passes every error and only
// its own echo replies: not the echo engine's (10,000 a second with 10,000
// probes), in both IP versions, with or without IPv4 options; a udp or tcp
// trace (identifier 0) takes no echo reply at all.
func TestEchoIDFilter(t *testing.T) {
	icmpMsg := func(v6 bool, typ uint8, id uint16) []byte {
		b := make([]byte, 36)
		b[0] = typ
		binary.BigEndian.PutUint16(b[4:], id)
		return b
	}
	withIP := func(ihl int, b []byte) []byte {
		h := make([]byte, ihl)
		h[0] = 0x40 | byte(ihl/4)
		return append(h, b...)
	}
	for _, tc := range []struct {
		name   string
		v6     bool
		filter uint16
		pkt    []byte
		pass   bool
	}{
		{"v4 own reply", false, 77, withIP(20, icmpMsg(false, icmpwire.ICMP4EchoReply, 77)), true},
		{"v4 own reply, IP options", false, 77, withIP(28, icmpMsg(false, icmpwire.ICMP4EchoReply, 77)), true},
		{"v4 another's reply", false, 77, withIP(20, icmpMsg(false, icmpwire.ICMP4EchoReply, 78)), false},
		{"v4 time exceeded", false, 77, withIP(20, icmpMsg(false, icmpwire.ICMP4TimeExceeded, 0)), true},
		{"v4 udp trace, a reply", false, 0, withIP(20, icmpMsg(false, icmpwire.ICMP4EchoReply, 0)), false},
		{"v4 udp trace, unreachable", false, 0, withIP(20, icmpMsg(false, icmpwire.ICMP4DstUnreach, 0)), true},
		{"v6 own reply", true, 77, icmpMsg(true, icmpwire.ICMP6EchoReply, 77), true},
		{"v6 another's reply", true, 77, icmpMsg(true, icmpwire.ICMP6EchoReply, 1), false},
		{"v6 packet too big", true, 77, icmpMsg(true, icmpwire.ICMP6PacketTooBig, 0), true},
		{"v6 tcp trace, a reply", true, 0, icmpMsg(true, icmpwire.ICMP6EchoReply, 5), false},
	} {
		bpftest.Expect(t, tc.name, echoIDFilter(tc.v6, tc.filter), tc.pkt, tc.pass)
	}
}
