//go:build linux

package icmpecho

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// inDeadlines says whether p is in its engine's deadline queue, by its index
// and by a scan of the queue (a stale index must not hide it).
func inDeadlines(p *Probe) bool {
	d := &p.e.deadlines
	d.mu.Lock()
	defer d.mu.Unlock()
	in := p.dl != 0
	for _, e := range d.heap {
		in = in || e.p == p
	}
	return in
}

// checkHeap fails unless d is a min-heap whose probes know their places.
func checkHeap(t *testing.T, d *deadlines) {
	t.Helper()
	for i, e := range d.heap {
		if int(e.p.dl) != i+1 {
			t.Fatalf("entry %d's probe says it is at %d", i, e.p.dl-1)
		}
		if i > 0 && d.heap[(i-1)/2].at > e.at {
			t.Fatalf("entry %d (%d) is earlier than its parent (%d)", i, e.at, d.heap[(i-1)/2].at)
		}
	}
}

// Random sets, moves and removals keep the queue a heap whose probes know
// their index, and expiry ends exactly the probes still queued, each once,
// in deadline order and none before its deadline.
func TestDeadlinesOrder(t *testing.T) {
	e := &engine{}
	e.deadlines.init()
	d := &e.deadlines
	const n = 300
	probes := make([]*Probe, n)
	want := make([]int64, n) // the deadline (mono) of each probe still queued; 0: none
	var mu sync.Mutex
	var order []int
	var at []int64
	fired := make(chan struct{}, n)
	start := mono(time.Now()) + int64(100*time.Millisecond)
	for i := range probes {
		p := &Probe{e: e}
		p.notify = func() {
			mu.Lock()
			order = append(order, i)
			at = append(at, mono(time.Now()))
			mu.Unlock()
			fired <- struct{}{}
		}
		probes[i] = p
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 4 * n {
		i := rng.IntN(n)
		p := probes[i]
		switch rng.IntN(4) {
		case 0:
			d.remove(p)
			want[i] = 0
		default: // set or move, later or earlier; interleaved across probes
			want[i] = start + rng.Int64N(int64(300*time.Millisecond))
			d.set(p, want[i])
		}
		checkHeap(t, d)
	}
	live := 0
	for i, w := range want {
		if w != 0 {
			live++
		} else {
			probes[i].notify = nil // a removed probe's f, if called, would count
		}
		if (w != 0) != (probes[i].dl != 0) {
			t.Fatalf("probe %d: queued at %d, want queued %v", i, probes[i].dl, w != 0)
		}
	}
	if d.len() != live {
		t.Fatalf("%d queued, want %d", d.len(), live)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go d.run(&wg)
	for range live {
		select {
		case <-fired:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d deadlines passed by 5s", len(order), live)
		}
	}
	time.Sleep(50 * time.Millisecond) // a second call would show
	d.shutdown()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(order) != live || d.len() != 0 {
		t.Fatalf("%d calls of f for %d queued probes, %d left queued", len(order), live, d.len())
	}
	seen := map[int]bool{}
	for k, i := range order {
		switch {
		case seen[i]:
			t.Errorf("probe %d's f ran twice", i)
		case want[i] == 0:
			t.Errorf("probe %d's f ran, but it was removed", i)
		case at[k] < want[i]:
			t.Errorf("probe %d's f ran %v before its deadline", i, time.Duration(want[i]-at[k]))
		case k > 0 && want[i] < want[order[k-1]]:
			t.Errorf("probe %d (deadline %d) ended after probe %d (deadline %d)", i, want[i], order[k-1], want[order[k-1]])
		}
		seen[i] = true
	}
}

// Real probes with interleaved StopAts end in StopAt order, each once, and
// leave the queue as they end.
func TestOnDoneManyStopAts(t *testing.T) {
	needMode(t, Privileged, false)
	const n = 40
	start := time.Now()
	stops := make([]time.Time, n)
	ends := make(chan int, 2*n)
	probes := make([]*Probe, n)
	for i := range probes {
		// Interleaved: the probes started later end earlier, alternately.
		step := time.Duration(n-i) * 5 * time.Millisecond
		if i%2 == 1 {
			step = time.Duration(i) * 5 * time.Millisecond
		}
		stops[i] = start.Add(200*time.Millisecond + step)
		req := Request{Dst: netip.AddrFrom4([4]byte{127, 32, 0, byte(1 + i)}), Mode: Privileged,
			Packets: 5, Interval: 10 * time.Second, Size: 28, TTL: 64, ReplyTimeout: time.Second, StopAt: stops[i]}
		p, err := Start(req)
		if err != nil {
			t.Fatal(err)
		}
		probes[i] = p
		p.OnDone(func() { ends <- i })
	}
	if q := probes[0].e.deadlines.len(); q != n {
		t.Errorf("%d probes queued, want %d", q, n)
	}
	var order []int
	for range n {
		select {
		case i := <-ends:
			if now := time.Now(); now.Before(stops[i]) {
				t.Errorf("probe %d ended %v before its StopAt", i, stops[i].Sub(now))
			}
			order = append(order, i)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d probes ended by 5s", len(order), n)
		}
	}
	select {
	case i := <-ends:
		t.Errorf("probe %d's f ran again", i)
	case <-time.After(50 * time.Millisecond):
	}
	if q := probes[0].e.deadlines.len(); q != 0 {
		t.Errorf("%d probes left queued after every one ended", q)
	}
	for k := 1; k < n; k++ {
		if stops[order[k]].Before(stops[order[k-1]]) {
			t.Errorf("probe %d (StopAt +%v) ended after probe %d (+%v)", order[k], stops[order[k]].Sub(start), order[k-1], stops[order[k-1]].Sub(start))
		}
	}
	for _, p := range probes {
		_ = p.Finish()
	}
}

// A probe leaves the deadline queue the moment it ends before its
// deadline, by its replies or by Finish, so the queue does not keep it
// (and its f's closure) alive until StopAt; once the last probe ends, the
// engine's deadline goroutine is gone too.
func TestDeadlineLeavesAtEnd(t *testing.T) {
	needMode(t, Privileged, false)
	running := goleak.IgnoreCurrent()
	reqs := loopbackRequests(2, 2, Privileged)
	for i := range reqs {
		reqs[i].Interval, reqs[i].ReplyTimeout = 100*time.Millisecond, time.Minute
		reqs[i].StopAt = time.Now().Add(time.Minute)
	}
	replied, err := Start(reqs[0]) // ends by its replies
	if err != nil {
		t.Fatal(err)
	}
	cut, err := Start(reqs[1]) // cut short by Finish
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	replied.OnDone(func() { close(done) })
	cut.OnDone(func() { t.Error("f of a probe cut short was called") })
	if !inDeadlines(replied) || !inDeadlines(cut) || replied.e.deadlines.len() != 2 {
		t.Fatalf("after OnDone: queued %v and %v, %d in all; want both", inDeadlines(replied), inDeadlines(cut), replied.e.deadlines.len())
	}
	_ = cut.Finish()
	if inDeadlines(cut) || replied.e.deadlines.len() != 1 {
		t.Errorf("a finished probe is still queued (%d in all)", replied.e.deadlines.len())
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("2 echoes to loopback got no replies by 5s")
	}
	if inDeadlines(replied) || replied.e.deadlines.len() != 0 {
		t.Errorf("a probe done by its replies is still queued until its StopAt (%d in all)", replied.e.deadlines.len())
	}
	if res := replied.Wait(context.Background()); res.Sent != 2 || !res.Replied[1] {
		t.Errorf("result %+v, want 2 sent and replied", res)
	}
	goleak.VerifyNone(t, running)
}
