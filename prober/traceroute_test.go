package prober

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// traceTestWriter sends log lines to t.Log.
type traceTestWriter struct{ t testing.TB }

func (w traceTestWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// traceTestLogger logs at debug level into the test's log.
func traceTestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(traceTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestTraceEchoChecksumConstant: Paris traceroute keeps the ICMP checksum
// constant across the probes of a trace, whatever their sequence number.
func TestTracerouteEchoChecksumConstant(t *testing.T) {
	const id, token = 0x1234, 0xdeadbeef
	first := buildEcho(false, id, 0, token, tracePayloadLen)
	want := binary.BigEndian.Uint16(first[2:])
	for _, seq := range []uint16{1, 2, 0x7fff, 0x8000, 0xfffe, 0xffff, 12345} {
		b := buildEcho(false, id, seq, token, tracePayloadLen)
		if got := binary.BigEndian.Uint16(b[2:]); got != want {
			t.Errorf("seq %d: checksum %#04x, want %#04x", seq, got, want)
		}
		if icmpwire.Checksum(0, b) != 0 {
			t.Errorf("seq %d: packet does not checksum to zero", seq)
		}
		if len(b) != 8+tracePayloadLen {
			t.Errorf("length %d", len(b))
		}
		// What the kernel computes for ICMPv6 (over a fixed pseudo
		// header) is constant too.
		src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
		b6 := buildEcho(true, id, seq, token, tracePayloadLen)
		c6 := icmpwire.Checksum(pseudoHeaderSum(src, dst, protoICMPv6, len(b6)), b6)
		b60 := buildEcho(true, id, 0, token, tracePayloadLen)
		if c60 := icmpwire.Checksum(pseudoHeaderSum(src, dst, protoICMPv6, len(b60)), b60); c6 != c60 {
			t.Errorf("seq %d: ICMPv6 checksum %#04x, seq 0 %#04x", seq, c6, c60)
		}
	}
}

// TestTraceUDPChecksumChosen: buildUDP makes the checksum any value in
// 1…0xfffe, with the ports and length (the flow) unchanged, and the datagram
// is valid (it sums to zero with its pseudo header).
func TestTracerouteUDPChecksumChosen(t *testing.T) {
	pairs := [][2]netip.Addr{
		{netip.MustParseAddr("198.51.100.34"), netip.MustParseAddr("203.0.113.34")},
		{netip.MustParseAddr("2001:db8:101:1::2"), netip.MustParseAddr("2001:db8:101:3::2")},
	}
	for _, pr := range pairs {
		for want := uint32(1); want <= 0xfffe; want++ {
			b := buildUDP(pr[0], pr[1], 40000, 33434, uint16(want), tracePayloadLen)
			got := binary.BigEndian.Uint16(b[6:])
			if got != uint16(want) {
				t.Fatalf("%v: checksum %#04x, want %#04x", pr, got, want)
			}
			if s := icmpwire.Checksum(pseudoHeaderSum(pr[0], pr[1], protoUDP, len(b)), b); s != 0 {
				t.Fatalf("%v want %#04x: datagram does not verify (%#04x)", pr, want, s)
			}
			if binary.BigEndian.Uint16(b[0:]) != 40000 || binary.BigEndian.Uint16(b[2:]) != 33434 || int(binary.BigEndian.Uint16(b[4:])) != 8+tracePayloadLen {
				t.Fatalf("header changed: % x", b[:8])
			}
		}
	}
}

func TestTracerouteSYN(t *testing.T) {
	src, dst := netip.MustParseAddr("198.51.100.34"), netip.MustParseAddr("203.0.113.34")
	b := buildSYN(src, dst, 40000, 80, 0x01020304)
	if icmpwire.Checksum(pseudoHeaderSum(src, dst, protoTCP, len(b)), b) != 0 {
		t.Error("SYN does not verify")
	}
	seg, ok := parseTCP(b)
	if !ok || seg.sport != 40000 || seg.dport != 80 || seg.seq != 0x01020304 || seg.flags != tcpSYN {
		t.Errorf("parsed %+v", seg)
	}
}

// icmpError wraps a quoted datagram (IP header and payload) in an ICMP
// error message.
func icmpError(typ, code byte, rest uint32, quoted []byte) []byte {
	b := make([]byte, 8, 8+len(quoted))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	return append(b, quoted...)
}

func ipv4Header(proto byte, src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	h[8], h[9] = 1, proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, payload...)
}

func ipv6Header(proto byte, src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = proto, 1
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// traceTestOptions are the options of a traceroute module of protocol
// proto, built as config builds them (its defaults and port).
func traceTestOptions(proto string, maxHops, perHop int) config.TracerouteProbe {
	o := config.NewModule("traceroute").Traceroute
	o.Protocol, o.MaxHops, o.PacketsPerHop = proto, maxHops, perHop
	switch proto {
	case config.TracerouteProtocolUDP:
		o.Port = config.DefaultTracerouteUDPPort
	case config.TracerouteProtocolTCP:
		o.Port = config.DefaultTracerouteTCPPort
	}
	if err := o.Validate(); err != nil {
		panic(err)
	}
	return o
}

// TestTraceParseAndMatch feeds hand-built ICMP errors to a trace and checks
// what it matches, what it ignores, and the hops it reports.
func TestTracerouteParseAndMatch(t *testing.T) {
	src4, dst4 := netip.MustParseAddr("198.51.100.34"), netip.MustParseAddr("203.0.113.34")
	r1, r2 := netip.MustParseAddr("198.51.100.33"), netip.MustParseAddr("198.51.100.38")
	other := netip.MustParseAddr("203.0.113.99")
	newT := func(proto string) *trace {
		o := traceTestOptions(proto, 5, 2)
		tr := &trace{o: o, dst: dst4, id: 77, token: 42, byKey: map[uint32]*tracePacket{}, done: make(chan struct{}),
			socks: &traceSockets{src: src4, sport: 40000}}
		for ttl := 1; ttl <= 5; ttl++ {
			for k := range 2 {
				key := uint32(1000 + 2*(ttl-1) + k)
				p := &tracePacket{ttl: ttl, key: key, tried: true, sent: time.Now()}
				tr.probes = append(tr.probes, p)
				tr.byKey[key] = p
			}
		}
		return tr
	}
	feed := func(tr *trace, from netip.Addr, msg []byte) {
		t.Helper()
		m, ok := parseICMP(false, msg)
		if !ok {
			t.Fatalf("cannot parse % x", msg)
		}
		tr.onICMP(m, from, time.Now())
	}
	t.Run("icmp", func(t *testing.T) {
		tr := newT("icmp")
		echo := func(seq uint16) []byte { return buildEcho(false, 77, seq, 42, tracePayloadLen) }
		quote := func(seq uint16) []byte { return ipv4Header(protoICMP, src4, dst4, echo(seq)) }
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1000)))
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1001)))
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1001))) // duplicate
		// Only 8 bytes quoted (RFC 792): still matched, by id and sequence.
		feed(tr, r2, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, ipv4Header(protoICMP, src4, dst4, echo(1002)[:8])))
		// Wrong identifier, token, destination: ignored.
		wrongID := buildEcho(false, 78, 1003, 42, tracePayloadLen)
		feed(tr, r2, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, ipv4Header(protoICMP, src4, dst4, wrongID)))
		wrongToken := buildEcho(false, 77, 1003, 43, tracePayloadLen)
		feed(tr, r2, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, ipv4Header(protoICMP, src4, dst4, wrongToken)))
		feed(tr, r2, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, ipv4Header(protoICMP, src4, other, echo(1003))))
		// Echo replies: TTL 3 reaches the destination; an echo reply with a
		// foreign token is not ours.
		reply := echo(1004)
		reply[0] = icmpwire.ICMP4EchoReply
		feed(tr, dst4, reply)
		reply = echo(1005)
		reply[0] = icmpwire.ICMP4EchoReply
		reply[8] ^= 0xff
		feed(tr, dst4, reply)
		select {
		case <-tr.done:
			t.Fatal("done before every probe up to the destination answered")
		default:
		}
		reply = echo(1005)
		reply[0] = icmpwire.ICMP4EchoReply
		feed(tr, dst4, reply)
		select {
		case <-tr.done:
			t.Fatal("done while probe 1003 (TTL 2) is still unanswered")
		default:
		}
		feed(tr, r2, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1003)))
		select {
		case <-tr.done:
		default:
			t.Fatal("not done after every probe up to the destination answered")
		}
		res := &TracerouteResult{}
		tr.fill(res)
		want := []string{r1.String(), r2.String(), dst4.String()}
		if got := resultAddresses(res); !slices.Equal(got, want) || !res.DestinationReached || res.HopCount != 3 {
			t.Fatalf("hops %v reached %v count %d; want %v", got, res.DestinationReached, res.HopCount, want)
		}
		for _, h := range res.Hops {
			if h.Received != 2 || h.LossRatio != 0 {
				t.Errorf("hop %d: %+v", h.TTL, h)
			}
		}
		if tr.dups != 1 {
			t.Errorf("duplicates %d", tr.dups)
		}
	})
	t.Run("udp", func(t *testing.T) {
		tr := newT("udp")
		quote := func(key uint16, dport uint16) []byte {
			return ipv4Header(protoUDP, src4, dst4, buildUDP(src4, dst4, 40000, dport, key, tracePayloadLen)[:8])
		}
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1000, 33434)))
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1001, 33435))) // another flow
		feed(tr, dst4, icmpError(icmpwire.ICMP4DstUnreach, icmp4CodePortUnreach, 0, quote(1002, 33434)))
		feed(tr, dst4, icmpError(icmpwire.ICMP4DstUnreach, icmp4CodePortUnreach, 0, quote(1003, 33434)))
		res := &TracerouteResult{}
		tr.fill(res)
		if !res.DestinationReached || res.HopCount != 2 || res.Hops[0].Received != 1 || res.Hops[1].Received != 2 {
			t.Errorf("%+v", res)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		tr := newT("tcp")
		quote := func(seq uint32) []byte {
			return ipv4Header(protoTCP, src4, dst4, buildSYN(src4, dst4, 40000, 80, seq)[:8])
		}
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1000)))
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1001)))
		tr.onTCP(tcpSegment{sport: 80, dport: 40000, ack: 1003, flags: tcpSYN | tcpACK}, dst4, time.Now())
		tr.onTCP(tcpSegment{sport: 80, dport: 40000, ack: 1004, flags: tcpRST | tcpACK}, dst4, time.Now())
		tr.onTCP(tcpSegment{sport: 80, dport: 40000, ack: 1003, flags: tcpACK}, dst4, time.Now())           // dup ACK: ignored
		tr.onTCP(tcpSegment{sport: 80, dport: 40001, ack: 1005, flags: tcpRST | tcpACK}, dst4, time.Now())  // other port
		tr.onTCP(tcpSegment{sport: 80, dport: 40000, ack: 1005, flags: tcpRST | tcpACK}, other, time.Now()) // other host
		res := &TracerouteResult{}
		tr.fill(res)
		if !res.DestinationReached || res.HopCount != 2 || res.Hops[1].Received != 2 || res.Hops[0].LossRatio != 0 {
			t.Errorf("%+v", res)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		tr := newT("icmp")
		quote := func(seq uint16) []byte {
			return ipv4Header(protoICMP, src4, dst4, buildEcho(false, 77, seq, 42, tracePayloadLen))
		}
		feed(tr, r1, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1000)))
		feed(tr, r2, icmpError(icmpwire.ICMP4DstUnreach, 1, 0, quote(1002)))
		feed(tr, r2, icmpError(icmpwire.ICMP4DstUnreach, 1, 0, quote(1004)))
		res := &TracerouteResult{}
		tr.fill(res)
		if res.DestinationReached || res.HopCount != 2 || res.Hops[1].Unreachable != "host" || res.Unreachable == "" {
			t.Errorf("%+v", res)
		}
	})
	t.Run("silent_tail", func(t *testing.T) {
		tr := newT("icmp")
		quote := func(seq uint16) []byte {
			return ipv4Header(protoICMP, src4, dst4, buildEcho(false, 77, seq, 42, tracePayloadLen))
		}
		feed(tr, r2, icmpError(icmpwire.ICMP4TimeExceeded, 0, 0, quote(1003)))
		res := &TracerouteResult{}
		tr.fill(res)
		if res.DestinationReached || res.HopCount != 2 || resultAddresses(res)[0] != "*" || res.Hops[0].LossRatio != 1 {
			t.Errorf("%+v", res)
		}
	})
}

// TestTraceParseICMPv6 covers the ICMPv6 shapes, including packet-too-big's
// MTU and IPv4 frag-needed's.
func TestTracerouteParseICMPv6(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	q := ipv6Header(protoUDP, src, dst, buildUDP(src, dst, 1, 2, 3, 8))
	m, ok := parseICMP(true, icmpError(icmpwire.ICMP6PacketTooBig, 0, 1400, q))
	if !ok || m.kind != icmpTooBig || m.mtu != 1400 || m.qDst != dst || m.qSrc != src || m.qProto != protoUDP || m.qLen != 40+16 {
		t.Errorf("packet too big: %+v", m)
	}
	m, ok = parseICMP(true, icmpError(icmpwire.ICMP6DstUnreach, icmp6CodePortUnreach, 0, q))
	if !ok || m.kind != icmpUnreachable || unreachableName(true, m.code) != "port" {
		t.Errorf("port unreachable: %+v", m)
	}
	if _, ok := parseICMP(true, icmpError(icmpwire.ICMP6TimeExceeded, 0, 0, q[:30])); ok {
		t.Error("a truncated quote parsed")
	}
	s4, d4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	m, ok = parseICMP(false, icmpError(icmpwire.ICMP4DstUnreach, icmpwire.ICMP4CodeFragNeeded, 1400, ipv4Header(protoICMP, s4, d4, make([]byte, 8))))
	if !ok || m.kind != icmpTooBig || m.mtu != 1400 || m.qLen != 28 {
		t.Errorf("frag needed: %+v", m)
	}
	if _, ok := parseICMP(false, []byte{icmpwire.ICMP4TimeExceeded, 0, 0}); ok {
		t.Error("a short message parsed")
	}
	if _, ok := parseICMP(false, icmpError(5, 0, 0, ipv4Header(protoICMP, s4, d4, make([]byte, 8)))); ok {
		t.Error("a redirect parsed")
	}
}

// TestTracePathHash: the hash depends on the ordered addresses only, and
// fits a float64 exactly.
func TestTraceroutePathHash(t *testing.T) {
	hops := func(addrs ...string) []TracerouteHop {
		var h []TracerouteHop
		for i, a := range addrs {
			h = append(h, TracerouteHop{TTL: i + 1, Address: a, RTTMeanSeconds: float64(i)})
		}
		return h
	}
	a := pathHash(hops("192.0.2.1", "*", "198.51.100.1"))
	b := pathHash(hops("192.0.2.1", "*", "198.51.100.1"))
	c := pathHash(hops("192.0.2.1", "198.51.100.1", "*"))
	d := pathHash(hops("192.0.2.1", "198.51.100.1"))
	if a != b || a == c || a == d || c == d {
		t.Errorf("hashes %d %d %d %d", a, b, c, d)
	}
	for _, h := range []uint64{a, c, d} {
		if h >= 1<<PathHashBits || uint64(float64(h)) != h {
			t.Errorf("hash %d is not exact as a float64", h)
		}
	}
	// Same path, different RTTs: same hash.
	h2 := hops("192.0.2.1", "*", "198.51.100.1")
	h2[0].RTTMeanSeconds = 9
	if pathHash(h2) != a {
		t.Error("RTTs changed the hash")
	}
}

// TestTraceHopAddressChoice: most answers win, ties go to the smallest
// address, and all are listed.
func TestTracerouteHopAddressChoice(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("192.0.2.10")
	ps := []*tracePacket{
		{ttl: 1, replied: true, from: a, rtt: time.Millisecond},
		{ttl: 1, replied: true, from: b, rtt: 3 * time.Millisecond},
		{ttl: 1},
	}
	h := summarizeHop(1, ps)
	if h.Address != "192.0.2.9" || !slices.Equal(h.Addresses, []string{"192.0.2.9", "192.0.2.10"}) {
		t.Errorf("tie: %+v", h)
	}
	if h.Sent != 3 || h.Received != 2 || h.RTTMeanSeconds != 0.002 || h.RTTMinSeconds != 0.001 || h.RTTMaxSeconds != 0.003 {
		t.Errorf("stats: %+v", h)
	}
	if math.Abs(h.LossRatio-1.0/3) > 1e-12 {
		t.Errorf("loss %v", h.LossRatio)
	}
	ps = append(ps, &tracePacket{ttl: 1, replied: true, from: b})
	if h := summarizeHop(1, ps); h.Address != "192.0.2.10" {
		t.Errorf("majority: %+v", h)
	}
}

// TestTracerouteTargetPolicy: a denied target is refused before any socket
// is opened or packet sent, by both probers.
func TestTracerouteTargetPolicy(t *testing.T) {
	var denied int
	tp := config.DefaultTargetPolicy()
	tp.DenyNetworks = append(tp.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.0/8")})
	policy := NewPolicy(tp, func() { denied++ })
	for _, m := range []config.Module{
		traceModule(t, time.Second, ""), traceModule(t, time.Second, "protocol: tcp"), traceModule(t, time.Second, "protocol: udp"),
		mtuModule(t, time.Second, ""),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
		res := Run(ctx, probeTestFunc(m.Prober), Request{Target: "127.0.0.1", Module: &m, Policy: policy, Logger: traceTestLogger(t)})
		cancel()
		if c := res.Base(); c.Success || !strings.Contains(c.Error, "refused by target_policy") {
			t.Errorf("%s: success %v error %q, want denied", m.Prober, c.Success, c.Error)
		}
		if tr, ok := res.(*TracerouteResult); ok && tr.PacketsSent != 0 {
			t.Errorf("traceroute sent %d packets to a denied target", tr.PacketsSent)
		}
	}
	if denied != 4 {
		t.Errorf("policy counted %d denials, want 4", denied)
	}
}

// TestTracerouteLoopback traces loopback in every mode (needs raw
// sockets): one hop, reached, every probe answered.
func TestTracerouteLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (raw sockets)")
	}
	for _, target := range []string{"127.0.0.1", "::1"} {
		for _, opts := range []string{"", "protocol: udp", "protocol: tcp\nport: 9"} {
			res, _ := runTrace(t, target, traceModule(t, 3*time.Second, opts))
			checkTrace(t, res, []string{target})
		}
	}
}
