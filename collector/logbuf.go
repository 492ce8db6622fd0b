package collector

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// maxProbeLog bounds the log kept per probe, whatever a target sends back.
const maxProbeLog = 64 << 10

// maxProbeRecords bounds the log records kept per probe (formatted, they
// are cut at maxProbeLog bytes as well).
const maxProbeRecords = 1000

// probeLog is a slog.Handler that keeps a probe's log records for
// debug=true and the history, and forwards them to the exporter's logger at
// debug level. It keeps the records, not their text: formatting costs more
// than many a probe, and most probes' logs are never looked at, so String
// formats them on demand.
type probeLog struct {
	log  *recordLog
	node *logNode // the WithAttrs/WithGroup chain of this handler
	next slog.Handler
}

// recordLog is the records of one probe, shared by its derived handlers.
type recordLog struct {
	mu      sync.Mutex
	entries []logEntry
	dropped int
}

type logEntry struct {
	node *logNode
	rec  slog.Record
}

// logNode is one WithAttrs (attrs) or WithGroup (group) step.
type logNode struct {
	parent *logNode
	attrs  []slog.Attr
	group  string
}

func newProbeLog(next slog.Handler) *probeLog {
	if !next.Enabled(context.Background(), slog.LevelDebug) {
		next = nil // deriving it (WithAttrs) for nothing would cost as much as the text
	}
	return &probeLog{log: &recordLog{entries: make([]logEntry, 0, 8)}, next: next} // a probe logs about 6 lines
}

func (p *probeLog) Enabled(context.Context, slog.Level) bool { return true }

func (p *probeLog) Handle(ctx context.Context, r slog.Record) error {
	p.log.mu.Lock()
	if len(p.log.entries) < maxProbeRecords {
		p.log.entries = append(p.log.entries, logEntry{node: p.node, rec: r.Clone()})
	} else {
		p.log.dropped++
	}
	p.log.mu.Unlock()
	if p.next == nil {
		return nil
	}
	r.Level = slog.LevelDebug
	if p.next.Enabled(ctx, r.Level) {
		return p.next.Handle(ctx, r)
	}
	return nil
}

func (p *probeLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	q := &probeLog{log: p.log, node: &logNode{parent: p.node, attrs: attrs}}
	if p.next != nil {
		q.next = p.next.WithAttrs(attrs)
	}
	return q
}

func (p *probeLog) WithGroup(name string) slog.Handler {
	q := &probeLog{log: p.log, node: &logNode{parent: p.node, group: name}}
	if p.next != nil {
		q.next = p.next.WithGroup(name)
	}
	return q
}

// String formats the records as slog's text handler writes them, cut at
// maxProbeLog bytes.
func (p *probeLog) String() string {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	var buf bytes.Buffer
	w := &capped{buf: &buf}
	root := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	handlers := map[*logNode]slog.Handler{}
	var handlerOf func(n *logNode) slog.Handler
	handlerOf = func(n *logNode) slog.Handler {
		if n == nil {
			return root
		}
		if h, ok := handlers[n]; ok {
			return h
		}
		h := handlerOf(n.parent)
		if n.attrs != nil {
			h = h.WithAttrs(n.attrs)
		} else {
			h = h.WithGroup(n.group)
		}
		handlers[n] = h
		return h
	}
	for _, e := range p.log.entries {
		_ = handlerOf(e.node).Handle(context.Background(), e.rec)
	}
	if p.log.dropped > 0 && !w.truncated {
		buf.WriteString("… log truncated\n")
	}
	return buf.String()
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
