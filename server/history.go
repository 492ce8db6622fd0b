package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
)

// Probe is one remembered probe, for the landing page and /logs.
type Probe struct {
	ID      int64
	Module  string
	Target  string
	Start   time.Time
	Success bool

	// What debug=true shows, kept raw and rendered only when asked for:
	// most probes are never looked at.
	logs    fmt.Stringer
	metrics prometheus.Gatherer
	module  *config.Module
}

// Debug renders the probe's logs, metrics and module, as debug=true shows them.
func (p *Probe) Debug() string { return DebugOutput(p.logs.String(), p.metrics, *p.module) }

// History keeps the last few probes in a ring.
type History struct {
	mu     sync.Mutex
	limit  int
	nextID int64
	// probes holds up to limit probes; once full, oldest is the index of
	// the oldest (and the next to be replaced): a probe written over
	// costs no copy of the rest.
	probes []*Probe
	oldest int
}

// NewHistory remembers up to limit probes (0 remembers none).
func NewHistory(limit int) *History {
	if limit < 0 {
		limit = 0
	}
	return &History{limit: limit}
}

// Add remembers p, assigns its ID and forgets the oldest past the limit.
func (h *History) Add(p *Probe) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p.ID = h.nextID
	h.nextID++
	if h.limit == 0 {
		return
	}
	if len(h.probes) < h.limit {
		h.probes = append(h.probes, p)
		return
	}
	h.probes[h.oldest] = p
	h.oldest = (h.oldest + 1) % h.limit
}

// List returns the remembered probes, newest first.
func (h *History) List() []*Probe {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.probes)
	out := make([]*Probe, n)
	for i := range out {
		out[i] = h.probes[(h.oldest-1-i+2*n)%n] // the newest is just before the oldest
	}
	return out
}

// Get returns the probe with id, if still remembered.
func (h *History) Get(id int64) (*Probe, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.probes {
		if p.ID == id {
			return p, true
		}
	}
	return nil, false
}
