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
