//go:build linux

package icmpecho

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"

	"github.com/isp-checker/isp-checker/internal/icmpwire"
	"github.com/isp-checker/isp-checker/internal/scratchns"
)

// needMode skips unless this process may open sockets of mode in the
// calling thread's namespace (fails with CI=true for raw sockets, where a
// skip would hide the engine's tests).
func needMode(t testing.TB, mode Mode, v6 bool) {
	t.Helper()
	s, err := openSocket(sockKey{v6: v6, mode: mode}, true)
	if err != nil {
		if os.Getenv("CI") == "true" && mode == Privileged {
			t.Fatalf("CI=true and no raw ICMP socket: %v", err)
		}
		t.Skipf("no %s ICMP socket: %v", mode, err)
	}
	s.close()
}

// runProbes starts the probes one after the other on the calling
// goroutine's thread (its network namespace), and waits for them all at
// once.
func runProbes(t testing.TB, reqs []Request) []*Result {
	t.Helper()
	out := make([]*Result, len(reqs))
	probes := make([]*Probe, len(reqs))
	for i, r := range reqs {
		p, err := Start(r)
		if err != nil {
			t.Errorf("start %v: %v", r.Dst, err)
			continue
		}
		probes[i] = p
	}
	var wg sync.WaitGroup
	for i, p := range probes {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out[i] = p.Wait(ctx)
		}()
	}
	wg.Wait()
	return out
}

// loopbackRequests are n probes of packets requests to distinct 127.30.x.y
// addresses and, every sixth, to ::1 (which all share: only their tokens
// keep them apart).
func loopbackRequests(n, packets int, mode Mode) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		dst := netip.AddrFrom4([4]byte{127, 30, byte(i / 250), byte(1 + i%250)})
		if i%6 == 5 {
			dst = netip.IPv6Loopback()
		}
		reqs[i] = Request{Dst: dst, Mode: mode, Packets: packets, Interval: 10 * time.Millisecond, Size: 28, TTL: 64, ReplyTimeout: 2 * time.Second}
	}
	return reqs
}

// checkAllOwn fails unless every probe got every reply, once, from its own
// target, and the engine's counters moved by exactly that.
func checkAllOwn(t *testing.T, reqs []Request, res []*Result, before [2]Counters, mode Mode) {
	t.Helper()
	want := [2]uint64{}
	for i, r := range res {
		if r == nil {
			t.Fatalf("probe %d did not run", i)
		}
		want[b2i(reqs[i].Dst.Is6())] += uint64(reqs[i].Packets)
		ok := r.Sent == reqs[i].Packets && r.Duplicates == 0 && r.Foreign == 0 && r.HopLimit == 64 && r.SendErr == nil
		for seq, got := range r.Replied {
			ok = ok && got && r.RTTs[seq] > 0 && r.RTTs[seq] < time.Second
		}
		if !ok {
			t.Errorf("probe %d (%v): %+v", i, reqs[i].Dst, r)
		}
	}
	for v, ipv := range []int{4, 6} {
		after := Stats(ipv, mode)
		d := func(a, b uint64) uint64 { return a - b }
		if d(after.Sent, before[v].Sent) != want[v] || d(after.Replies, before[v].Replies) != want[v] ||
			after.Duplicates != before[v].Duplicates || after.Late != before[v].Late || after.Foreign != before[v].Foreign ||
			after.QueueDrops != before[v].QueueDrops || after.Sockets != 0 {
			t.Errorf("IPv%d counters moved from %+v to %+v; want %d sent and replied, nothing else, no socket left", ipv, before[v], after, want[v])
		}
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func snapshot(mode Mode) [2]Counters { return [2]Counters{Stats(4, mode), Stats(6, mode)} }

// Hundreds of concurrent probes on raw sockets: no loss, no cross-talk,
// round-trip times from kernel timestamps (loopback: microseconds), and
// once they end no socket or goroutine is left (TestMain checks the
// goroutines).
func TestLoopbackConcurrentRaw(t *testing.T) {
	needMode(t, Privileged, false)
	reqs := loopbackRequests(300, 10, Privileged)
	before := snapshot(Privileged)
	fds := openFDs(t)
	res := runProbes(t, reqs)
	checkAllOwn(t, reqs, res, before, Privileged)
	// The sockets and the receive loops' duplicates in Go's poller are
	// closed once the last probe ended.
	if n := openFDs(t); n != fds {
		t.Errorf("%d descriptors open after the probes, %d before", n, fds)
	}
	ids := map[uint16]bool{}
	for _, r := range res {
		if r != nil && ids[r.ID] {
			t.Errorf("identifier %d used twice", r.ID)
		}
		if r != nil {
			ids[r.ID] = true
		}
	}
}

// The same on datagram sockets, in a network namespace of the test's own
// whose ping_group_range admits the process (the host's stays as it is):
// every probe's requests carry the socket's one identifier, so only the
// tokens in the payloads keep 300 probes apart.
func TestLoopbackConcurrentDatagram(t *testing.T) {
	ns := scratchns.New(t)
	_ = ns.Do(func() {
		s, err := openSocket(sockKey{mode: Unprivileged}, true)
		if err != nil {
			t.Errorf("datagram socket refused although ping_group_range admits every group: %v", err)
			return
		}
		s.close()
		reqs := loopbackRequests(300, 10, Unprivileged)
		before := snapshot(Unprivileged)
		res := runProbes(t, reqs)
		checkAllOwn(t, reqs, res, before, Unprivileged)
		v4, v6 := map[uint16]bool{}, map[uint16]bool{}
		for i, r := range res {
			if r == nil {
				continue
			}
			m := v4
			if reqs[i].Dst.Is6() {
				m = v6
			}
			m[r.ID] = true
		}
		if len(v4) != 1 || len(v6) != 1 {
			t.Errorf("identifiers: IPv4 %v, IPv6 %v; want one socket (one identifier) each", v4, v6)
		}
	})
}

// crafter sends echo requests of its own through a raw socket of its own,
// with whatever identifier, sequence number and payload a test wants, so
// the kernel answers them as it would a probe's.
type crafter struct{ c *icmp.PacketConn }

func newCrafter(t *testing.T, bind string) *crafter {
	t.Helper()
	c, err := icmp.ListenPacket("ip4:icmp", bind)
	if err != nil {
		t.Skipf("raw socket: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &crafter{c}
}

func (c *crafter) echo(t *testing.T, dst netip.Addr, id, seq uint16, magic, token uint32) {
	t.Helper()
	b := buildEcho(false, id, magic, token, 28)
	setSeq(b, false, seq)
	if _, err := c.c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		t.Fatal(err)
	}
}

// Replies that are not a probe's own are told apart and counted: a second
// reply to one request is a duplicate, a reply from another address is
// foreign (and not a reply), one carrying another process's magic never
// reaches the engine (the kernel filter drops it), one naming a probe that
// ended is late, and one naming no probe at all is foreign.
func TestRepliesNotOwn(t *testing.T) {
	needMode(t, Privileged, false)
	c := newCrafter(t, "0.0.0.0")
	dst := netip.MustParseAddr("127.31.0.1")
	// A probe that outlives the others, so the engine keeps running.
	keeper, err := Start(Request{Dst: netip.MustParseAddr("127.31.0.9"), Mode: Privileged, Packets: 2, Interval: 2 * time.Second, Size: 28})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(Request{Dst: dst, Mode: Privileged, Packets: 3, Interval: 300 * time.Millisecond, Size: 28, ReplyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // both probes' request 0 went and came back
	before := Stats(4, Privileged)
	c.echo(t, dst, p.id, 0, magic, p.token)                                       // duplicate
	c.echo(t, netip.MustParseAddr("127.31.0.2"), p.id, 0, magic, p.token)         // foreign: another address
	c.echo(t, dst, p.id, 1, magic^0x5a5a5a5a, p.token)                            // another process's: filtered
	c.echo(t, dst, p.id^0x4000, 0, magic, uint32(p.id^0x4000)<<16|p.token&0xffff) // names no probe: foreign
	res := p.Wait(context.Background())
	c.echo(t, dst, p.id, 2, magic, p.token) // late
	time.Sleep(100 * time.Millisecond)
	after := Stats(4, Privileged)
	keeper.Wait(context.Background())

	for seq, ok := range res.Replied {
		if !ok {
			t.Errorf("request %d unanswered", seq)
		}
	}
	if res.Duplicates != 1 || res.Foreign != 1 {
		t.Errorf("probe saw %d duplicates and %d foreign replies, want 1 and 1", res.Duplicates, res.Foreign)
	}
	if d := after.Duplicates - before.Duplicates; d != 1 {
		t.Errorf("engine counted %d duplicates, want 1", d)
	}
	if d := after.Foreign - before.Foreign; d != 2 {
		t.Errorf("engine counted %d foreign replies, want 2 (another address, no such probe)", d)
	}
	if d := after.Late - before.Late; d != 1 {
		t.Errorf("engine counted %d late replies, want 1", d)
	}
	if d := after.Replies - before.Replies; d != 2 {
		t.Errorf("engine counted %d replies after the first ones, want 2 (the probe's requests 1 and 2)", d)
	}
}

// An ICMP error quoting one of a probe's requests reaches that probe (raw
// sockets): here a host-unreachable the test sends itself from 127.31.1.2,
// quoting the probe's identifier and sequence number, as a router would.
func TestErrorReachesProbe(t *testing.T) {
	needMode(t, Privileged, false)
	c := newCrafter(t, "127.31.1.2")
	dst := netip.MustParseAddr("127.31.1.1")
	p, err := Start(Request{Dst: dst, Mode: Privileged, Packets: 2, Interval: 300 * time.Millisecond, Size: 28, ReplyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	orig := buildEcho(false, p.id, magic, p.token, 28)
	setSeq(orig, false, 0)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 1, protoICMP
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(orig)))
	copy(ip[12:], []byte{127, 0, 0, 1})
	copy(ip[16:], dst.AsSlice())
	msg := append([]byte{icmpwire.ICMP4DstUnreach, 1, 0, 0, 0, 0, 0, 0}, append(ip, orig[:16]...)...)
	binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	if _, err := c.c.WriteTo(msg, &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	res := p.Wait(context.Background())
	e, ok := res.ICMPErr.(*ICMPError)
	if !ok || e.Kind != KindUnreachable || e.From != netip.MustParseAddr("127.31.1.2") {
		t.Fatalf("ICMP error %v (%T), want destination unreachable from 127.31.1.2", res.ICMPErr, res.ICMPErr)
	}
	if got := e.Error(); got != "destination unreachable (host) from 127.31.1.2" {
		t.Errorf("error text %q", got)
	}
}

// A probe cut short (Finish) before its OnDone is set arms nothing: its f
// is never called, and no deadline keeps the probe until its StopAt.
func TestOnDoneAfterFinish(t *testing.T) {
	needMode(t, Privileged, false)
	req := loopbackRequests(1, 5, Privileged)[0]
	req.StopAt = time.Now().Add(time.Minute)
	p, err := Start(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Finish()
	called := make(chan struct{}, 1)
	p.OnDone(func() { called <- struct{}{} })
	p.mu.Lock()
	armed := p.notify != nil
	p.mu.Unlock()
	if armed || inDeadlines(p) {
		t.Error("OnDone after Finish queued a deadline or kept its f")
	}
	select {
	case <-called:
		t.Error("OnDone's f was called for a probe that was finished already")
	case <-time.After(200 * time.Millisecond):
	}
}

// After Finish and OnDone have both returned, in either order, nothing is
// armed: no deadline holds the probe (and f's closure) until StopAt.
func TestOnDoneRacingFinish(t *testing.T) {
	needMode(t, Privileged, false)
	const runs = 400
	armed := 0
	for i := range runs {
		req := Request{Dst: netip.AddrFrom4([4]byte{127, 31, byte(i / 250), byte(1 + i%250)}), Mode: Privileged,
			Packets: 10, Interval: time.Second, Size: 28, TTL: 64, ReplyTimeout: 2 * time.Second,
			StopAt: time.Now().Add(30 * time.Second)}
		p, err := Start(req)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // the first request is out: Finish drains
		var wg sync.WaitGroup
		go1 := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-go1; _ = p.Finish() }()
		go func() { defer wg.Done(); <-go1; p.OnDone(func() {}) }()
		close(go1)
		wg.Wait()
		p.mu.Lock()
		kept := p.notify != nil
		p.mu.Unlock()
		if kept || inDeadlines(p) {
			armed++
		}
	}
	if armed > 0 {
		t.Errorf("%d of %d runs: OnDone racing Finish left f or a deadline armed until StopAt (30s)", armed, runs)
	}
}

// StopAt ends a probe whose requests would go on past it: OnDone's f runs
// then, before the next request is due, and Finish reports what was sent
// by then; a ReplyTimeout that ends later than StopAt does not move it.
func TestOnDoneAtStopAt(t *testing.T) {
	needMode(t, Privileged, false)
	req := loopbackRequests(1, 10, Privileged)[0]
	req.Interval, req.ReplyTimeout = time.Second, 5*time.Second
	start := time.Now()
	req.StopAt = start.Add(300 * time.Millisecond)
	p, err := Start(req)
	if err != nil {
		t.Fatal(err)
	}
	called := make(chan time.Time, 1)
	p.OnDone(func() { called <- time.Now() })
	select {
	case at := <-called:
		if d := at.Sub(start); d < 250*time.Millisecond || d > 900*time.Millisecond {
			t.Errorf("OnDone's f ran %v after the start, want about 300ms (StopAt)", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("OnDone's f did not run by 3s: StopAt (300ms) was ignored")
	}
	if res := p.Finish(); res.Sent != 1 || !res.Replied[0] {
		t.Errorf("sent %d (first replied: %v) by StopAt; want 1, replied (the next request was 1s away)", res.Sent, res.Replied[0])
	}
}
