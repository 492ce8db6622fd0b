package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/isp-checker/isp-checker/prober"
)

// maxProbeLog bounds the log kept per probe, whatever a target sends back;
// minProbeLog is what a probe keeps when the memory budget cannot spare more.
const (
	maxProbeLog = 64 << 10
	minProbeLog = 8 << 10
)

// maxLazyRecords is how many log records a probe keeps unformatted: an
// ordinary probe logs five to ten. Past it the records are formatted as
// they come, into the capped text (a flood of lines keeps its head and its
// tail, as capped does).
const maxLazyRecords = 64

// probeLog is a slog.Handler that keeps a probe's log for debug=true and
// the history, and forwards its records to the exporter's logger at debug
// level. It keeps the records, not their text: formatting costs more than
// many a probe, and most probes' logs are never looked at, so String
// formats them when asked (and a flood is formatted as it comes).
type probeLog struct {
	log  *recordLog
	node *logNode // the WithAttrs/WithGroup chain of this handler
}

// recordLog is the log of one probe, shared by its derived handlers. It
// is one allocation with its root handler, the probe's own attrs and room
// for its first records: thousands of probes wait with one each.
type recordLog struct {
	mu      sync.Mutex
	limit   int32
	entries []logEntry
	// Once a flood made it eager, or while String formats: the text so
	// far.
	text *textLog
	// next prints the records elsewhere: the probe logger (--log.prober)
	// at their own level, gated by stepLevel (ownLevel), or else the
	// exporter's logger at debug level; nil when it would print nothing.
	// Its handlers by chain are derived when a record first goes through
	// them: most probes forward none.
	next     slog.Handler
	nexts    map[*logNode]slog.Handler
	ownLevel bool
	// root is the handler newProbeLog returns; base, the chain of the
	// probe's own attrs (module, target), where a logger.With would cost
	// three allocations more.
	root      probeLog
	base      logNode
	baseAttrs [2]slog.Attr
	first     [4]logEntry // a probe logs about 6 lines, 3 of them before it waits
}

// logEntry is one record, kept as its parts: a slog.Record holds room for
// five attrs inline (288 bytes), most of it unused by most lines and all
// of it live while the probe waits. 64 bytes: the time as Unix
// nanoseconds (0: none), and no source position (the text is written
// without one; the forwarded records keep theirs).
type logEntry struct {
	node  *logNode
	time  int64
	msg   string
	level slog.Level
	attrs []slog.Attr
}

// keep appends r to the lazy entries; l.mu is held. It and flood are
// frames of their own, so that Handle's stays small: a probe logs from deep
// in its prober, and a few hundred bytes more there took the waiting
// probe's goroutine past its 8 kB stack.
//
//go:noinline
func (l *recordLog) keep(node *logNode, r *slog.Record) {
	e := logEntry{node: node, msg: r.Message, level: r.Level}
	if !r.Time.IsZero() {
		e.time = r.Time.UnixNano()
	}
	if n := r.NumAttrs(); n > 0 {
		e.attrs = make([]slog.Attr, 0, n)
		r.Attrs(func(a slog.Attr) bool {
			e.attrs = append(e.attrs, a)
			return true
		})
	}
	l.entries = append(l.entries, e)
}

// flood turns the lazy entries into text, then writes r; l.mu is held.
//
//go:noinline
func (l *recordLog) flood(ctx context.Context, node *logNode, r *slog.Record) {
	l.text = newTextLog(l.limit)
	for i := range l.entries {
		e := &l.entries[i]
		_ = l.handlerOf(e.node).Handle(ctx, e.record())
	}
	l.entries = nil
	_ = l.handlerOf(node).Handle(ctx, *r)
}

func (e *logEntry) record() slog.Record {
	var t time.Time
	if e.time != 0 {
		t = time.Unix(0, e.time)
	}
	r := slog.NewRecord(t, e.level, e.msg, 0)
	r.AddAttrs(e.attrs...)
	return r
}

// logNode is one WithAttrs (attrs) or WithGroup (group) step.
type logNode struct {
	parent *logNode
	attrs  []slog.Attr
	group  string
}

// newProbeLog keeps up to maxProbeLog bytes of the probe's log, reserved
// from the memory budget (minProbeLog, unreserved, when it is exhausted);
// release gives the reservation back once the probe is done. Its records
// are printed on probeLogger at their own level (stepLevel) when that is
// set, else on exporter at debug level. attrs head every record, as
// slog.Logger.With's would.
func newProbeLog(exporter, probeLogger slog.Handler, attrs ...slog.Attr) (p *probeLog, release func()) {
	limit, release := maxProbeLog, func() { prober.Budget().Release(maxProbeLog) }
	if !prober.Budget().TryReserve(maxProbeLog) {
		limit, release = minProbeLog, func() {}
	}
	l := &recordLog{limit: int32(limit)}
	l.entries = l.first[:0]
	l.root.log = l
	if len(attrs) > 0 {
		l.base.attrs = append(l.baseAttrs[:0], attrs...)
		l.root.node = &l.base
	}
	switch {
	case probeLogger != nil:
		if probeLogger.Enabled(context.Background(), slog.LevelError) {
			l.next, l.ownLevel = probeLogger, true
		}
	case exporter.Enabled(context.Background(), slog.LevelDebug):
		l.next = exporter
	}
	return &l.root, release
}

func (p *probeLog) Enabled(context.Context, slog.Level) bool { return true }

func (p *probeLog) Handle(ctx context.Context, r slog.Record) error {
	l := p.log
	var next slog.Handler
	l.mu.Lock()
	switch {
	case l.text != nil:
		_ = l.handlerOf(p.node).Handle(ctx, r)
	case len(l.entries) < maxLazyRecords:
		l.keep(p.node, &r)
	default:
		l.flood(ctx, p.node, &r)
	}
	if l.next != nil {
		level := slog.LevelDebug
		if l.ownLevel {
			level = stepLevel(r.Level)
		}
		if l.next.Enabled(ctx, level) {
			next = derive(&l.nexts, p.node, l.next)
		}
	}
	l.mu.Unlock()
	if next == nil {
		return nil
	}
	if !l.ownLevel {
		r.Level = slog.LevelDebug
	}
	return next.Handle(ctx, r)
}

func (p *probeLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &probeLog{log: p.log, node: &logNode{parent: p.node, attrs: attrs}}
}

func (p *probeLog) WithGroup(name string) slog.Handler {
	return &probeLog{log: p.log, node: &logNode{parent: p.node, group: name}}
}

// String formats the log as slog's text handler writes it, cut as capped
// cuts it.
func (p *probeLog) String() string {
	l := p.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.text != nil {
		return l.text.String()
	}
	l.text = newTextLog(l.limit)
	for i := range l.entries {
		e := &l.entries[i]
		_ = l.handlerOf(e.node).Handle(context.Background(), e.record())
	}
	s := l.text.String()
	l.text = nil // stay lazy: more records may come
	return s
}

// handlerOf is the text handler, writing to l.text, of a WithAttrs and
// WithGroup chain (l.mu held).
func (l *recordLog) handlerOf(n *logNode) slog.Handler {
	return derive(&l.text.handlers, n, l.text.root)
}

// textLog is a log formatted: its text, and its text handlers by chain.
type textLog struct {
	capped
	root     slog.Handler
	handlers map[*logNode]slog.Handler
}

func newTextLog(limit int32) *textLog {
	t := &textLog{capped: capped{limit: int(limit)}}
	t.root = slog.NewTextHandler(&t.capped, &slog.HandlerOptions{Level: slog.LevelDebug})
	return t
}

// derive is root with the WithAttrs and WithGroup steps of chain n, each
// derived once and kept in m.
func derive(m *map[*logNode]slog.Handler, n *logNode, root slog.Handler) slog.Handler {
	if n == nil {
		return root
	}
	if h, ok := (*m)[n]; ok {
		return h
	}
	h := derive(m, n.parent, root)
	if n.attrs != nil {
		h = h.WithAttrs(n.attrs)
	} else {
		h = h.WithGroup(n.group)
	}
	if *m == nil {
		*m = map[*logNode]slog.Handler{}
	}
	(*m)[n] = h
	return h
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
