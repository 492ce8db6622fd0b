package config

import (
	_ "embed"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

//go:embed default.yml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration file.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default parses the embedded default configuration.
func Default() (*Config, error) { return Load(defaultYAML, "") }

// Holder holds the live configuration and swaps it on reload. A reload that
// fails keeps the old configuration; the gauges say which happened. Each
// gauge exists under isp-checker's name and under blackbox_exporter's, so
// alerts written for blackbox (BlackboxConfigurationReloadFailure) work
// unchanged; the two always hold the same value.
type Holder struct {
	mu   sync.RWMutex
	c    *Config
	path string // "" means the embedded default

	reloadOK   gaugePair
	reloadTime gaugePair
}

// gaugePair sets one value under two names.
type gaugePair [2]prometheus.Gauge

func newGaugePair(suffix, help string) gaugePair {
	var p gaugePair
	for i, prefix := range []string{"isp_checker", "blackbox_exporter"} {
		p[i] = prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + suffix, Help: help})
	}
	return p
}

func (p gaugePair) Set(v float64) {
	for _, g := range p {
		g.Set(v)
	}
}

// NewHolder returns a Holder for path ("" for the embedded default) and
// registers its gauges with reg (which may be nil).
func NewHolder(path string, reg prometheus.Registerer) *Holder {
	h := &Holder{
		path: path,
		c:    &Config{Modules: map[string]*Module{}, TargetPolicy: DefaultTargetPolicy()},
		reloadOK: newGaugePair("_config_last_reload_successful",
			"Whether the last configuration reload attempt was successful (1) or not (0)."),
		reloadTime: newGaugePair("_config_last_reload_success_timestamp_seconds",
			"Timestamp of the last successful configuration reload."),
	}
	if reg != nil {
		reg.MustRegister(h.reloadOK[0], h.reloadOK[1], h.reloadTime[0], h.reloadTime[1])
	}
	return h
}

// Path is the file the config comes from, "" for the embedded default.
func (h *Holder) Path() string { return h.path }

// Reload reads the config again. On error the old config stays in force.
func (h *Holder) Reload() error {
	var (
		c   *Config
		err error
	)
	if h.path == "" {
		c, err = Default()
		if err != nil {
			err = fmt.Errorf("embedded default config: %w", err)
		}
	} else {
		c, err = LoadFile(h.path)
	}
	if err != nil {
		h.reloadOK.Set(0)
		return err
	}
	h.mu.Lock()
	h.c = c
	h.mu.Unlock()
	h.reloadOK.Set(1)
	h.reloadTime.Set(float64(time.Now().UnixNano()) / 1e9)
	return nil
}

// Get returns the config in force. Callers must not modify it.
func (h *Holder) Get() *Config {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.c
}

// Set installs c directly (tests, and the run/check commands).
func (h *Holder) Set(c *Config) {
	h.mu.Lock()
	h.c = c
	h.mu.Unlock()
}
