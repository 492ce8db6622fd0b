package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// MTU methods, as reported in MTUResult.Method.
const (
	// MTUMethodICMP: the path MTU is the next-hop MTU a router reported
	// (fragmentation-needed, packet-too-big) or the size just below one a
	// router refused, confirmed by an echo reply.
	MTUMethodICMP = "icmp"
	// MTUMethodSearch: packets above the path MTU vanished without an
	// ICMP error (a path-MTU black hole); the size search found the
	// largest that gets through.
	MTUMethodSearch = "search"
	// MTUMethodLocal: the largest size allowed locally (the interface's
	// MTU, or max_size) got through; nothing on the path is smaller.
	MTUMethodLocal = "local"
)

// mtuSizesPerRound is the number of sizes a search round probes at once
// (each 1+retries times): few enough not to queue long on a slow uplink
// (8·3 full-size packets are 36 kB, 0.3 s at 1 Mbit/s), enough to narrow a
// gap ninefold per round.
const mtuSizesPerRound = 8

// mtuMinWait is the shortest time a round waits for answers after the
// last one arrived (or its last probe left).
const mtuMinWait = 200 * time.Millisecond

// mtuPlateaus are common MTUs (RFC 1191's table and today's tunnels:
// PPPoE 1492, GRE 1476, VXLAN 1450, WireGuard 1420, IPsec/MPLS ~1400, IPv6
// minimum 1280), probed first: a path MTU that is one of them is found in
// one round even when the path sends no ICMP errors.
var mtuPlateaus = []int{65535, 32000, 17914, 9000, 8166, 4352, 2002, 1500, 1492, 1480, 1476, 1460,
	1450, 1440, 1420, 1400, 1380, 1360, 1280, 1006, 576, 508, 296, 68}

// MTUResult is the result of an mtu probe: path-MTU discovery to the
// target with ICMP echo requests that may not be fragmented. Sizes are of
// whole IP packets (header included), as MTUs are.
type MTUResult struct {
	Common
	// PathMTUBytes is the largest packet that got to the target and back
	// (0 when none did).
	PathMTUBytes int `json:"path_mtu_bytes"`
	// Method says how it was found: icmp, search or local (see the
	// MTUMethod constants).
	Method string `json:"method,omitempty"`
	// BlackHole is true when packets just above the path MTU vanished
	// without an ICMP error: a path-MTU black hole, which breaks TCP
	// connections that rely on path-MTU discovery.
	BlackHole bool `json:"black_hole"`
	// MinSizeBytes and MaxSizeBytes bound the search: the module's
	// min_size (or 576 / 1280) and the interface MTU (or max_size).
	MinSizeBytes int `json:"min_size_bytes"`
	MaxSizeBytes int `json:"max_size_bytes"`
	// Interface and InterfaceMTUBytes are the outgoing interface.
	Interface         string `json:"interface,omitempty"`
	InterfaceMTUBytes int    `json:"interface_mtu_bytes,omitempty"`
	// ICMPMTUBytes is the smallest next-hop MTU a router reported, and
	// ICMPFrom the router; empty when none did.
	ICMPMTUBytes int    `json:"icmp_mtu_bytes,omitempty"`
	ICMPFrom     string `json:"icmp_from,omitempty"`
	// Rounds is the number of search rounds, ProbesSent the echo requests
	// sent in all.
	Rounds     int `json:"rounds"`
	ProbesSent int `json:"probes_sent"`
	EchoID     int `json:"echo_id,omitempty"`
	// RTTSeconds is the smallest round-trip time of an answered probe.
	RTTSeconds float64 `json:"rtt_seconds"`
	// SizesOK and SizesTooBig list the sizes that got an echo reply and
	// those that did not fit (ICMP error or silence), in increasing order.
	SizesOK     []int `json:"sizes_ok,omitempty"`
	SizesTooBig []int `json:"sizes_too_big,omitempty"`
}

// ProbeMTU is the mtu prober: the path MTU to the target, and whether a
// black hole eats larger packets.
func ProbeMTU(ctx context.Context, req *Request) Result {
	p := &mtuProbe{req: *req, cfg: req.Module.MTU, logger: req.Logger, res: &MTUResult{}}
	p.run(ctx)
	return p.res
}

// mtuProbe is one run of the mtu prober.
type mtuProbe struct {
	req    Request
	cfg    config.MTUProbe
	logger *slog.Logger
	res    *MTUResult
}

func (p *mtuProbe) run(ctx context.Context) {
	req, o, logger, res := p.req, p.cfg, p.logger, p.res
	start := time.Now()
	deadline, _ := ctx.Deadline() // Run sets one
	stopAt := deadline.Add(-traceStopMargin(deadline.Sub(start)))

	// resolve enforces the target policy on the address it returns, the
	// only one the raw probes go to.
	ip, ok := req.resolve(ctx, &res.Common, req.Target, o.IPOptions)
	if !ok {
		return
	}
	dst, _ := netip.AddrFromSlice(ip.IP)
	dst = dst.Unmap()

	id, err := icmpIDs.acquire()
	if err != nil {
		res.FailStep(logger, "cannot probe target", err)
		return
	}
	defer icmpIDs.release(id)
	res.EchoID = int(id)

	socks, err := openMTUSockets(o.SourceIPAddress, dst, ip.Zone, id)
	if err != nil {
		res.FailStep(logger, "cannot probe target", err)
		return
	}
	defer socks.close()
	res.Interface, res.InterfaceMTUBytes = socks.ifName, socks.ifMTU

	s := newMTUSearch(o, dst, id, socks)
	res.MinSizeBytes, res.MaxSizeBytes = s.min, s.max
	if o.MaxSize > socks.ifMTU {
		logger.Info("max_size is above the interface MTU: using the interface MTU", "max_size", o.MaxSize, "interface", socks.ifName, "mtu", socks.ifMTU)
	}
	logger.Info("searching the path MTU", "dst", dst, "src", socks.src, "interface", socks.ifName,
		"interface_mtu", socks.ifMTU, "min_size", s.min, "max_size", s.max, "retries", o.Retries, "echo_id", id)
	err = s.run(ctx, stopAt, logger)
	s.fill(res)
	logger.Info("path MTU search finished", "path_mtu_bytes", res.PathMTUBytes, "method", res.Method,
		"black_hole", res.BlackHole, "rounds", res.Rounds, "probes_sent", res.ProbesSent, "took", time.Since(start))
	if err != nil {
		res.Fail(logger, "path MTU search failed", err)
		return
	}
	res.Success = true
}

// mtuSockets are the sockets of one mtu probe; mtu_linux.go opens them.
type mtuSockets struct {
	src    netip.Addr
	ifName string
	ifMTU  int
	// send sends one ICMP echo request (b, without IP header) that must
	// not be fragmented. An error wrapping errMTUTooBigLocal means the
	// kernel refused it as bigger than the interface MTU.
	send func(b []byte) error
	// conn receives ICMP messages (without IP header).
	conn net.PacketConn
	// close closes the sockets, unblocking reads.
	close func()
}

// errMTUTooBigLocal is a send refused locally because of its size.
var errMTUTooBigLocal = errors.New("message too long for the outgoing interface")

// mtuPacket is one echo request of the search.
type mtuPacket struct {
	size    int
	round   int
	sent    time.Time
	replied bool   // an echo reply came back
	tooBig  bool   // a router (or the kernel) said it was too big
	err     string // another ICMP error about it (unreachable …)
	rtt     time.Duration
}

// mtuSearch is one run of the mtu prober: rounds of DF-set echo requests of
// several sizes at once.
//
// It keeps two bounds: ok, the largest size that got an echo reply (so
// every size up to it fits), and bad, the smallest size known not to fit
// (one past the interface MTU at first). A router's fragmentation-needed /
// packet-too-big lowers bad to its size and, when it names the next-hop
// MTU m, to m+1; a probe of size m is then sent at once, so a path that
// sends ICMP errors is measured in one round trip. A size whose 1+retries
// probes all went unanswered while smaller ones came back is taken as too
// big (a black hole). Each round probes up to mtuSizesPerRound sizes
// between the bounds (the first round: the bounds and the common MTUs
// between them); the search ends when bad = ok+1.
type mtuSearch struct {
	o       config.MTUProbe
	dst     netip.Addr
	ipv6    bool
	id      uint16
	token   uint32
	hdr     int // IP + ICMP header bytes
	min     int
	max     int
	socks   *mtuSockets
	retries int

	mu       sync.Mutex
	probes   map[uint16]*mtuPacket
	nextSeq  uint16
	ok       int
	bad      int
	badBy    string // what set bad: "icmp", "silence", "local"
	hints    []int  // next-hop MTUs reported and not yet probed
	icmpMTU  int
	icmpFrom netip.Addr
	unreach  string        // the first destination-unreachable about a probe
	maxRTT   time.Duration // of the echo replies
	sendErr  error         // the first failed send
	rounds   int
	sent     int
	notify   chan struct{}
	wg       sync.WaitGroup
}

func newMTUSearch(o config.MTUProbe, dst netip.Addr, id uint16, socks *mtuSockets) *mtuSearch {
	s := &mtuSearch{
		o:       o,
		dst:     dst,
		ipv6:    dst.Is6(),
		id:      id,
		token:   rand.Uint32(),
		hdr:     20 + 8,
		socks:   socks,
		retries: o.Retries,
		probes:  map[uint16]*mtuPacket{},
		nextSeq: uint16(rand.Uint32()),
		notify:  make(chan struct{}, 1),
	}
	s.min = config.DefaultMTUMinIPv4
	if s.ipv6 {
		s.hdr = 40 + 8
		s.min = config.MTUMinIPv6
	}
	if o.MinSize > 0 {
		s.min = max(o.MinSize, s.hdr+6)
	}
	s.max = min(socks.ifMTU, config.MTUMaxSize)
	if o.MaxSize > 0 {
		s.max = min(o.MaxSize, s.max)
	}
	s.min = min(s.min, s.max)
	s.bad = s.max + 1
	return s
}

// run searches until the bounds meet or stopAt. The returned error says why
// no path MTU could be determined.
func (s *mtuSearch) run(ctx context.Context, stopAt time.Time, logger *slog.Logger) error {
	_ = s.socks.conn.SetReadDeadline(stopAt)
	s.wg.Add(1)
	go s.read()
	defer func() {
		s.socks.close()
		s.wg.Wait()
	}()

	for {
		s.mu.Lock()
		done := s.bad <= s.ok+1
		sizes := s.nextSizes()
		if !done {
			s.rounds++
		}
		round := s.rounds
		s.mu.Unlock()
		if done {
			return nil
		}
		if len(sizes) == 0 {
			return errors.New("no size left to probe") // cannot happen: ok+1 < bad
		}
		logger.Debug("mtu search round", "round", round, "sizes", sizes)
		lastSend := s.sendSizes(sizes, round, logger)
		if err := s.await(ctx, round, lastSend, stopAt, logger); err != nil {
			return err
		}
		s.mu.Lock()
		s.conclude()
		failed := s.ok == 0
		s.mu.Unlock()
		if failed {
			return s.noReplyError()
		}
	}
}

// nextSizes picks the sizes of the next round. The caller holds s.mu.
func (s *mtuSearch) nextSizes() []int {
	lo, hi := s.ok+1, s.bad-1 // the undecided sizes
	if s.ok == 0 {
		lo = s.min
	}
	if lo > hi {
		return nil
	}
	var sizes []int
	if s.rounds == 0 {
		sizes = append(sizes, lo, hi)
		for _, p := range mtuPlateaus {
			if p > lo && p < hi {
				sizes = append(sizes, p)
			}
		}
	} else {
		n := min(mtuSizesPerRound, hi-lo+1)
		for i := range n {
			if n == 1 {
				sizes = append(sizes, lo)
				break
			}
			sizes = append(sizes, lo+(hi-lo)*i/(n-1))
		}
	}
	slices.Sort(sizes)
	return slices.Compact(sizes)
}

// sendSizes sends 1+retries probes of each size and returns when the last
// one left.
func (s *mtuSearch) sendSizes(sizes []int, round int, logger *slog.Logger) time.Time {
	for range 1 + s.retries {
		for _, size := range sizes {
			s.sendOne(size, round, logger)
		}
	}
	return time.Now()
}

func (s *mtuSearch) sendOne(size, round int, logger *slog.Logger) {
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	p := &mtuPacket{size: size, round: round, sent: time.Now()}
	s.probes[seq] = p
	s.mu.Unlock()
	b := buildEcho(s.ipv6, s.id, seq, s.token, size-s.hdr)
	err := s.socks.send(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.sent++
		return
	}
	if errors.Is(err, errMTUTooBigLocal) {
		p.tooBig = true
		if size < s.bad {
			s.bad, s.badBy = size, "local"
		}
		return
	}
	p.err = err.Error()
	if s.sendErr == nil {
		s.sendErr = err
		logger.Warn("sending echo request failed", "size", size, "err", err)
	}
}

// await waits until every probe of the round whose size is still
// undecided has an answer, or the round's time is up: reply_timeout after
// the last send, shortened, once answers come, to a few round-trip times
// after the latest answer. Hints (next-hop MTUs from routers) are probed
// at once.
func (s *mtuSearch) await(ctx context.Context, round int, lastSend, stopAt time.Time, logger *slog.Logger) error {
	var lastAnswer time.Time
	for {
		s.mu.Lock()
		hints := s.hints
		s.hints = nil
		s.mu.Unlock()
		for _, m := range hints {
			for range 1 + s.retries {
				s.sendOne(m, round, logger)
			}
			lastSend = time.Now()
		}

		s.mu.Lock()
		complete := true
		for _, p := range s.probes {
			if p.round != round {
				continue
			}
			if p.replied || p.tooBig || p.err != "" {
				if t := p.sent.Add(p.rtt); p.rtt > 0 && t.After(lastAnswer) {
					lastAnswer = t
				}
				continue
			}
			if p.size > s.ok && p.size < s.bad {
				complete = false
			}
		}
		pending := len(s.hints) > 0
		maxRTT := s.maxRTT
		s.mu.Unlock()
		if complete && !pending {
			return nil
		}
		// Until an echo reply shows how far the target is, wait the whole
		// reply_timeout; then a few of its round trips after the last
		// answer (or send), which also covers a queue on a slow link that
		// delays the later probes of a round.
		until := lastSend.Add(s.o.ReplyTimeout)
		if maxRTT > 0 {
			grace := min(max(mtuMinWait, 4*maxRTT), s.o.ReplyTimeout)
			if u := maxTime(lastSend, lastAnswer).Add(grace); u.Before(until) {
				until = u
			}
		}
		if until.After(stopAt) {
			until = stopAt
		}
		wait := time.Until(until)
		if wait <= 0 {
			if time.Now().After(stopAt) {
				return s.timeUpError()
			}
			return nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-s.notify:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return s.timeUpError()
		}
		timer.Stop()
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// conclude turns a round's silence into a bound: the smallest size above ok
// none of whose probes (in any round) got an echo reply or a too-big is too
// big: silently dropped (a black hole), or refused with another error.
// The caller holds s.mu.
func (s *mtuSearch) conclude() {
	if s.ok == 0 {
		return
	}
	answered := map[int]bool{}
	for _, p := range s.probes {
		if p.replied || p.tooBig {
			answered[p.size] = true
		}
	}
	for _, p := range s.probes {
		if !answered[p.size] && p.size > s.ok && p.size < s.bad {
			s.bad, s.badBy = p.size, "silence"
		}
	}
}

// read receives ICMP messages until the socket is closed.
func (s *mtuSearch) read() {
	defer s.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := s.socks.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		at := time.Now()
		if m, ok := parseICMP(s.ipv6, buf[:n]); ok {
			s.onICMP(m, addrOf(from), at)
		}
	}
}

// onICMP records an echo reply or an ICMP error about one of the probes.
func (s *mtuSearch) onICMP(m icmpPacket, from netip.Addr, at time.Time) {
	var seq uint16
	switch m.kind {
	case icmpEchoReply:
		if m.id != s.id || len(m.data) < 4 || uint32(m.data[0])<<24|uint32(m.data[1])<<16|uint32(m.data[2])<<8|uint32(m.data[3]) != s.token {
			return
		}
		seq = m.seq
	default:
		want, echo := protoICMP, icmpwire.ICMP4Echo
		if s.ipv6 {
			want, echo = protoICMPv6, icmpwire.ICMP6Echo
		}
		q := m.qPayload
		if m.qDst.Unmap() != s.dst || m.qProto != want || int(q[0]) != echo || uint16(q[4])<<8|uint16(q[5]) != s.id {
			return
		}
		seq = uint16(q[6])<<8 | uint16(q[7])
	}
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}()
	p := s.probes[seq]
	if p == nil || p.replied || p.tooBig || p.err != "" {
		return
	}
	p.rtt = max(at.Sub(p.sent), time.Nanosecond)
	switch m.kind {
	case icmpEchoReply:
		p.replied = true
		s.maxRTT = max(s.maxRTT, p.rtt)
		s.ok = max(s.ok, p.size)
		if s.bad <= s.ok {
			// A smaller "too big" was wrong (the path changed): trust
			// the reply.
			s.bad, s.badBy = s.max+1, ""
		}
	case icmpTooBig:
		p.tooBig = true
		if p.size < s.bad {
			s.bad, s.badBy = p.size, "icmp"
		}
		mtu := m.mtu
		if mtu > 0 && mtu < p.size {
			if s.icmpMTU == 0 || mtu < s.icmpMTU {
				s.icmpMTU, s.icmpFrom = mtu, from
			}
			if mtu+1 < s.bad {
				s.bad, s.badBy = mtu+1, "icmp"
			}
			if mtu > s.ok && mtu >= s.min && !s.probedSize(mtu) && !slices.Contains(s.hints, mtu) {
				s.hints = append(s.hints, mtu)
			}
		}
	case icmpTimeExceeded:
		p.err = "time exceeded"
	default:
		p.err = unreachableName(s.ipv6, m.code) + " unreachable"
		if s.unreach == "" {
			s.unreach = fmt.Sprintf("%s (from %s)", p.err, from)
		}
	}
}

// probedSize reports whether a probe of size was sent. The caller holds s.mu.
func (s *mtuSearch) probedSize(size int) bool {
	for _, p := range s.probes {
		if p.size == size {
			return true
		}
	}
	return false
}

func (s *mtuSearch) noReplyError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unreach != "" {
		return fmt.Errorf("the target is unreachable: %s", s.unreach)
	}
	if s.sent == 0 && s.sendErr != nil {
		return fmt.Errorf("sending echo requests: %w", s.sendErr)
	}
	if s.bad <= s.min && s.icmpMTU > 0 {
		return fmt.Errorf("%s reported a next-hop MTU of %d, below min_size %d", s.icmpFrom, s.icmpMTU, s.min)
	}
	return fmt.Errorf("no echo reply to %d-byte packets or any larger: the target does not answer ping, or the path drops even min_size packets", s.min)
}

func (s *mtuSearch) timeUpError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ok == 0 {
		return fmt.Errorf("no echo reply before the probe's timeout (sizes %d-%d)", s.min, s.max)
	}
	return fmt.Errorf("the probe's timeout ended the search: the path MTU is between %d and %d", s.ok, s.bad-1)
}

// fill writes the search's outcome into res. The reader has stopped.
func (s *mtuSearch) fill(res *MTUResult) {
	res.Rounds = s.rounds
	res.ProbesSent = s.sent
	res.ICMPMTUBytes = s.icmpMTU
	if s.icmpMTU > 0 {
		res.ICMPFrom = s.icmpFrom.String()
	}
	ok, tooBig := map[int]bool{}, map[int]bool{}
	var minRTT time.Duration
	for _, p := range s.probes {
		if p.replied {
			ok[p.size] = true
			if minRTT == 0 || p.rtt < minRTT {
				minRTT = p.rtt
			}
		}
	}
	for _, p := range s.probes {
		if !ok[p.size] && (p.tooBig || p.size >= s.bad) {
			tooBig[p.size] = true
		}
	}
	for size := range ok {
		res.SizesOK = append(res.SizesOK, size)
	}
	for size := range tooBig {
		res.SizesTooBig = append(res.SizesTooBig, size)
	}
	slices.Sort(res.SizesOK)
	slices.Sort(res.SizesTooBig)
	res.RTTSeconds = minRTT.Seconds()
	if s.ok == 0 {
		return
	}
	res.PathMTUBytes = s.ok
	switch {
	case s.ok >= s.max, s.badBy == "local":
		res.Method = MTUMethodLocal
	case s.badBy == "silence":
		res.Method = MTUMethodSearch
		res.BlackHole = true
	default:
		res.Method = MTUMethodICMP
	}
}
