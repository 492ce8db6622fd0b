package rpm

import (
	"fmt"
	"time"
)

// Confidence is the draft's confidence in a figure (§ Confidence of
// Test-Results).
type Confidence int

const (
	// ConfidenceNone: no figure at all.
	ConfidenceNone Confidence = iota
	// ConfidenceLow: fewer than MAD intervals of the stage ran, so the
	// moving window was never full.
	ConfidenceLow
	// ConfidenceMedium: MAD intervals or more ran, but the figure never
	// passed the stability rule.
	ConfidenceMedium
	// ConfidenceHigh: the figure is stable.
	ConfidenceHigh
)

func (c Confidence) String() string {
	switch c {
	case ConfidenceLow:
		return "low"
	case ConfidenceMedium:
		return "medium"
	case ConfidenceHigh:
		return "high"
	}
	return "none"
}

// Stage runs the draft's algorithm (§ Final Algorithm) for one stage: a
// download, an upload, or both at once. The prober starts INP
// load-generating connections, and at the end of every interval of ID it
// calls End with what the interval moved and measured; the Status says how
// many connections to run next, whether goodput has saturated (the draft
// has probing start there at the latest) and whether the responsiveness
// is stable (the stage is over). Result gives the current figures and
// their confidence at any time, for a stage cut short by its time limit.
//
// A Stage is not safe for concurrent use.
type Stage struct {
	p         Params
	tls       bool
	bytes     []int64   // per interval
	goodput   []float64 // moving average at each interval from MAD−1 on
	probes    []Probes  // per interval
	resp      []float64 // RPM at each interval from saturation on
	saturated int       // interval goodput saturated at, −1 before
	last      *Components
	done      bool
}

// NewStage starts a stage; tls says the probes use TLS.
func NewStage(p Params, tls bool) (*Stage, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Stage{p: p, tls: tls, saturated: -1}, nil
}

// Interval is what one interval moved and measured.
type Interval struct {
	// Bytes is the payload all load-generating connections moved during
	// the interval (goodput bytes; headers and retransmissions excluded).
	Bytes int64
	// Foreign and Self are the probes that completed during the interval.
	Foreign []Foreign
	Self    []time.Duration
}

// Status is the state after an interval.
type Status struct {
	Interval    int // index i of the interval that ended, from 0
	Connections int // load-generating connections to run from now on
	// Goodput is the moving-average goodput at i in bytes per second;
	// 0 until MAD intervals have ended.
	Goodput float64
	// Saturated: goodput has passed the stability rule (now or before).
	Saturated bool
	// RPM is the responsiveness at i, over the probes of the last MAD
	// intervals; 0 before saturation or without probes of both kinds.
	RPM float64
	// Done: the responsiveness is stable; Result is the final figure.
	Done bool
}

// ErrDone is End's error once the stage is over.
var ErrDone = fmt.Errorf("the stage is over: its responsiveness is stable")

// Connections is how many load-generating connections the stage wants
// now: INP at the start, INC more after each interval, at most MNP.
func (s *Stage) Connections() int {
	return min(s.p.INP+s.p.INC*len(s.bytes), s.p.MNP)
}

// End records the interval that just ended and applies the step list.
func (s *Stage) End(iv Interval) (Status, error) {
	if s.done {
		return Status{}, ErrDone
	}
	if iv.Bytes < 0 {
		return Status{}, fmt.Errorf("interval bytes %d: want 0 or more", iv.Bytes)
	}
	i := len(s.bytes)
	s.bytes = append(s.bytes, iv.Bytes)
	s.probes = append(s.probes, Probes{Foreign: iv.Foreign, Self: iv.Self, TLS: s.tls})
	st := Status{Interval: i, Connections: s.Connections()}

	if ma, ok := s.movingAverage(i); ok {
		s.goodput = append(s.goodput, ma)
		st.Goodput = ma
		if s.saturated < 0 && len(s.goodput) >= s.p.MAD && Stable(s.goodput[len(s.goodput)-s.p.MAD:], ma, s.p.SDT) {
			s.saturated = i
		}
	}
	if s.saturated < 0 {
		return st, nil
	}
	st.Saturated = true
	c, ok := s.window()
	if !ok {
		return st, nil // no probes of both kinds yet: no responsiveness at i
	}
	s.last = &c
	cur := c.RPM()
	s.resp = append(s.resp, cur)
	st.RPM = cur
	if len(s.resp) >= s.p.MAD && Stable(s.resp[len(s.resp)-s.p.MAD:], cur, s.p.SDT) {
		s.done, st.Done = true, true
	}
	return st, nil
}

// movingAverage is the goodput at interval p: the bytes of intervals
// p−MAD+1 … p over MAD·ID. It does not exist before MAD intervals.
func (s *Stage) movingAverage(p int) (float64, bool) {
	if p+1 < s.p.MAD {
		return 0, false
	}
	var sum int64
	for _, b := range s.bytes[p+1-s.p.MAD : p+1] {
		sum += b
	}
	return float64(sum) / (float64(s.p.MAD) * s.p.ID.Seconds()), true
}

// window aggregates the probes of the last MAD intervals; ok is false
// without probes of both kinds.
func (s *Stage) window() (c Components, ok bool) {
	var all Probes
	all.TLS = s.tls
	for _, p := range s.probes[max(0, len(s.probes)-s.p.MAD):] {
		all.Add(p)
	}
	c, err := Aggregate(all, s.p.TMP)
	return c, err == nil
}

// Result is a stage's figures so far.
type Result struct {
	Intervals int // intervals that ended
	// Goodput is the last moving average in bytes per second (0 before
	// MAD intervals), with its confidence.
	Goodput           float64
	GoodputConfidence Confidence
	// SaturatedAt is the interval goodput saturated at, −1 if it did not.
	SaturatedAt int
	// Components is the last responsiveness's inputs; RPM is 0 and
	// Confidence none when there was none (no probes of both kinds in the
	// window). A stage cut short before saturation still gets a figure from
	// whatever probes the last MAD intervals hold, at low confidence.
	Components Components
	RPM        float64
	Confidence Confidence
}

// Result reports the figures so far: final once Status.Done, else the
// current ones with the confidence they have earned.
func (s *Stage) Result() Result {
	r := Result{Intervals: len(s.bytes), SaturatedAt: s.saturated}
	if n := len(s.goodput); n > 0 {
		r.Goodput = s.goodput[n-1]
		r.GoodputConfidence = ConfidenceMedium
		if s.saturated >= 0 {
			r.GoodputConfidence = ConfidenceHigh
		}
	} else if len(s.bytes) > 0 {
		r.GoodputConfidence = ConfidenceLow
		var sum int64
		for _, b := range s.bytes {
			sum += b
		}
		r.Goodput = float64(sum) / (float64(len(s.bytes)) * s.p.ID.Seconds())
	}
	c := s.last
	if s.saturated < 0 || c == nil {
		// Before saturation the step list computes no responsiveness; a
		// figure from the window is still better than none, at low confidence.
		w, ok := s.window()
		if !ok {
			return r
		}
		c = &w
	}
	r.Components, r.RPM = *c, c.RPM()
	switch {
	case s.done:
		r.Confidence = ConfidenceHigh
	case len(s.resp) >= s.p.MAD:
		r.Confidence = ConfidenceMedium
	default:
		r.Confidence = ConfidenceLow
	}
	return r
}
