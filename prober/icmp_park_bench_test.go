package prober

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkICMPSuspendedHeap is the heap a suspended icmp probe holds
// while it waits for its echoes (what the /probe handler's parked probes
// cost, besides the handler's own state): n probes to 127.0.0.1 started
// with StartICMP, the live heap read after a collection once all are
// waiting (their first echo answered, the second 10s off), then all cut short.
// log=discard drops the probe's log lines; log=kept holds every line as
// /probe's per-probe log does, so the attributes' strings stay live too.
// ondone=true asks each probe's OnDone, as the /probe handler does, so
// what the engine arms for its end (StopAt, ReplyTimeout) is counted too.
//
//	go test ./prober -run '^$' -bench BenchmarkICMPSuspendedHeap -benchtime 3x
func BenchmarkICMPSuspendedHeap(b *testing.B) {
	icmpNeedSocket(b)
	const n = 2000
	m := icmpModule(b, 30*time.Second, "preferred_ip_protocol: ip4\npackets: 2\ninterval: 10s")
	for _, c := range []struct{ kept, onDone bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		name := fmt.Sprintf("log=%s/ondone=%v", map[bool]string{false: "discard", true: "kept"}[c.kept], c.onDone)
		kept := c.kept
		b.Run(name, func(b *testing.B) {
			var perProbe, allocs float64
			for range b.N {
				logs := make([]icmpKeptLog, n)
				parked := make([]*Suspended, n)
				ended := make([]atomic.Bool, n)
				var before, during runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range parked {
					logger := discardLogger
					if kept {
						logger = slog.New(&logs[i])
					}
					ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
					res, s := StartRequest(ctx, StartICMP, &Request{Target: "127.0.0.1", Module: &m, ModuleName: "m", Logger: logger})
					cancel()
					if s == nil {
						b.Fatalf("probe not suspended: %+v", res.Base())
					}
					parked[i] = s
					if c.onDone {
						s.OnDone(func() { ended[i].Store(true) }) // a closure per probe, as the handler's
					}
				}
				time.Sleep(2 * time.Second) // the engine paces the first echoes
				runtime.GC()
				runtime.ReadMemStats(&during)
				perProbe = float64(during.HeapAlloc-before.HeapAlloc) / n
				allocs = float64(during.Mallocs-before.Mallocs) / n
				for i, s := range parked {
					if ended[i].Load() {
						b.Fatalf("probe %d ended before its second echo (10s off)", i)
					}
					if r := s.Finish().(*ICMPResult); r.PacketsSent != 1 || r.PacketsReceived != 1 {
						b.Fatalf("sent/received %d/%d, want 1/1 (the first echo): %+v", r.PacketsSent, r.PacketsReceived, r)
					}
				}
				runtime.KeepAlive(logs)
			}
			b.ReportMetric(perProbe, "live-B/probe")
			b.ReportMetric(allocs, "allocs/probe")
		})
	}
}

// icmpKeptLog is a slog.Handler that keeps every record, as /probe's
// per-probe log does.
type icmpKeptLog struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *icmpKeptLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *icmpKeptLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}

func (h *icmpKeptLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *icmpKeptLog) WithGroup(string) slog.Handler      { return h }
