//go:build linux

package icmpecho

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The queue hands probes out by due time, ties and all, however pushes
// and pops interleave.
func TestProbeQueueOrder(t *testing.T) {
	var q probeQueue
	r := rand.New(rand.NewPCG(1, 2))
	last := int64(-1 << 62)
	pending := 0
	for i := range 5000 {
		if pending == 0 || r.IntN(3) != 0 {
			// Never earlier than what was popped: the scheduler plans
			// forward (a probe's next request is due after its last).
			p := &Probe{due: max(last, 0) + int64(r.IntN(50))}
			q.push(p)
			pending++
			continue
		}
		head := q[0].due
		for _, e := range q {
			if e.due < head {
				t.Fatalf("step %d: head %d is not the least (%d queued)", i, head, e.due)
			}
		}
		if head < last {
			t.Fatalf("step %d: popped %d after %d", i, head, last)
		}
		if want := q[0].p.due; head != want {
			t.Fatalf("step %d: entry's due %d, its probe's %d", i, head, want)
		}
		last = head
		q.pop()
		pending--
	}
	if len(q) != pending {
		t.Fatalf("%d entries, %d pushed and not popped", len(q), pending)
	}
}

// An echo's RTT runs from the wall clock read before sendmsg to the
// kernel's (wall clock) receive timestamp; when the wall clock stepped back
// between the two, it runs on the monotonic clock to when the reply was
// read. A replied echo with an RTT of 0 is still replied.
func TestEchoRTT(t *testing.T) {
	sent := time.Now()
	var e echo
	if e.ok() {
		t.Fatal("an echo with no reply is replied")
	}
	e.sentWall.Store(sent.UnixNano())
	e.sentMono.Store(mono(sent))
	e.reply(&received{at: sent.Add(1500 * time.Microsecond), seen: sent.Add(9 * time.Millisecond)})
	if !e.ok() || e.rtt() != 1500*time.Microsecond {
		t.Errorf("kernel timestamp: ok %v, rtt %v, want 1.5ms", e.ok(), e.rtt())
	}
	// The wall clock stepped back an hour: the receive timestamp is
	// before the send.
	e.reply(&received{at: sent.Add(-time.Hour), seen: sent.Add(2 * time.Millisecond)})
	if e.rtt() != 2*time.Millisecond {
		t.Errorf("stepped clock: rtt %v, want 2ms (monotonic)", e.rtt())
	}
	e.reply(&received{at: sent, seen: sent})
	if !e.ok() || e.rtt() != 0 {
		t.Errorf("zero RTT: ok %v, rtt %v", e.ok(), e.rtt())
	}
}
