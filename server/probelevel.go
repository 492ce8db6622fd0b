package server

import "log/slog"

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
