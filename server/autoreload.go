package server

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"time"
)

// ConfigWatcher is --config.enable-auto-reload: it polls the config file
// and reloads when its content changed, through the same reload as SIGHUP
// and /-/reload (so the reload metrics move the same way). A file that
// does not load keeps the old config, and is not tried again until its
// content changes once more: the reload gauge stays 0 meanwhile.
type ConfigWatcher struct {
	path string
	last string // the content's hash, or its read error, at the last look
}

// NewConfigWatcher watches path from its content now: call it before the
// first load, so a change made during that load is seen.
func NewConfigWatcher(path string) *ConfigWatcher {
	w := &ConfigWatcher{path: path}
	w.last = w.state()
	return w
}

// state is what the file holds now, as a hash, or why it cannot be read.
func (w *ConfigWatcher) state() string {
	b, err := os.ReadFile(w.path)
	if err != nil {
		return "error: " + err.Error()
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}

// Check reloads if the file changed since the last look and says whether
// it did; err is the reload's.
func (w *ConfigWatcher) Check(reload func() error) (changed bool, err error) {
	s := w.state()
	if s == w.last {
		return false, nil
	}
	w.last = s
	return true, reload()
}

// Run checks every interval until ctx ends, logging each reload.
func (w *ConfigWatcher) Run(ctx context.Context, interval time.Duration, reload func() error, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := w.Check(reload)
		switch {
		case !changed:
		case err != nil:
			logger.Error("config file changed but does not load, keeping the old config", "file", w.path, "err", err)
		default:
			logger.Info("config file changed, reloaded it", "file", w.path)
		}
	}
}
