package icmpecho

import (
	"sync/atomic"
	"time"
)

// Mode is the kind of ICMP socket.
type Mode string

// Socket modes.
const (
	// Privileged is a raw socket (needs CAP_NET_RAW): it sees every ICMP
	// message the host receives, which the engine's kernel filters narrow
	// to its own echo replies and to errors.
	Privileged Mode = "privileged"
	// Unprivileged is a datagram ICMP ("ping") socket, allowed by
	// net.ipv4.ping_group_range: the kernel picks its identifier and hands
	// it only the replies that carry it.
	Unprivileged Mode = "unprivileged"
)

// Counters are the engine's own counts for one IP version and socket mode,
// since the process started.
type Counters struct {
	// Sent is the echo requests handed to the kernel; SendErrors those it
	// refused.
	Sent, SendErrors uint64
	// Replies are first replies to a running probe from its target.
	Replies uint64
	// Duplicates are second (or later) replies to one request.
	Duplicates uint64
	// Late are replies to a probe that had already ended.
	Late uint64
	// Foreign are replies that carried this process's mark but came from
	// an address other than the probe's target, or named no probe of this
	// process (replies of other processes are dropped by the kernel
	// filter or, on datagram sockets, never delivered).
	Foreign uint64
	// Errors are ICMP errors (unreachable, time exceeded, too big, …)
	// about this process's echo requests.
	Errors uint64
	// QueueDrops are packets the kernel dropped because a receive queue of
	// the engine was full (SO_RXQ_OVFL), so they were lost to the probes.
	QueueDrops uint64
	// SendDelay is how late echo requests left after the time their
	// probe planned (pacing and scheduling lag): the sum, and counts by
	// the upper bounds in SendDelayBuckets (not cumulative; the last
	// count is for delays above every bound).
	SendDelaySum    time.Duration
	SendDelayCounts [len(SendDelayBuckets) + 1]uint64
	// Sockets is the number of sockets open now.
	Sockets int64
}

// stats holds Counters for one IP version and mode, updated atomically.
type stats struct {
	sent, sendErrors, replies, duplicates, late, foreign, errors, queueDrops atomic.Uint64
	sendDelaySum                                                             atomic.Int64
	sendDelay                                                                [len(SendDelayBuckets) + 1]atomic.Uint64
	sockets                                                                  atomic.Int64
}

// SendDelayBuckets are the upper bounds of the send-delay counts.
var SendDelayBuckets = [...]time.Duration{
	100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second,
}

func (s *stats) observeDelay(d time.Duration) {
	d = max(d, 0)
	s.sendDelaySum.Add(int64(d))
	i := 0
	for i < len(SendDelayBuckets) && d > SendDelayBuckets[i] {
		i++
	}
	s.sendDelay[i].Add(1)
}

// allStats is indexed by [ipv6][privileged].
var allStats [2][2]stats

func statsFor(v6 bool, mode Mode) *stats {
	return &allStats[b2i(v6)][b2i(mode == Privileged)]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Stats returns the engine's counters for one IP version (4 or 6) and mode.
func Stats(ipVersion int, mode Mode) Counters {
	s := statsFor(ipVersion == 6, mode)
	c := Counters{
		Sent:         s.sent.Load(),
		SendErrors:   s.sendErrors.Load(),
		Replies:      s.replies.Load(),
		Duplicates:   s.duplicates.Load(),
		Late:         s.late.Load(),
		Foreign:      s.foreign.Load(),
		Errors:       s.errors.Load(),
		QueueDrops:   s.queueDrops.Load(),
		SendDelaySum: time.Duration(s.sendDelaySum.Load()),
		Sockets:      s.sockets.Load(),
	}
	for i := range c.SendDelayCounts {
		c.SendDelayCounts[i] = s.sendDelay[i].Load()
	}
	return c
}
