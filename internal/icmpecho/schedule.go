//go:build linux

package icmpecho

import (
	"runtime"
	"sync"
	"time"
)

// sendSlack is how early the scheduler sends an echo request that is
// nearly due, so one wake-up sends every request due within it rather
// than one each.
const sendSlack = 50 * time.Microsecond

// yieldEvery is how many requests the scheduler sends in a row before it
// lets other goroutines run (about half a millisecond's worth).
const yieldEvery = 64

// queueWindow is the time the pacer assumes the receive loop may be kept
// from reading (the machine busy elsewhere): it never sends more in one
// window than half the smallest receive buffer of the engine holds.
const queueWindow = 10 * time.Millisecond

// perPacketCost is the receive-buffer space an echo reply takes besides its
// bytes (the kernel charges a buffer's "truesize": measured at 832 bytes for
// a 64-byte reply on Linux 6.x, rounded up).
const perPacketCost = 1024

// scheduler sends every echo request of an engine from one goroutine, each
// at its probe's planned time: probes only enqueue themselves and wait, so a
// slow probe never holds up another's sends, and concurrent probes never
// contend for a socket.
//
// Pacing: a token bucket in bytes of receive buffer. On a fast path (and
// always on loopback) a reply is queued for the receive loop about as fast
// as its request leaves, so a burst of requests becomes a burst in the
// receive queue. The bucket holds half the smallest receiving socket's
// buffer and refills that much per queueWindow, so a burst never overflows
// the queue even if the receive loop waits that long for a CPU. Root gets
// the 32 MiB asked for (the kernel doubles it): 31,000 echoes at once and
// 3 million a second, so nothing is delayed in practice; a socket capped by
// net.core.rmem_max = 212992 (the usual default; granted twice that) gets
// ~200 at once and 20,000 a second, and 10,000 probes started at one
// instant are spread over half a second. A probe's later requests keep the phase its first one got
// (they are planned from its actual send time), so the spread lasts.
type scheduler struct {
	loop
	mu    sync.Mutex
	queue probeQueue

	burst, tokens float64 // bytes
	rate          float64 // bytes per nanosecond
	refilled      time.Time
}

func (s *scheduler) init() {
	s.loop.init()
	s.burst = -1
}

// fit sizes the pacer for a receiving socket with rcvbuf bytes of buffer
// (the smallest wins). The caller holds no scheduler lock.
func (s *scheduler) fit(rcvbuf int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := float64(max(rcvbuf, 64*perPacketCost)) / 2
	if s.burst < 0 || b < s.burst {
		s.burst = b
		s.tokens = min(s.tokens, b)
		if s.refilled.IsZero() {
			s.tokens = b
		}
		s.rate = b / float64(queueWindow)
		s.refilled = time.Now()
	}
}

// add queues p's first request for now.
func (s *scheduler) add(p *Probe) {
	s.mu.Lock()
	p.due = mono(time.Now())
	s.queue.push(p)
	first := s.queue[0].p == p
	s.mu.Unlock()
	if first {
		s.poke()
	}
}

// take spends cost bytes of the bucket at now, or says how long until it
// can.
func (s *scheduler) take(now time.Time, cost float64) (time.Duration, bool) {
	if s.burst < 0 {
		return 0, true // no receiving socket yet: cannot happen once a probe runs
	}
	if d := now.Sub(s.refilled); d > 0 {
		s.tokens = min(s.burst, s.tokens+float64(d)*s.rate)
		s.refilled = now
	}
	cost = min(cost, s.burst)
	if s.tokens >= cost {
		s.tokens -= cost
		return 0, true
	}
	return time.Duration((cost-s.tokens)/s.rate) + 1, false
}

// run sends requests as they fall due until shutdown.
func (s *scheduler) run(wg *sync.WaitGroup) { s.loop.run(wg, s.sendDue) }

// sendDue sends every request that is due (and that the pacer allows) and
// returns how long until the next one (0: none queued).
func (s *scheduler) sendDue() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := 0
	for len(s.queue) > 0 {
		p := s.queue[0].p
		if p.ended.Load() {
			s.queue.pop()
			continue
		}
		now := time.Now()
		if wait := time.Duration(p.due - mono(now)); wait > sendSlack {
			return wait
		}
		if wait, ok := s.take(now, p.cost()); !ok {
			return wait
		}
		s.queue.pop()
		s.mu.Unlock()
		more := p.sendNext(now)
		if sent++; sent%yieldEvery == 0 {
			// Yield now, between two sends, rather than be preempted
			// (after 10 ms of running) between a clock read and its
			// sendmsg, where the wait would count in that echo's RTT.
			runtime.Gosched()
		}
		s.mu.Lock()
		if more {
			s.queue.push(p)
		}
	}
	return 0
}

// probeQueue is a min-heap of probes by the due time of their next
// request. The time is kept in the entry, as nanoseconds since epoch, so
// the comparisons of a push or pop (a dozen with thousands of probes
// queued, once per echo) read the queue's own array instead of a probe
// each; pops through container/heap's interface spent as much time in Less
// as the scheduler in everything else but sendmsg.
type probeQueue []queued

type queued struct {
	due int64
	p   *Probe
}

func (q *probeQueue) push(p *Probe) {
	h := append(*q, queued{p.due, p})
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].due <= h[i].due {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
	*q = h
}

// pop removes the first entry (the queue is not empty).
func (q *probeQueue) pop() {
	h := *q
	n := len(h) - 1
	h[0] = h[n]
	h[n] = queued{}
	h = h[:n]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && h[l].due < h[least].due {
			least = l
		}
		if r < n && h[r].due < h[least].due {
			least = r
		}
		if least == i {
			break
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
	*q = h
}
