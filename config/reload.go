package config

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

//go:embed default.yml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration file.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default parses the embedded default configuration.
func Default() (*Config, error) { return Load(defaultYAML, "") }

// Holder holds the live configuration and swaps it on reload. A reload that
// fails keeps the old configuration; the two gauges say which happened.
type Holder struct {
	mu   sync.RWMutex
	c    *Config
	path string // "" means the embedded default

	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

// NewHolder returns a Holder for path ("" for the embedded default) and
// registers its gauges with reg (which may be nil).
func NewHolder(path string, reg prometheus.Registerer) *Holder {
	h := &Holder{
		path: path,
		c:    &Config{Modules: map[string]Module{}, TargetPolicy: DefaultTargetPolicy()},
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "isp_checker_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful (1) or not (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "isp_checker_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	if reg != nil {
		reg.MustRegister(h.reloadOK, h.reloadTime)
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
	h.reloadTime.SetToCurrentTime()
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
