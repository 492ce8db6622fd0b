//go:build linux

package icmpecho

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Probe is a running probe. Every Probe that Start returns must be waited
// for with Wait.
type Probe struct {
	e     *engine
	sock  *socket
	dst   netip.Addr
	pkt   []byte // the request; its sequence number and checksum are set per send
	id    uint16
	ttl   int16
	token uint32
	scope uint32
	// The plan (of the Request: the rest of it is not kept, 150 bytes of
	// every waiting probe: a Probe is 240).
	packets      int32
	interval     time.Duration
	replyTimeout time.Duration
	stopAt       int64 // StopAt, mono; 0: none

	// Scheduling state, used by the scheduler only (due under its lock),
	// on the monotonic clock since epoch (mono).
	due   int64
	base  int64 // the first request's send time: later ones keep its phase
	next  int32
	ended atomic.Bool
	dl    int32 // index+1 in the engine's deadlines while queued there (under their lock); 0: not queued

	mu        sync.Mutex
	finishing bool // Finish began
	finished  bool
	over      bool // no request is left to send
	isDone    bool // every request sent got its reply and none is left
	sent      int32
	received  int32
	dups      int32
	foreign   int32
	hopLimit  int32
	lastSent  int64  // mono
	echoes    []echo // by sequence number
	sendErr   error
	icmpErr   error
	notify    func() // OnDone's f, until it is called
}

// Start opens (or reuses) the socket req needs, in the calling thread's
// network namespace, and queues the probe's requests. Only argument and
// socket errors (a *SocketError) are returned; what happens to the
// requests is in Wait's Result.
func Start(req Request) (*Probe, error) {
	if !req.Dst.IsValid() || req.Packets < 1 || req.Interval <= 0 || req.Packets > 1<<16 {
		return nil, errors.New("icmpecho: request needs a destination, 1-65536 packets and an interval")
	}
	if req.Mode != Privileged && req.Mode != Unprivileged {
		return nil, fmt.Errorf("icmpecho: unknown socket mode %q", req.Mode)
	}
	if req.TTL < 0 || req.TTL > 255 {
		return nil, fmt.Errorf("icmpecho: TTL %d is not 0-255", req.TTL)
	}
	dst := req.Dst.Unmap()
	v6 := dst.Is6()
	k := sockKey{v6: v6, mode: req.Mode, df: req.DontFragment}
	if req.Src.IsValid() {
		k.src = req.Src.Unmap()
		if k.src.Is6() != v6 {
			return nil, fmt.Errorf("source address %s and destination %s are not of the same IP version", k.src, dst)
		}
	}
	e := acquire()
	s, err := e.socket(k)
	if err != nil {
		e.release()
		return nil, &SocketError{Mode: req.Mode, Err: err}
	}
	id, err := IDs.Acquire()
	if err != nil {
		e.release()
		return nil, err
	}
	p := &Probe{
		e: e, sock: s, id: id, dst: dst, scope: scopeID(req.Zone), ttl: int16(req.TTL),
		packets: int32(req.Packets), interval: req.Interval, replyTimeout: req.ReplyTimeout,
		token:    uint32(id)<<16 | rand.Uint32N(1<<16),
		echoes:   make([]echo, req.Packets),
		hopLimit: -1,
	}
	if !req.StopAt.IsZero() {
		p.stopAt = max(mono(req.StopAt), 1)
	}
	p.pkt = buildEcho(v6, id, magic, p.token, req.Size)
	e.register(p)
	e.sched.add(p)
	return p, nil
}

func scopeID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	n, _ := strconv.ParseUint(zone, 10, 32)
	return uint32(n)
}

// sendNext sends the next request (called by the scheduler at its due
// time) and says whether another one is to follow.
func (p *Probe) sendNext(now time.Time) bool {
	seq := p.next
	p.next++
	if seq == 0 {
		p.base = mono(now)
	}
	st := p.sock.st
	st.observeDelay(time.Duration(mono(now) - p.due))
	setSeq(p.pkt, p.sock.key.v6, uint16(seq))

	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return false
	}
	p.sent++ // before the send: on loopback the reply may complete the probe before sendmsg returns
	p.mu.Unlock()
	// The clock is read after the lock is let go (an unlock may hand the
	// processor to a waiter) and stored without one, just before sendmsg,
	// so nothing but the kernel's own work lies between the two.
	e := &p.echoes[seq]
	at := time.Now()
	e.sentWall.Store(at.UnixNano())
	e.sentMono.Store(mono(at))
	err := p.sock.send(p.pkt, p.dst, p.scope, int(p.ttl))

	p.mu.Lock()
	if err != nil {
		e.sentWall.Store(0)
		p.sent--
		if p.sendErr == nil {
			p.sendErr = err
		}
		st.sendErrors.Add(1)
	} else {
		st.sent.Add(1)
	}
	more := p.next < p.packets
	done := false
	if !more {
		p.lastSent, p.over = mono(at), true
		p.armReplyTimeout()
		done = p.checkDone()
	}
	p.mu.Unlock()
	if done {
		p.fire()
	}
	if more {
		p.due = p.base + int64(p.next)*int64(p.interval)
	}
	return more
}

// cost is what the pacer counts for one of p's requests, in bytes.
func (p *Probe) cost() float64 { return float64(perPacketCost + len(p.pkt)) }

// epoch is the origin of the monotonic send times.
var epoch = time.Now()

// mono is t on the monotonic clock, since epoch.
func mono(t time.Time) int64 { return int64(t.Sub(epoch)) }

// echo is what happened to one request: 24 bytes, for every echo of
// every waiting probe. The send time is written by the scheduler without
// the probe's lock (see sendNext), the rest under it.
type echo struct {
	sentWall atomic.Int64 // the wall clock (Unix ns) just before sendmsg; 0: not sent
	sentMono atomic.Int64 // the same instant, mono
	// rtt1 is the reply's round-trip time plus 1 ns; 0: no reply. From
	// the clock read just before sendmsg to the kernel's receive
	// timestamp; when the wall clock stepped back between the two, on the
	// monotonic clock to when the receive loop read the reply.
	rtt1 int64
}

func (e *echo) ok() bool { return e.rtt1 != 0 }

// reply records the reply r.
func (e *echo) reply(r *received) {
	d := r.at.UnixNano() - e.sentWall.Load()
	if d < 0 {
		d = mono(r.seen) - e.sentMono.Load()
	}
	e.rtt1 = max(d, 0) + 1
}

func (e *echo) rtt() time.Duration { return time.Duration(e.rtt1 - 1) }

// onReply records an echo reply (called by the receive loop).
func (p *Probe) onReply(seq uint16, r *received) {
	p.mu.Lock()
	done := p.record(seq, r)
	p.mu.Unlock()
	if done {
		p.fire()
	}
}

// record counts a reply (p.mu held) and says whether it ended the probe.
func (p *Probe) record(seq uint16, r *received) bool {
	st := p.sock.st
	switch {
	case p.finished:
		st.late.Add(1)
		return false
	case int(seq) >= len(p.echoes) || p.echoes[seq].sentWall.Load() == 0:
		st.foreign.Add(1) // our mark, but no such request was sent
		return false
	case r.from != p.dst:
		p.foreign++
		st.foreign.Add(1)
		return false
	case p.echoes[seq].ok():
		p.dups++
		st.duplicates.Add(1)
		return false
	}
	p.echoes[seq].reply(r)
	p.received++
	if r.hopLimit >= 0 {
		p.hopLimit = int32(r.hopLimit)
	}
	st.replies.Add(1)
	return p.checkDone()
}

// checkDone marks the probe done once every request that was sent got its
// reply and none is left to send (p.mu held), and says whether it just did.
func (p *Probe) checkDone() bool {
	if !p.isDone && (p.received == p.packets || p.over && p.received == p.sent) {
		p.isDone = true
		return true
	}
	return false
}

// onError records an ICMP error about one of the probe's requests.
func (p *Probe) onError(m message, r *received) {
	p.sock.st.errors.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished || int(m.seq) >= len(p.echoes) || p.echoes[m.seq].sentWall.Load() == 0 || p.icmpErr != nil {
		return
	}
	p.icmpErr = &ICMPError{Kind: m.kind, Type: m.typ, Code: m.code, From: r.from, MTU: m.mtu}
}

// Wait waits until the probe ends (see OnDone) or ctx does, and returns
// what the probe saw.
func (p *Probe) Wait(ctx context.Context) *Result {
	ended := make(chan struct{})
	p.OnDone(func() { close(ended) })
	select {
	case <-ended:
	case <-ctx.Done():
	}
	return p.Finish()
}

// OnDone arranges for f to be called once when the probe ends: every
// request sent got its reply and none is left to send, ReplyTimeout after
// the last was sent, or StopAt, whichever comes first. f runs on the
// engine's receive loop, its scheduler or its deadline goroutine, so it
// must not block. Finish stops it from being called, except when the two race
// (f was taken just before): f must not end the probe a second time; after
// Finish, OnDone arms nothing and f is never called. A waiting probe holds
// no goroutine: a caller with thousands of them (the /probe handler's
// parked probes) calls Finish from f's signal. Call OnDone once.
func (p *Probe) OnDone(f func()) {
	p.mu.Lock()
	if p.finishing { // cut short before it asked: nothing to arm
		p.mu.Unlock()
		return
	}
	p.notify = f
	if p.isDone {
		p.mu.Unlock()
		p.fire()
		return
	}
	if p.stopAt != 0 {
		p.e.deadlines.set(p, p.stopAt)
	}
	p.armReplyTimeout()
	p.mu.Unlock()
}

// armReplyTimeout moves OnDone's deadline to ReplyTimeout after the last
// request once every request is out, when that comes before StopAt (p.mu
// held).
func (p *Probe) armReplyTimeout() {
	if !p.over || p.notify == nil || p.replyTimeout <= 0 {
		return
	}
	end := p.lastSent + int64(p.replyTimeout)
	if p.stopAt != 0 && p.stopAt < end {
		return
	}
	p.e.deadlines.set(p, end)
}

// fire calls OnDone's f, once, and takes the probe's deadline off the
// engine's queue (it ended before it, or the queue let go of it already).
func (p *Probe) fire() {
	p.mu.Lock()
	f := p.notify
	p.notify = nil
	if f != nil { // only a probe with an f is queued
		p.e.deadlines.remove(p)
	}
	p.mu.Unlock()
	if f != nil {
		f()
	}
}

// Finish ends the probe and returns its result; call it once. A probe
// still missing replies first reads what the kernel has queued: those
// arrived in time.
func (p *Probe) Finish() *Result {
	p.mu.Lock()
	missing := !p.isDone && p.sent > 0
	p.notify = nil
	p.finishing = true // an OnDone from now on arms nothing
	p.e.deadlines.remove(p)
	p.mu.Unlock()
	if missing {
		p.e.drain(p.sock)
	}
	p.mu.Lock()
	p.finished = true
	p.ended.Store(true)
	res := &Result{
		Mode: p.sock.key.mode, ID: p.id, Sent: int(p.sent), Replied: make([]bool, len(p.echoes)), RTTs: make([]time.Duration, len(p.echoes)),
		Duplicates: int(p.dups), Foreign: int(p.foreign), HopLimit: int(p.hopLimit), SendErr: p.sendErr, ICMPErr: p.icmpErr,
	}
	for i := range p.echoes {
		if e := &p.echoes[i]; e.ok() {
			res.Replied[i], res.RTTs[i] = true, e.rtt()
		}
	}
	if p.sock.key.mode == Unprivileged {
		res.ID = p.sock.id
	}
	p.mu.Unlock()
	p.e.unregister(p)
	IDs.Release(p.id)
	p.e.release()
	return res
}
