//go:build linux

package icmpecho

import (
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/bpftest"
	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// The receiving raw socket's filter passes this process's echo replies and
// every error, and drops other pingers' replies, in both IP versions (an
// IPv4 raw socket's filter sees the IP header, with or without options).
func TestReplyFilter(t *testing.T) {
	const mine, theirs = 0x11223344, 0x55667788
	reply := func(v6 bool, mg uint32) []byte {
		b := buildEcho(v6, 1, mg, 2, 28)
		b[0] = icmpwire.ICMP4EchoReply
		if v6 {
			b[0] = icmpwire.ICMP6EchoReply
		}
		return b
	}
	withIP := func(ihl int, icmp []byte) []byte {
		h := make([]byte, ihl)
		h[0] = 0x40 | byte(ihl/4)
		return append(h, icmp...)
	}
	errMsg := func(typ uint8) []byte { return append([]byte{typ, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 28)...) }
	for _, tc := range []struct {
		name string
		v6   bool
		pkt  []byte
		pass bool
	}{
		{"v4 mine", false, withIP(20, reply(false, mine)), true},
		{"v4 mine, IP options", false, withIP(24, reply(false, mine)), true},
		{"v4 theirs", false, withIP(20, reply(false, theirs)), false},
		{"v4 time exceeded", false, withIP(20, errMsg(icmpwire.ICMP4TimeExceeded)), true},
		{"v4 type 40", false, withIP(20, errMsg(40)), false},
		{"v6 mine", true, reply(true, mine), true},
		{"v6 theirs", true, reply(true, theirs), false},
		{"v6 packet too big", true, errMsg(icmpwire.ICMP6PacketTooBig), true},
		{"v6 type 135", true, errMsg(135), false},
	} {
		bpftest.Expect(t, tc.name, replyFilter(tc.v6, mine), tc.pkt, tc.pass)
	}
}

// The pacer lets a burst of half the receive buffer through at once and
// then refills half the buffer per queueWindow: 10,000 echoes started at
// one instant on the buffer a datagram socket gets where net.core.rmem_max
// is the usual 212992 (twice that: 425984) are spread over half a second,
// and on root's 32 MiB (64 MiB granted) they go at once.
func TestPacer(t *testing.T) {
	for _, tc := range []struct {
		rcvbuf   int
		min, max time.Duration
	}{{425984, 400 * time.Millisecond, 600 * time.Millisecond}, {64 << 20, 0, 0}} {
		var s scheduler
		s.init()
		s.fit(tc.rcvbuf)
		start := s.refilled
		now := start
		for range 10000 {
			for {
				wait, ok := s.take(now, perPacketCost+36)
				if ok {
					break
				}
				now = now.Add(wait)
			}
		}
		if spread := now.Sub(start); spread < tc.min || spread > tc.max {
			t.Errorf("rcvbuf %d: 10,000 echoes spread over %v, want %v-%v", tc.rcvbuf, spread, tc.min, tc.max)
		}
	}
}
