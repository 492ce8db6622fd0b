package collector

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/isp-checker/isp-checker/prober"
)

// maxProbeLog bounds the log kept per probe, whatever a target sends back;
// minProbeLog is what a probe keeps when the memory budget cannot spare more.
const (
	maxProbeLog = 64 << 10
	minProbeLog = 8 << 10
)

// probeLog is a slog.Handler that keeps a probe's log lines for debug=true
// and the history, and forwards them to the exporter's logger at debug level.
type probeLog struct {
	mu   *sync.Mutex
	buf  *capped
	text slog.Handler
	next slog.Handler
}

// newProbeLog keeps up to maxProbeLog bytes of the probe's log, reserved
// from the memory budget (minProbeLog, unreserved, when it is exhausted);
// release gives the reservation back once the probe is done.
func newProbeLog(next slog.Handler) (p *probeLog, release func()) {
	limit, release := maxProbeLog, func() { prober.Budget().Release(maxProbeLog) }
	if prober.Budget().Reserve(maxProbeLog) != nil {
		limit, release = minProbeLog, func() {}
	}
	buf := &capped{limit: limit}
	return &probeLog{
		mu:   &sync.Mutex{},
		buf:  buf,
		text: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		next: next,
	}, release
}

func (p *probeLog) Enabled(context.Context, slog.Level) bool { return true }

func (p *probeLog) Handle(ctx context.Context, r slog.Record) error {
	p.mu.Lock()
	_ = p.text.Handle(ctx, r)
	p.mu.Unlock()
	r.Level = slog.LevelDebug
	if p.next.Enabled(ctx, r.Level) {
		return p.next.Handle(ctx, r)
	}
	return nil
}

func (p *probeLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &probeLog{mu: p.mu, buf: p.buf, text: p.text.WithAttrs(attrs), next: p.next.WithAttrs(attrs)}
}

func (p *probeLog) WithGroup(name string) slog.Handler {
	return &probeLog{mu: p.mu, buf: p.buf, text: p.text.WithGroup(name), next: p.next.WithGroup(name)}
}

func (p *probeLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// capped keeps the first and the last limit/2 bytes written and drops the
// middle: the beginning says what the probe set out to do, the end why it
// failed (2,000 junk DNS answers must not push out the final error line).
type capped struct {
	limit   int
	head    []byte
	tail    []byte // the last bytes written after head filled; may hold up to 2× limit/2
	dropped int
}

func (c *capped) Write(b []byte) (int, error) {
	half := c.limit / 2
	n := len(b)
	if room := half - len(c.head); room > 0 {
		k := min(room, len(b))
		c.head = append(c.head, b[:k]...)
		b = b[k:]
	}
	c.tail = append(c.tail, b...)
	if len(c.tail) > 2*half {
		cut := len(c.tail) - half
		c.dropped += cut
		c.tail = c.tail[:copy(c.tail, c.tail[cut:])]
	}
	return n, nil
}

// String is the head, a line saying how much was dropped, and the tail
// from its first whole line.
func (c *capped) String() string {
	half := c.limit / 2
	tail, dropped := c.tail, c.dropped
	if len(tail) > half {
		dropped += len(tail) - half
		tail = tail[len(tail)-half:]
	}
	if dropped == 0 {
		return string(c.head) + string(tail)
	}
	for i, ch := range tail {
		if ch == '\n' {
			dropped += i + 1
			tail = tail[i+1:]
			break
		}
	}
	return fmt.Sprintf("%s… %d bytes of log dropped here …\n%s", c.head, dropped, tail)
}
