package prober

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// StartFunc starts a probe that can wait without a goroutine of its own
// (the icmp prober's, StartICMP). It returns the finished Result as a
// Func would, or nil and the probe suspended while it waits. ctx bounds
// what StartFunc does before it returns; a suspended probe keeps ctx's
// deadline as its own and needs ctx no longer.
type StartFunc func(ctx context.Context, req *Request) (Result, *Suspended)

// Suspended is a probe that waits holding no goroutine: OnDone says when
// it is ready, Finish ends it. The /probe handler parks thousands of
// them, where a goroutine each would cost its stack (8 kB or more) for
// the whole probe.
type Suspended struct {
	probe waiting
	// RunRequest's own, for Finish.
	req     *Request
	start   time.Time
	timeout float64
}

// waiting is what a StartFunc's prober keeps of a suspended probe
// (StartICMP's icmpParked, which holds the Suspended too): one value, not
// a closure each for OnDone and Finish.
type waiting interface {
	OnDone(f func())
	Finish() Result
}

// OnDone calls f once, when the probe is ready to Finish. f runs on
// another goroutine and must not block.
func (s *Suspended) OnDone(f func()) { s.probe.OnDone(f) }

// Finish ends the probe and fills in the fields every probe shares, as
// RunRequest does; call it once, after OnDone's f ran (or earlier, to cut
// the probe short). A panicking prober fails its probe.
func (s *Suspended) Finish() (res Result) {
	defer func() { res = s.req.conclude(recover(), res, s.start, s.timeout) }()
	return s.probe.Finish()
}

// StartRequest is RunRequest for a StartFunc: res is the finished probe,
// or s the suspended one (res nil).
func StartRequest(ctx context.Context, start StartFunc, req *Request) (res Result, s *Suspended) {
	ctx, cancel, t0, timeout := req.prepare(ctx)
	defer cancel()
	defer func() {
		if s == nil {
			res = req.conclude(recover(), res, t0, timeout)
		}
	}()
	if res = req.refuse(start == nil); res != nil {
		return res, nil
	}
	res, s = start(ctx, req)
	if s != nil {
		s.req, s.start, s.timeout = req, t0, timeout
	}
	return res, s
}

// prepare is RunRequest's start: the request's defaults, the deadline
// (DefaultTimeout when ctx has none; cancel frees it) and the timeout to
// report.
func (req *Request) prepare(ctx context.Context) (_ context.Context, cancel context.CancelFunc, start time.Time, timeout float64) {
	start = time.Now()
	if req.Logger == nil {
		req.Logger = discardLogger
	}
	if req.Module == nil {
		req.Module = &config.Module{}
	}
	// The deadline is the caller's; req.Timeout only says what to report as
	// the probe's timeout (the budget the /probe handler computed).
	cancel = func() {}
	dl, ok := ctx.Deadline()
	if !ok {
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		dl, _ = ctx.Deadline()
	}
	timeout = req.Timeout.Seconds()
	if req.Timeout <= 0 {
		timeout = dl.Sub(start).Seconds()
	}
	return ctx, cancel, start, timeout
}

// conclude is RunRequest's end: a panic (p) fails the probe, and the
// fields every probe shares are filled in.
func (req *Request) conclude(p any, res Result, start time.Time, timeout float64) Result {
	if p != nil {
		req.Logger.Error("prober panicked", "panic", p)
		res = &Common{Error: fmt.Sprintf("prober panicked: %v", p)}
	}
	b := res.Base()
	b.Prober = req.Module.Prober
	b.Module = req.ModuleName
	b.Target = req.Target
	b.StartedAt = start
	b.DurationSeconds = time.Since(start).Seconds()
	b.TimeoutSeconds = timeout
	if b.Success {
		b.Error, b.Reason, b.Cause = "", "", ""
	}
	return res
}

var discardLogger = slog.New(slog.DiscardHandler)
