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
			p := &Probe{due: epoch.Add(time.Duration(max(last, 0) + int64(r.IntN(50))))}
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
		if want := int64(q[0].p.due.Sub(epoch)); head != want {
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
