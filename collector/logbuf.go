package collector

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// maxProbeLog bounds the log kept per probe, whatever a target sends back.
const maxProbeLog = 64 << 10

// probeLog is a slog.Handler that keeps a probe's log lines for debug=true
// and the history, and forwards them to the exporter's logger at debug level.
type probeLog struct {
	mu   *sync.Mutex
	buf  *bytes.Buffer
	text slog.Handler
	next slog.Handler
}

func newProbeLog(next slog.Handler) *probeLog {
	buf := &bytes.Buffer{}
	return &probeLog{
		mu:   &sync.Mutex{},
		buf:  buf,
		text: slog.NewTextHandler(&capped{buf: buf}, &slog.HandlerOptions{Level: slog.LevelDebug}),
		next: next,
	}
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

// capped writes to buf until it holds maxProbeLog bytes, then drops the rest.
type capped struct {
	buf       *bytes.Buffer
	truncated bool
}

func (c *capped) Write(b []byte) (int, error) {
	room := maxProbeLog - c.buf.Len()
	if room <= 0 {
		if !c.truncated {
			c.truncated = true
			c.buf.WriteString("… log truncated\n")
		}
		return len(b), nil
	}
	if len(b) > room {
		c.buf.Write(b[:room])
		return len(b), nil
	}
	return c.buf.Write(b)
}
