package prober

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// fakeICMPConn is a net.PacketConn that delivers what fakePath queues.
type fakeICMPConn struct {
	ch     chan fakeICMPPacket
	closed chan struct{}
	once   sync.Once
}

type fakeICMPPacket struct {
	from netip.Addr
	b    []byte
}

func (c *fakeICMPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.ch:
		return copy(b, p.b), &net.IPAddr{IP: p.from.AsSlice()}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}
func (c *fakeICMPConn) WriteTo([]byte, net.Addr) (int, error) { return 0, nil }
func (c *fakeICMPConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
func (c *fakeICMPConn) LocalAddr() net.Addr              { return &net.IPAddr{} }
func (c *fakeICMPConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeICMPConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeICMPConn) SetWriteDeadline(time.Time) error { return nil }
func (c *fakeICMPConn) queue(from netip.Addr, b []byte)  { c.ch <- fakeICMPPacket{from, b} }

// fakePath is an IPv4 path for the mtu search: links of the given MTUs, each
// behind a router that answers too-big with the MTU (or with 0, or not at
// all), to a target that answers echo requests unless noEcho.
type fakePath struct {
	ifMTU  int
	links  []fakeLink
	noEcho bool
	// drop drops the n-th echo request sent (counting from 0).
	drop func(n int) bool
	sent int
}

type fakeLink struct {
	mtu    int
	icmp   bool // the router before it sends fragmentation-needed
	zero   bool // … with a next-hop MTU of 0 (pre-RFC 1191)
	router netip.Addr
}

var (
	fakeSrc = netip.MustParseAddr("192.0.2.10")
	fakeDst = netip.MustParseAddr("203.0.113.10")
)

func (f *fakePath) sockets() *mtuSockets {
	c := &fakeICMPConn{ch: make(chan fakeICMPPacket, 1000), closed: make(chan struct{})}
	var mu sync.Mutex
	return &mtuSockets{
		src: fakeSrc, ifName: "fake0", ifMTU: f.ifMTU, conn: c,
		close: func() { _ = c.Close() },
		send: func(b []byte) error {
			mu.Lock()
			defer mu.Unlock()
			size := 20 + len(b) // b is the ICMP message
			if size > f.ifMTU {
				return errMTUTooBigLocal
			}
			n := f.sent
			f.sent++
			if f.drop != nil && f.drop(n) {
				return nil
			}
			for _, l := range f.links {
				if size <= l.mtu {
					continue
				}
				if l.icmp {
					mtu := uint32(l.mtu)
					if l.zero {
						mtu = 0
					}
					quote := ipv4Header(protoICMP, fakeSrc, fakeDst, b[:8])
					binary.BigEndian.PutUint16(quote[2:], uint16(size))
					c.queue(l.router, icmpError(icmpwire.ICMP4DstUnreach, icmpwire.ICMP4CodeFragNeeded, mtu, quote))
				}
				return nil
			}
			if !f.noEcho {
				reply := append([]byte(nil), b...)
				reply[0] = icmpwire.ICMP4EchoReply
				c.queue(fakeDst, reply)
			}
			return nil
		},
	}
}

func runFakeMTU(t *testing.T, f *fakePath, o config.MTUProbe, timeout time.Duration) (*MTUResult, time.Duration, error) {
	t.Helper()
	if o.ReplyTimeout == 0 {
		o.ReplyTimeout = time.Second
	}
	socks := f.sockets()
	s := newMTUSearch(o, fakeDst, 4242, socks)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	dl, _ := ctx.Deadline()
	err := s.run(ctx, dl.Add(-100*time.Millisecond), traceTestLogger(t))
	took := time.Since(start)
	res := &MTUResult{}
	s.fill(res)
	res.MinSizeBytes, res.MaxSizeBytes = s.min, s.max
	t.Logf("path MTU %d, method %s, black hole %v, icmp %d, rounds %d, probes %d, ok %v, too big %v, err %v, took %v",
		res.PathMTUBytes, res.Method, res.BlackHole, res.ICMPMTUBytes, res.Rounds, res.ProbesSent, res.SizesOK, res.SizesTooBig, err, took.Round(time.Millisecond))
	return res, took, err
}

// TestMTUSearch runs the search against simulated paths with known MTUs.
func TestMTUSearch(t *testing.T) {
	r1, r2 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	for _, tc := range []struct {
		name      string
		path      fakePath
		o         config.MTUProbe
		mtu       int
		method    string
		blackHole bool
		icmpMTU   int
		maxRounds int
	}{
		{"clean", fakePath{ifMTU: 1500}, config.MTUProbe{}, 1500, MTUMethodLocal, false, 0, 1},
		{"jumbo", fakePath{ifMTU: 9000}, config.MTUProbe{}, 9000, MTUMethodLocal, false, 0, 1},
		{"max_size", fakePath{ifMTU: 9000}, config.MTUProbe{MaxSize: 1500}, 1500, MTUMethodLocal, false, 0, 1},
		{"icmp_1400", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1400, icmp: true, router: r1}}}, config.MTUProbe{}, 1400, MTUMethodICMP, false, 1400, 1},
		{"icmp_1234", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1234, icmp: true, router: r1}}}, config.MTUProbe{}, 1234, MTUMethodICMP, false, 1234, 1},
		{"icmp_zero_mtu", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1234, icmp: true, zero: true, router: r1}}}, config.MTUProbe{}, 1234, MTUMethodICMP, false, 0, 5},
		{"black_hole_1400", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1400}}}, config.MTUProbe{}, 1400, MTUMethodSearch, true, 0, 2},
		{"black_hole_1234", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1234}}}, config.MTUProbe{}, 1234, MTUMethodSearch, true, 0, 5},
		{"black_hole_min", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 576}}}, config.MTUProbe{}, 576, MTUMethodSearch, true, 0, 2},
		// ICMP from the first bottleneck, silence from the second.
		{"icmp_then_black_hole", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1450, icmp: true, router: r1}, {mtu: 1400, router: r2}}},
			config.MTUProbe{}, 1400, MTUMethodSearch, true, 1450, 3},
		{"two_icmp", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1450, icmp: true, router: r1}, {mtu: 1300, icmp: true, router: r2}}},
			config.MTUProbe{}, 1300, MTUMethodICMP, false, 1300, 2},
		// The first copy of every size is lost: the retries carry the search.
		{"loss", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1400}}, drop: func(n int) bool { return n%3 == 0 }},
			config.MTUProbe{Retries: 2}, 1400, MTUMethodSearch, true, 0, 2},
		{"min_size", fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1000}}}, config.MTUProbe{MinSize: 900}, 1000, MTUMethodSearch, true, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _, err := runFakeMTU(t, &tc.path, tc.o, 10*time.Second)
			if err != nil || res.PathMTUBytes != tc.mtu || res.Method != tc.method || res.BlackHole != tc.blackHole || res.ICMPMTUBytes != tc.icmpMTU {
				t.Errorf("got %d %s black hole %v icmp %d (err %v); want %d %s black hole %v icmp %d",
					res.PathMTUBytes, res.Method, res.BlackHole, res.ICMPMTUBytes, err, tc.mtu, tc.method, tc.blackHole, tc.icmpMTU)
			}
			if res.Rounds > tc.maxRounds {
				t.Errorf("%d rounds, want at most %d", res.Rounds, tc.maxRounds)
			}
			if !slices.Contains(res.SizesOK, tc.mtu) || slices.Contains(res.SizesTooBig, tc.mtu) {
				t.Errorf("%d not listed as ok: ok %v, too big %v", tc.mtu, res.SizesOK, res.SizesTooBig)
			}
			if tc.mtu < res.MaxSizeBytes && !slices.Contains(res.SizesTooBig, tc.mtu+1) && res.Method == MTUMethodSearch {
				t.Errorf("%d not listed as too big: %v", tc.mtu+1, res.SizesTooBig)
			}
		})
	}
}

// TestMTUSearchFailures: a target that does not answer, and a search cut
// short by the timeout, end in time with an error that says why.
func TestMTUSearchFailures(t *testing.T) {
	t.Run("no_echo", func(t *testing.T) {
		res, took, err := runFakeMTU(t, &fakePath{ifMTU: 1500, noEcho: true}, config.MTUProbe{ReplyTimeout: 300 * time.Millisecond}, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "does not answer ping") || res.PathMTUBytes != 0 {
			t.Errorf("err %v, path MTU %d", err, res.PathMTUBytes)
		}
		if took > 2*time.Second {
			t.Errorf("took %v with a reply timeout of 300ms", took)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		// Every size above 1200 vanishes and replies never come back fast
		// enough: a reply timeout longer than the probe's.
		f := &fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 1234}}}
		res, took, err := runFakeMTU(t, f, config.MTUProbe{ReplyTimeout: 10 * time.Second, Retries: 0, MinSize: 1300}, 700*time.Millisecond)
		if err == nil || res.Rounds != 1 {
			t.Errorf("err %v rounds %d", err, res.Rounds)
		}
		if took > 700*time.Millisecond {
			t.Errorf("took %v, longer than the timeout", took)
		}
	})
	t.Run("below_min_size", func(t *testing.T) {
		f := &fakePath{ifMTU: 1500, links: []fakeLink{{mtu: 500, icmp: true, router: netip.MustParseAddr("198.51.100.1")}}}
		_, _, err := runFakeMTU(t, f, config.MTUProbe{ReplyTimeout: 300 * time.Millisecond}, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "below min_size") {
			t.Errorf("err %v", err)
		}
	})
}

// TestMTUNextSizes: the first round probes the bounds and the plateaus
// between them; later ones spread over the undecided gap, both ends
// included.
func TestMTUNextSizes(t *testing.T) {
	s := &mtuSearch{min: 576, max: 1500, bad: 1501}
	got := s.nextSizes()
	want := []int{576, 1006, 1280, 1360, 1380, 1400, 1420, 1440, 1450, 1460, 1476, 1480, 1492, 1500}
	if !slices.Equal(got, want) {
		t.Errorf("first round %v, want %v", got, want)
	}
	s.rounds, s.ok, s.bad = 1, 1006, 1280
	got = s.nextSizes()
	if len(got) != mtuSizesPerRound || got[0] != 1007 || got[len(got)-1] != 1279 {
		t.Errorf("gap 1007-1279: %v", got)
	}
	s.ok, s.bad = 1400, 1403
	if got := s.nextSizes(); !slices.Equal(got, []int{1401, 1402}) {
		t.Errorf("gap 1401-1402: %v", got)
	}
}

// TestMTULoopback runs the real sockets against loopback (MTU 65536): the
// whole 65535-byte range gets through. It needs raw sockets.
func TestMTULoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (raw sockets)")
	}
	for _, target := range []string{"127.0.0.1", "::1"} {
		m := mtuModule(t, 5*time.Second, "")
		res, _ := runMTU(t, target, m)
		if !res.Success || res.PathMTUBytes != 65535 || res.Method != MTUMethodLocal || res.Interface != "lo" {
			t.Errorf("%s: success %v, path MTU %d, method %s, interface %q: %s", target, res.Success, res.PathMTUBytes, res.Method, res.Interface, res.Error)
		}
	}
}
