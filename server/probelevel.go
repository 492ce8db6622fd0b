package server

import (
	"context"
	"log/slog"
	"sync"
)

// stepLevel is the level a probe's record is printed at or above on the
// probe logger (--log.prober). isp-checker's probers log each step of a
// probe at info, where blackbox_exporter's log theirs at debug: those
// count as debug, so --log.prober=info (the default) prints what
// blackbox's does, a probe's warnings and errors (a failed probe's
// reason), and --log.prober=debug every line. The line keeps its level.
func stepLevel(l slog.Level) slog.Level {
	if l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

// probeTee hands a probe's records to its own log (debug=true, /logs:
// every record) and to the probe logger, filtered by stepLevel.
type probeTee struct {
	log slog.Handler
	out *lazyHandler
}

func newProbeTee(log, out slog.Handler) slog.Handler {
	if out == nil || !out.Enabled(context.Background(), slog.LevelError) {
		return log
	}
	return &probeTee{log: log, out: &lazyHandler{root: out}}
}

func (t *probeTee) Enabled(ctx context.Context, l slog.Level) bool { return t.log.Enabled(ctx, l) }

func (t *probeTee) Handle(ctx context.Context, r slog.Record) error {
	err := t.log.Handle(ctx, r)
	if t.out.Enabled(ctx, stepLevel(r.Level)) {
		_ = t.out.Handle(ctx, r)
	}
	return err
}

func (t *probeTee) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &probeTee{log: t.log.WithAttrs(attrs), out: &lazyHandler{root: t.out.root, parent: t.out, attrs: attrs}}
}

func (t *probeTee) WithGroup(name string) slog.Handler {
	return &probeTee{log: t.log.WithGroup(name), out: &lazyHandler{root: t.out.root, parent: t.out, group: name}}
}

// lazyHandler derives its handler (root with the attrs and groups of its
// chain) only when a record is printed: most probes print none, and
// deriving a text handler costs about as much as a probe's own log.
type lazyHandler struct {
	root   slog.Handler
	parent *lazyHandler
	attrs  []slog.Attr
	group  string
	once   sync.Once
	h      slog.Handler
}

func (l *lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.root.Enabled(ctx, level)
}

func (l *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.handler().Handle(ctx, r)
}

func (l *lazyHandler) handler() slog.Handler {
	l.once.Do(func() {
		switch {
		case l.parent == nil:
			l.h = l.root
		case l.attrs != nil:
			l.h = l.parent.handler().WithAttrs(l.attrs)
		default:
			l.h = l.parent.handler().WithGroup(l.group)
		}
	})
	return l.h
}

// infoAndAbove is a handler without its debug level: given to the probe
// handler as the exporter's logger when a probe logger is set, so the
// probe's records (which newProbeLog forwards to it at debug level) are
// printed once, by the probe logger, whatever --log.level says.
type infoAndAbove struct{ slog.Handler }

func (h infoAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo && h.Handler.Enabled(ctx, l)
}

func (h infoAndAbove) WithAttrs(attrs []slog.Attr) slog.Handler {
	return infoAndAbove{h.Handler.WithAttrs(attrs)}
}

func (h infoAndAbove) WithGroup(name string) slog.Handler {
	return infoAndAbove{h.Handler.WithGroup(name)}
}
