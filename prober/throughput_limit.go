package prober

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Throughput probes fill the link on purpose, so two at once would measure
// each other: the process allows DefaultThroughputConcurrency of them at a
// time (serve's --throughput.max-concurrent changes it).
//
// A probe that finds every slot taken waits for one, but only as long as it
// can still run a useful measurement before its own deadline; past that it
// fails at once with a reason that names the limit. Waiting (rather than
// failing at once) matters because Prometheus aligns scrapes: a download
// and an upload module scraped at the same interval arrive together every
// time, and failing fast would fail the same one on every scrape.
const DefaultThroughputConcurrency = 1

var throughputSlots = struct {
	mu sync.Mutex
	ch chan struct{} // nil: no limit
}{ch: make(chan struct{}, DefaultThroughputConcurrency)}

// SetThroughputConcurrency sets how many throughput probes may run at once
// in this process; n <= 0 removes the limit. Probes already running keep
// the slot they hold.
func SetThroughputConcurrency(n int) {
	throughputSlots.mu.Lock()
	defer throughputSlots.mu.Unlock()
	if n <= 0 {
		throughputSlots.ch = nil
		return
	}
	throughputSlots.ch = make(chan struct{}, n)
}

// ThroughputConcurrency is the limit in force (0: none).
func ThroughputConcurrency() int {
	throughputSlots.mu.Lock()
	defer throughputSlots.mu.Unlock()
	return cap(throughputSlots.ch)
}

// errNoSlot explains a probe that could not get a slot.
type errNoSlot struct {
	limit  int
	waited time.Duration
}

func (e errNoSlot) Error() string {
	return fmt.Sprintf("another throughput probe is running (at most %d at a time per exporter, --throughput.max-concurrent); "+
		"waited %s, after which the rest of this probe's timeout was too short to measure", e.limit, e.waited.Round(time.Millisecond))
}

// acquireThroughputSlot takes a slot, waiting until giveUp at the latest.
// It returns the release function and how long it waited.
func acquireThroughputSlot(ctx context.Context, giveUp time.Time) (func(), time.Duration, error) {
	throughputSlots.mu.Lock()
	ch := throughputSlots.ch
	throughputSlots.mu.Unlock()
	if ch == nil {
		return func() {}, 0, nil
	}
	start := time.Now()
	release := func() { <-ch }
	select {
	case ch <- struct{}{}:
		return release, 0, nil
	default:
	}
	wait := time.Until(giveUp)
	if wait <= 0 {
		return nil, 0, errNoSlot{limit: cap(ch)}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case ch <- struct{}{}:
		return release, time.Since(start), nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, time.Since(start), errNoSlot{limit: cap(ch), waited: time.Since(start)}
}

// takeThroughputSlot is acquireThroughputSlot for a probe (throughput or
// responsiveness): it records the wait in *waitSeconds, even when it gave
// up, and logs msg with the wait when there was one.
func takeThroughputSlot(ctx context.Context, giveUp time.Time, logger *slog.Logger, msg string, waitSeconds *float64) (func(), error) {
	release, waited, err := acquireThroughputSlot(ctx, giveUp)
	*waitSeconds = waited.Seconds()
	if err != nil {
		return nil, err
	}
	if waited > 0 {
		logger.Info(msg, "wait_seconds", waited.Seconds())
	}
	return release, nil
}
