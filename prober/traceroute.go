package prober

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// TracerouteSilentAddress is the address of a hop that sent no answer to
// any of its probes (as traceroute prints it).
const TracerouteSilentAddress = "*"

// PathHashBits is the width of TracerouteResult.PathHash: it fits a
// float64 mantissa, so the gauge holds it exactly.
const PathHashBits = 53

// TracerouteResult is the result of a traceroute probe: the hops from
// FirstHop up to the destination (or, when it was not reached, up to the
// last hop that answered), each with its own packet counts, loss ratio
// and round-trip times, so a reader can see where on the path loss or
// latency starts.
type TracerouteResult struct {
	Common
	// Protocol is icmp, udp or tcp.
	Protocol string `json:"protocol"`
	// Port is the destination port of udp and tcp probes.
	Port int `json:"port,omitempty"`
	// SourcePort is the fixed source port of udp and tcp probes.
	SourcePort int `json:"source_port,omitempty"`
	// EchoID is the ICMP echo identifier of icmp probes.
	EchoID int `json:"echo_id,omitempty"`
	// SourceAddress is the address the probes were sent from.
	SourceAddress string `json:"source_address,omitempty"`
	FirstHop      int    `json:"first_hop"`
	MaxHops       int    `json:"max_hops"`
	PacketsPerHop int    `json:"packets_per_hop"`
	// HopTimeoutSeconds is how long the trace waited for answers after its
	// last probe (the module's hop_timeout, shortened to fit the timeout).
	HopTimeoutSeconds float64 `json:"hop_timeout_seconds"`
	// Hops are the hops in TTL order, FirstHop to HopCount with none
	// missing: a hop that never answered has Address "*".
	Hops []TracerouteHop `json:"hops"`
	// HopCount is the TTL of the destination, or of the last hop that
	// answered when it was not reached; 0 when nothing answered.
	HopCount int `json:"hop_count"`
	// DestinationReached is true when the target itself answered (echo
	// reply, port unreachable, SYN-ACK, RST, or any ICMP error it sent).
	DestinationReached bool `json:"destination_reached"`
	// Unreachable says which hop reported the destination unreachable
	// (ICMP destination-unreachable from a router), when one did.
	Unreachable string `json:"unreachable,omitempty"`
	// PathHash is a hash of the ordered hop addresses (silent hops as
	// "*"), below 2^53: the same path gives the same value.
	PathHash uint64 `json:"path_hash"`
	// PacketsSent is the number of probes sent; replies to TTLs beyond
	// the destination are not counted anywhere.
	PacketsSent int `json:"packets_sent"`
	// Duplicates counts second answers to one probe (ignored).
	Duplicates int `json:"duplicates,omitempty"`
	// DropAddressLabel asks the metrics view to leave out the address
	// label (the module's drop_address_label).
	DropAddressLabel bool `json:"-"`
}

// TracerouteHop is one TTL of a trace.
type TracerouteHop struct {
	// TTL is the hop's distance: the IP TTL (hop limit) of its probes.
	TTL int `json:"ttl"`
	// Address answered most of the hop's probes (ties: the smallest
	// address); "*" when none was answered.
	Address string `json:"address"`
	// Addresses lists every address that answered, when there was more
	// than one (the path changed during the trace, or a load balancer
	// ignored the flow).
	Addresses []string `json:"addresses,omitempty"`
	Sent      int      `json:"sent"`
	Received  int      `json:"received"`
	// LossRatio is (Sent-Received)/Sent.
	LossRatio float64 `json:"loss_ratio"`
	// RTTsSeconds are the round-trip times of the answered probes, in
	// sending order, and RTTMeanSeconds their mean (0 when none).
	RTTsSeconds    []float64 `json:"rtts_seconds,omitempty"`
	RTTMeanSeconds float64   `json:"rtt_mean_seconds"`
	RTTMinSeconds  float64   `json:"rtt_min_seconds"`
	RTTMaxSeconds  float64   `json:"rtt_max_seconds"`
	// Destination is true for the target's own hop.
	Destination bool `json:"destination,omitempty"`
	// Unreachable is the ICMP destination-unreachable code this hop
	// answered with (network, host, port, admin_prohibited, …), if any.
	Unreachable string `json:"unreachable,omitempty"`
}

// traceStopMargin is the part of a probe's budget kept free at its end, so
// the probe has stopped and reported before its deadline: a fifth of the
// budget, at most 250ms.
func traceStopMargin(budget time.Duration) time.Duration {
	return min(budget/5, 250*time.Millisecond)
}

// ProbeTraceroute is the traceroute prober: the hops to the target, found
// with TTL-limited probes.
func ProbeTraceroute(ctx context.Context, req *Request) Result {
	p := &tracerouteProbe{req: *req, cfg: req.Module.Traceroute, logger: req.Logger, res: &TracerouteResult{}}
	p.run(ctx)
	return p.res
}

// tracerouteProbe is one run of the traceroute prober.
type tracerouteProbe struct {
	req    Request
	cfg    config.TracerouteProbe
	logger *slog.Logger
	res    *TracerouteResult
}

func (p *tracerouteProbe) run(ctx context.Context) {
	req, o, logger, res := p.req, p.cfg, p.logger, p.res
	res.Protocol, res.Port, res.FirstHop, res.MaxHops = o.Protocol, o.Port, o.FirstHop, o.MaxHops
	res.PacketsPerHop, res.DropAddressLabel = o.PacketsPerHop, o.DropAddressLabel
	start := time.Now()
	deadline, _ := ctx.Deadline() // Run sets one
	stopAt := deadline.Add(-traceStopMargin(deadline.Sub(start)))

	// resolve enforces the target policy on the address it returns: raw
	// packets bypass the policy dialer, and only go to that address.
	ip, ok := req.resolve(ctx, &res.Common, req.Target, o.IPOptions)
	if !ok {
		return
	}
	dst, _ := netip.AddrFromSlice(ip.IP)
	dst = dst.Unmap()

	t, err := newTrace(o, dst, ip.Zone)
	if err != nil {
		res.Fail(logger, "cannot trace target", err)
		return
	}
	defer t.close()
	res.SourceAddress = t.socks.src.String()
	res.SourcePort = int(t.socks.sport)
	res.EchoID = int(t.id)
	logger.Info("tracing", "protocol", o.Protocol, "dst", dst, "src", t.socks.src, "first_hop", o.FirstHop,
		"max_hops", o.MaxHops, "packets_per_hop", o.PacketsPerHop, "source_port", t.socks.sport, "echo_id", t.id)

	hopTimeout := t.run(ctx, o.HopTimeout, stopAt, logger)
	res.HopTimeoutSeconds = hopTimeout.Seconds()
	t.fill(res)
	logger.Info("trace finished", "hops", res.HopCount, "destination_reached", res.DestinationReached,
		"packets_sent", res.PacketsSent, "path_hash", res.PathHash, "took", time.Since(start))
	switch {
	case t.sent == 0:
		res.Fail(logger, "no probe could be sent", t.sendErr)
	case res.DestinationReached:
		res.Success = true
	case res.Unreachable != "":
		res.Fail(logger, "destination not reached: "+res.Unreachable, nil)
	case res.HopCount == 0:
		res.Fail(logger, fmt.Sprintf("destination not reached: no answer to any of %d probes (TTL %d-%d)", t.sent, o.FirstHop, o.MaxHops), t.sendErr)
	default:
		last := res.Hops[len(res.Hops)-1]
		if last.TTL >= o.MaxHops {
			res.Fail(logger, fmt.Sprintf("destination not reached within max_hops %d: hop %d (%s) still forwarded the probes",
				o.MaxHops, last.TTL, last.Address), t.sendErr)
			break
		}
		res.Fail(logger, fmt.Sprintf("destination not reached: the last answer came from hop %d (%s); TTLs %d-%d got none",
			last.TTL, last.Address, last.TTL+1, o.MaxHops), t.sendErr)
	}
}

// tracePacket is one packet of a trace.
type tracePacket struct {
	ttl     int
	key     uint32 // what identifies it in answers (see newTrace)
	sent    time.Time
	tried   bool // a send was attempted (it may have failed)
	failed  bool // the send failed
	replied bool
	rtt     time.Duration
	from    netip.Addr
	dest    bool   // the answer came from (or for) the destination
	unreach string // the answer was a destination-unreachable from a router
}

// trace is one run of the traceroute prober.
//
// Flows are kept constant for the whole trace, Paris-traceroute style, so a
// per-flow load balancer sends every probe the same way and the hops do
// not mix two paths; the probes differ only in a field no load balancer
// hashes but every router quotes back (ICMP errors carry the original IP
// header and at least the first 8 bytes of its payload):
//
//   - icmp: the identifier is constant (unique per trace, from the ICMP
//     prober's allocator, so concurrent traces and pings do not mix) and so
//     is the checksum (see buildEcho); the sequence number identifies the
//     probe.
//   - udp: source and destination ports are constant (the source port is
//     reserved by binding a UDP socket to it for the trace); the UDP
//     checksum identifies the probe, made to come out at a chosen value
//     by two payload bytes (see buildUDP).
//   - tcp: ports are constant (the source port is reserved by a bound TCP
//     socket, so the kernel neither reuses it nor keeps state for it: it
//     answers the destination's SYN-ACK with a RST); the sequence number
//     identifies the probe. Sequence numbers are consecutive so that every
//     SYN after the first lies inside the window of the half-open
//     connection a listening destination creates for the first: Linux
//     answers such a SYN with a RST (acknowledging it) and drops the
//     half-open connection, so each SYN gets its own answer instead of a
//     duplicate ACK for the first.
//
// The rest of the flow is constant too: addresses, protocol, TOS, packet
// length, and (IPv6) the flow label, which Linux derives for raw sockets
// from the addresses and protocol alone. Only the IPv4 identification
// field, which no load balancer hashes, changes per packet.
type trace struct {
	o      config.TracerouteProbe
	dst    netip.Addr
	ipv6   bool
	socks  *traceSockets
	id     uint16 // icmp echo identifier
	token  uint32 // icmp payload marker
	probes []*tracePacket
	byKey  map[uint32]*tracePacket

	mu       sync.Mutex
	done     chan struct{}
	finished bool
	sent     int
	sendErr  error
	dups     int
	wg       sync.WaitGroup
}

// traceSockets are the sockets of one trace; traceroute_linux.go opens them.
type traceSockets struct {
	src   netip.Addr
	sport uint16 // udp, tcp
	// send sends one probe (the transport header and payload) with the
	// given TTL (hop limit) to the destination.
	send func(ttl int, b []byte) error
	// icmp receives ICMP errors (and echo replies), tcp the destination's
	// TCP answers (tcp mode; nil otherwise). Their ReadFrom returns the
	// message without its IP header.
	icmp net.PacketConn
	tcp  net.PacketConn
	// close closes everything, unblocking readers.
	close func()
}

func newTrace(o config.TracerouteProbe, dst netip.Addr, zone string) (*trace, error) {
	t := &trace{
		o:     o,
		dst:   dst,
		ipv6:  dst.Is6(),
		token: rand.Uint32(),
		byKey: map[uint32]*tracePacket{},
		done:  make(chan struct{}),
	}
	if o.Protocol == config.TracerouteProtocolICMP {
		id, err := icmpIDs.acquire()
		if err != nil {
			return nil, err
		}
		t.id = id
	}
	socks, err := openTraceSockets(o, dst, zone, t.id)
	if err != nil {
		if t.id != 0 {
			icmpIDs.release(t.id)
		}
		return nil, err
	}
	t.socks = socks

	// Every probe gets a key: consecutive from a random base (unique in
	// the trace: at most 255·10 probes).
	base := rand.Uint32()
	for ttl := o.FirstHop; ttl <= o.MaxHops; ttl++ {
		for range o.PacketsPerHop {
			i := uint32(len(t.probes))
			var key uint32
			switch o.Protocol {
			case config.TracerouteProtocolICMP:
				key = uint32(uint16(base + i))
			case config.TracerouteProtocolUDP:
				key = 1 + (base+i)%0xfffe // a checksum: never 0 or 0xffff
			default:
				key = base + i
			}
			p := &tracePacket{ttl: ttl, key: key}
			t.probes = append(t.probes, p)
			t.byKey[key] = p
		}
	}
	return t, nil
}

func (t *trace) close() {
	t.socks.close()
	t.wg.Wait()
	if t.id != 0 {
		icmpIDs.release(t.id)
	}
}

// packet builds probe p.
func (t *trace) packet(p *tracePacket) []byte {
	s := t.socks
	switch t.o.Protocol {
	case config.TracerouteProtocolUDP:
		return buildUDP(s.src, t.dst, s.sport, uint16(t.o.Port), uint16(p.key), tracePayloadLen)
	case config.TracerouteProtocolTCP:
		return buildSYN(s.src, t.dst, s.sport, uint16(t.o.Port), p.key)
	}
	return buildEcho(t.ipv6, t.id, uint16(p.key), t.token, tracePayloadLen)
}

// run sends every probe and collects the answers until the trace is
// complete or hopTimeout after the last send (but never past stopAt). It
// returns the hop timeout it used.
//
// All TTLs are sent at once, in TTL order, the probes of one TTL back to
// back; so a trace takes one round trip when every hop answers and one hop
// timeout when one does not, instead of one per hop. Routers limit the
// ICMP errors they send per source (Linux: a burst of 6, then one per
// net.ipv4.icmp_ratelimit = 1s): each router only answers the
// packets_per_hop probes of its own TTL, which stays within such a burst
// (keep packets_per_hop ≤ 6). The destination sees every probe with a TTL
// at or beyond its distance; sending in TTL order means the lowest TTLs
// reach it first and get its (possibly rate-limited) answers.
func (t *trace) run(ctx context.Context, hopTimeout time.Duration, stopAt time.Time, logger *slog.Logger) time.Duration {
	readUntil := stopAt
	_ = t.socks.icmp.SetReadDeadline(readUntil)
	t.wg.Add(1)
	go t.readICMP()
	if t.socks.tcp != nil {
		_ = t.socks.tcp.SetReadDeadline(readUntil)
		t.wg.Add(1)
		go t.readTCP()
	}

	lastSend := time.Now()
send:
	for _, p := range t.probes {
		select {
		case <-t.done:
			break send // complete already (a short path): no need for more TTLs
		case <-ctx.Done():
			break send
		default:
		}
		if time.Now().After(stopAt) {
			break send
		}
		b := t.packet(p)
		t.mu.Lock()
		p.tried = true
		p.sent = time.Now()
		t.mu.Unlock()
		err := t.socks.send(p.ttl, b)
		lastSend = time.Now()
		t.mu.Lock()
		if err != nil {
			p.failed = true
			if t.sendErr == nil {
				t.sendErr = err
				logger.Warn("sending probe failed", "ttl", p.ttl, "err", err)
			}
		} else {
			t.sent++
		}
		t.mu.Unlock()
	}
	t.mu.Lock()
	t.checkDone() // answers may have completed the trace while sending
	sent := t.sent
	t.mu.Unlock()
	if sent == 0 {
		return 0 // nothing to wait for
	}

	hopTimeout = min(hopTimeout, max(time.Until(stopAt), 0))
	waitUntil := lastSend.Add(hopTimeout)
	if waitUntil.After(stopAt) {
		waitUntil = stopAt
	}
	timer := time.NewTimer(time.Until(waitUntil))
	defer timer.Stop()
	select {
	case <-t.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	t.socks.close()
	t.wg.Wait()
	return hopTimeout
}

// readICMP and readTCP end when the socket is closed or its read deadline
// (the trace's stop time) passes; raw sockets report no other errors.
func (t *trace) readICMP() {
	defer t.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := t.socks.icmp.ReadFrom(buf)
		if err != nil {
			return
		}
		at := time.Now()
		if pkt, ok := parseICMP(t.ipv6, buf[:n]); ok {
			t.onICMP(pkt, addrOf(from), at)
		}
	}
}

func (t *trace) readTCP() {
	defer t.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := t.socks.tcp.ReadFrom(buf)
		if err != nil {
			return
		}
		at := time.Now()
		if seg, ok := parseTCP(buf[:n]); ok {
			t.onTCP(seg, addrOf(from), at)
		}
	}
}

func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// onICMP matches an ICMP message to a probe of this trace and records it.
func (t *trace) onICMP(m icmpPacket, from netip.Addr, at time.Time) {
	if m.kind == icmpEchoReply {
		if t.o.Protocol != config.TracerouteProtocolICMP || m.id != t.id || !t.tokenOK(m.data) {
			return
		}
		t.record(uint32(m.seq), from, at, true, "")
		return
	}
	if m.qDst.Unmap() != t.dst {
		return
	}
	q := m.qPayload
	var key uint32
	switch t.o.Protocol {
	case config.TracerouteProtocolICMP:
		want, echo := protoICMP, icmpwire.ICMP4Echo
		if t.ipv6 {
			want, echo = protoICMPv6, icmpwire.ICMP6Echo
		}
		if m.qProto != want || int(q[0]) != echo || uint16(q[4])<<8|uint16(q[5]) != t.id {
			return
		}
		if len(q) >= 12 && !t.tokenOK(q[8:]) {
			return
		}
		key = uint32(uint16(q[6])<<8 | uint16(q[7]))
	case config.TracerouteProtocolUDP:
		if m.qProto != protoUDP || !t.portsOK(q) {
			return
		}
		key = uint32(uint16(q[6])<<8 | uint16(q[7]))
	case config.TracerouteProtocolTCP:
		if m.qProto != protoTCP || !t.portsOK(q) {
			return
		}
		key = uint32(q[4])<<24 | uint32(q[5])<<16 | uint32(q[6])<<8 | uint32(q[7])
	}
	switch {
	case m.kind == icmpTimeExceeded:
		t.record(key, from, at, false, "")
	case from == t.dst:
		// Any error from the target itself (port unreachable, the normal
		// end of a udp trace; a host firewall's reject) means it was
		// reached.
		t.record(key, from, at, true, "")
	case m.kind == icmpTooBig:
		t.record(key, from, at, false, "fragmentation_needed")
	default:
		t.record(key, from, at, false, unreachableName(t.ipv6, m.code))
	}
}

// onTCP records the destination's answer to a SYN: a SYN-ACK or a RST
// that acknowledges the SYN's sequence number.
func (t *trace) onTCP(s tcpSegment, from netip.Addr, at time.Time) {
	if from != t.dst || s.sport != uint16(t.o.Port) || s.dport != t.socks.sport || s.flags&tcpACK == 0 {
		return
	}
	if s.flags&(tcpSYN|tcpRST) == 0 {
		return // a duplicate ACK for an earlier SYN
	}
	t.record(s.ack-1, from, at, true, "")
}

func (t *trace) tokenOK(b []byte) bool {
	return len(b) >= 4 && uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]) == t.token
}

// portsOK checks the quoted UDP or TCP ports.
func (t *trace) portsOK(q []byte) bool {
	sport := uint16(q[0])<<8 | uint16(q[1])
	dport := uint16(q[2])<<8 | uint16(q[3])
	return sport == t.socks.sport && dport == uint16(t.o.Port)
}

func (t *trace) record(key uint32, from netip.Addr, at time.Time, dest bool, unreach string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byKey[key]
	if p == nil || !p.tried || p.failed {
		return
	}
	if p.replied {
		t.dups++
		return
	}
	p.replied = true
	p.rtt = max(at.Sub(p.sent), 0)
	p.from = from
	p.dest = dest
	p.unreach = unreach
	t.checkDone()
}

// end is the TTL at which the trace ends: the lowest one that reached the
// destination or got a destination-unreachable; 0 when none did. The
// caller holds t.mu (or the readers have stopped).
func (t *trace) end() int {
	end := 0
	for _, p := range t.probes {
		if p.replied && (p.dest || p.unreach != "") && (end == 0 || p.ttl < end) {
			end = p.ttl
		}
	}
	return end
}

// checkDone closes t.done once the end of the path is known and every probe
// up to it was answered. The caller holds t.mu.
func (t *trace) checkDone() {
	if t.finished {
		return
	}
	end := t.end()
	if end == 0 {
		return
	}
	for _, p := range t.probes {
		if p.ttl > end {
			break
		}
		if !p.tried || (!p.failed && !p.replied) {
			return
		}
	}
	t.finished = true
	close(t.done)
}

// fill computes the hops into res. The readers have stopped.
func (t *trace) fill(res *TracerouteResult) {
	res.PacketsSent = t.sent
	res.Duplicates = t.dups
	end := t.end()
	if end == 0 {
		for _, p := range t.probes {
			if p.replied {
				end = max(end, p.ttl)
			}
		}
	}
	if end == 0 {
		return
	}
	res.HopCount = end
	byTTL := map[int][]*tracePacket{}
	for _, p := range t.probes {
		if p.ttl <= end && p.tried && !p.failed {
			byTTL[p.ttl] = append(byTTL[p.ttl], p)
		}
	}
	for ttl := t.o.FirstHop; ttl <= end; ttl++ {
		h := summarizeHop(ttl, byTTL[ttl])
		if ttl == end && h.Destination {
			res.DestinationReached = true
		}
		if ttl == end && !h.Destination && h.Unreachable != "" {
			res.Unreachable = fmt.Sprintf("hop %d (%s) answered %s unreachable", ttl, h.Address, h.Unreachable)
		}
		res.Hops = append(res.Hops, h)
	}
	res.PathHash = pathHash(res.Hops)
}

// summarizeHop aggregates the probes of one TTL.
func summarizeHop(ttl int, probes []*tracePacket) TracerouteHop {
	h := TracerouteHop{TTL: ttl, Address: TracerouteSilentAddress, Sent: len(probes)}
	count := map[netip.Addr]int{}
	var sum float64
	for _, p := range probes {
		if !p.replied {
			continue
		}
		h.Received++
		count[p.from]++
		rtt := p.rtt.Seconds()
		h.RTTsSeconds = append(h.RTTsSeconds, rtt)
		sum += rtt
		if h.Received == 1 || rtt < h.RTTMinSeconds {
			h.RTTMinSeconds = rtt
		}
		h.RTTMaxSeconds = max(h.RTTMaxSeconds, rtt)
		if p.dest {
			h.Destination = true
		}
		if p.unreach != "" && h.Unreachable == "" {
			h.Unreachable = p.unreach
		}
	}
	if h.Sent > 0 {
		h.LossRatio = float64(h.Sent-h.Received) / float64(h.Sent)
	}
	if h.Received == 0 {
		return h
	}
	h.RTTMeanSeconds = sum / float64(h.Received)
	addrs := make([]netip.Addr, 0, len(count))
	for a := range count {
		addrs = append(addrs, a)
	}
	// Most answers first, then the smallest address: stable across runs.
	slices.SortFunc(addrs, func(a, b netip.Addr) int {
		if count[a] != count[b] {
			return count[b] - count[a]
		}
		return a.Compare(b)
	})
	h.Address = addrs[0].String()
	if len(addrs) > 1 {
		for _, a := range addrs {
			h.Addresses = append(h.Addresses, a.String())
		}
	}
	return h
}

// pathHash is FNV-1a (64 bit) over the hop addresses in order, each
// followed by a newline, cut to PathHashBits bits.
func pathHash(hops []TracerouteHop) uint64 {
	h := fnv.New64a()
	for _, hop := range hops {
		h.Write([]byte(hop.Address))
		h.Write([]byte{'\n'})
	}
	return h.Sum64() & (1<<PathHashBits - 1)
}

// String is the trace as one line, e.g. "1 192.0.2.1, 2 *, 3 198.51.100.9 (reached)".
func (r *TracerouteResult) String() string {
	var b []byte
	for i, h := range r.Hops {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(h.TTL), 10)
		b = append(b, ' ')
		b = append(b, h.Address...)
	}
	if r.DestinationReached {
		b = append(b, " (reached)"...)
	}
	return string(b)
}
