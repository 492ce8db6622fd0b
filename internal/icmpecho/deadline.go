//go:build linux

package icmpecho

import (
	"sync"
	"time"
)

// deadlines ends the waiting probes of an engine at their OnDone deadline
// (StopAt, or ReplyTimeout after the last request): one heap and one
// goroutine per engine rather than a runtime timer and a method value per
// probe (140 bytes of every one of thousands of parked probes). A probe
// leaves the heap the moment it ends by any other way, so the heap never
// keeps an ended probe (and its f's closure) alive until its deadline.
//
// Lock order: a probe's mu, then the heap's; the heap's lock is never
// held while a probe's is taken, and f runs with neither.
type deadlines struct {
	loop
	mu   sync.Mutex
	heap []deadline
}

// deadline is one heap entry. The time is kept in the entry (mono), so a
// sift compares the heap's own array, not a probe each.
type deadline struct {
	at int64
	p  *Probe
}

// set makes at (mono) p's deadline, queuing p if it is not queued yet.
func (d *deadlines) set(p *Probe, at int64) {
	d.mu.Lock()
	i := int(p.dl) - 1
	if i < 0 {
		i = len(d.heap)
		d.heap = append(d.heap, deadline{at, p})
		p.dl = int32(i + 1)
	} else {
		d.heap[i].at = at
	}
	i = d.fix(i)
	d.mu.Unlock()
	if i == 0 {
		d.poke() // the earliest deadline moved
	}
}

// remove takes p out of the queue, if it is in.
func (d *deadlines) remove(p *Probe) {
	d.mu.Lock()
	if p.dl != 0 {
		d.removeAt(int(p.dl) - 1)
	}
	d.mu.Unlock()
}

// len is the number of probes queued.
func (d *deadlines) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.heap)
}

// run ends probes as their deadlines pass, until shutdown.
func (d *deadlines) run(wg *sync.WaitGroup) { d.loop.run(wg, d.expire) }

// expire calls OnDone's f of every probe whose deadline passed, in
// deadline order, and returns how long until the next one (0: none).
func (d *deadlines) expire() time.Duration {
	now := mono(time.Now())
	d.mu.Lock()
	for len(d.heap) > 0 {
		first := d.heap[0]
		if first.at > now {
			d.mu.Unlock()
			return time.Duration(max(first.at-mono(time.Now()), 1))
		}
		d.removeAt(0)
		d.mu.Unlock()
		first.p.fire()
		d.mu.Lock()
	}
	d.mu.Unlock()
	return 0
}

// removeAt removes entry i (d.mu held).
func (d *deadlines) removeAt(i int) {
	h := d.heap
	n := len(h) - 1
	h[i].p.dl = 0
	if i != n {
		h[i] = h[n]
		h[i].p.dl = int32(i + 1)
	}
	h[n] = deadline{}
	d.heap = h[:n]
	if i != n {
		d.fix(i)
	}
	if n == 0 && cap(h) > 256 {
		d.heap = nil // let a burst's array go once it drained
	}
}

// fix restores the heap order after entry i's time changed (d.mu held) and
// returns where the entry ended up.
func (d *deadlines) fix(i int) int {
	h := d.heap
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			break
		}
		d.swap(i, parent)
		i = parent
	}
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].at < h[least].at {
			least = l
		}
		if r < len(h) && h[r].at < h[least].at {
			least = r
		}
		if least == i {
			return i
		}
		d.swap(i, least)
		i = least
	}
}

func (d *deadlines) swap(i, j int) {
	h := d.heap
	h[i], h[j] = h[j], h[i]
	h[i].p.dl = int32(i + 1)
	h[j].p.dl = int32(j + 1)
}
