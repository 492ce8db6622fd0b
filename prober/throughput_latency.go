package prober

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// latencyRecord is what one latency phase (idle or loaded) saw.
type latencyRecord struct {
	sent     int
	rtts     []time.Duration // answered samples, in the order they were sent
	firstErr error           // first failure, to explain lost samples
}

func (r *latencyRecord) lost() int { return r.sent - len(r.rtts) }

// latencyPhase is the schedule of one phase: samples every interval from
// start (at most max of them) until stop is closed; once sending has ended
// (stop closed, or max sent), unanswered samples get grace more time, then
// count as lost.
type latencyPhase struct {
	start    time.Time
	interval time.Duration
	max      int
	stop     <-chan struct{} // nil: never
	grace    time.Duration
}

// latencySampler measures round-trip times to the target's host.
type latencySampler interface {
	run(ctx context.Context, ph latencyPhase) (*latencyRecord, error)
}

// tcpLatency samples with TCP connects: the time from connect() to the
// SYN-ACK, as the kernel sees it. Connects overlap when they take longer
// than the interval, so a deep queue does not slow the sampling down. They
// need no privilege and reach any host the transfer reaches (the port is
// the transfer's unless latency_port says otherwise). Under load the
// SYN or the SYN-ACK waits in the same bottleneck queue as the bulk data,
// which is exactly the delay a new connection (a web page, a call) meets.
type tcpLatency struct {
	dialer  *net.Dialer
	network string
	addr    string
	logger  *slog.Logger
}

func (s *tcpLatency) run(ctx context.Context, ph latencyPhase) (*latencyRecord, error) {
	rec := &latencyRecord{}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		errs   = map[string]int{}
		rtts   = make([]time.Duration, 0, ph.max)
		sentAt = make([]time.Duration, 0, ph.max)
	)
	if !sleepUntil(ctx, ph.start, ph.stop) {
		return rec, nil
	}
	tick := time.NewTimer(0)
	defer tick.Stop()
	for seq := 0; seq < ph.max; seq++ {
		if seq > 0 {
			tick.Reset(time.Until(ph.start.Add(time.Duration(seq) * ph.interval)))
			select {
			case <-tick.C:
			case <-ph.stop:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil || closed(ph.stop) {
			break
		}
		rec.sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			rtt, err := connectRTT(sctx, s.dialer, s.network, s.addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[err.Error()]++
				if rec.firstErr == nil {
					rec.firstErr = err
				}
				return
			}
			rtts = append(rtts, rtt)
			sentAt = append(sentAt, t0.Sub(ph.start))
		}()
	}
	grace := time.AfterFunc(ph.grace, cancel)
	wg.Wait()
	grace.Stop()
	for e, n := range errs {
		s.logger.Debug("latency connects failed", "count", n, "err", e)
	}
	// Back into the order they were sent in.
	idx := make([]int, len(rtts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(sentAt[a] - sentAt[b]) })
	for _, i := range idx {
		rec.rtts = append(rec.rtts, rtts[i])
	}
	if errors.Is(rec.firstErr, ErrDenied) {
		return rec, rec.firstErr
	}
	return rec, nil
}

// icmpLatency samples with echo requests through the icmp prober's
// pinger (icmpPing: socket choice, identifiers, reply matching).
type icmpLatency struct {
	opts   config.ICMPProbe
	ip     *net.IPAddr
	logger *slog.Logger
}

func (s *icmpLatency) run(ctx context.Context, ph latencyPhase) (*latencyRecord, error) {
	rec := &latencyRecord{}
	if !sleepUntil(ctx, ph.start, ph.stop) {
		return rec, nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Sending ends when stop closes; replies get grace more.
	var stoppedAt time.Time
	var stopMu sync.Mutex
	done := make(chan struct{})
	defer close(done)
	if ph.stop != nil {
		go func() {
			select {
			case <-ph.stop:
				stopMu.Lock()
				stoppedAt = time.Now()
				stopMu.Unlock()
				t := time.NewTimer(ph.grace)
				defer t.Stop()
				select {
				case <-t.C:
					cancel()
				case <-done:
				}
			case <-done:
			}
		}()
	}
	stopAt, ok := ctx.Deadline()
	if !ok {
		stopAt = time.Now().Add(time.Duration(ph.max)*ph.interval + ph.grace)
	}
	o := s.opts
	o.Packets, o.Interval = ph.max, ph.interval
	plan := icmpPlan{packets: ph.max, interval: ph.interval, stopAt: stopAt, replyTimeout: ph.grace}
	start := time.Now()
	r, err := icmpPingWait(runCtx, o, s.ip, plan, &ICMPResult{}, s.logger)
	if r == nil {
		return rec, err
	}
	// Echo requests go out every interval from start; those sent after
	// stop do not belong to this phase.
	sent := r.sent
	stopMu.Lock()
	if !stoppedAt.IsZero() {
		sent = min(sent, int(stoppedAt.Sub(start)/ph.interval)+1)
	}
	stopMu.Unlock()
	rec.sent = sent
	for seq := 0; seq < sent && seq < len(r.got); seq++ {
		if r.got[seq] {
			rec.rtts = append(rec.rtts, r.rtts[seq])
		}
	}
	rec.firstErr = r.firstErr
	return rec, err
}

// sleepUntil waits until t; false when ctx ended or stop closed first.
func sleepUntil(ctx context.Context, t time.Time, stop <-chan struct{}) bool {
	if d := time.Until(t); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return ctx.Err() == nil && !closed(stop)
}

func closed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// median of ds (which it sorts); 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// trimmedMean is the mean of ds without its slowest (1-keep) fraction: the
// responsiveness draft's TM at its 95% default.
func trimmedMean(ds []time.Duration, keep float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := max(1, int(float64(len(s))*keep+1e-9))
	var sum time.Duration
	for _, d := range s[:n] {
		sum += d
	}
	return sum / time.Duration(n)
}
