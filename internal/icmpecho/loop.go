//go:build linux

package icmpecho

import (
	"sync"
	"time"
)

// loop is the shape of the engine's timed goroutines (the scheduler, the
// deadlines): do the work that is due, then sleep until the next is, a
// poke (something earlier was queued) or shutdown.
type loop struct {
	wake chan struct{}
	stop chan struct{}
}

func (l *loop) init() {
	l.wake = make(chan struct{}, 1)
	l.stop = make(chan struct{})
}

// poke wakes the goroutine; it never blocks.
func (l *loop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *loop) shutdown() { close(l.stop) }

// run calls due until shutdown: at once, then after each poke, and when
// the wait it returned last passed (0: nothing is due, sleep until a
// poke).
func (l *loop) run(wg *sync.WaitGroup, due func() time.Duration) {
	defer wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Reset and Stop discard a pending expiry (Go 1.23 timers).
		if wait := due(); wait > 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-timer.C:
		}
	}
}
