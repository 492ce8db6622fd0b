package config

import (
	"fmt"
	"time"

	pconfig "github.com/prometheus/common/config"
)

// ResponsivenessProbe holds the responsiveness prober's options: the IETF
// test "Responsiveness under Working Conditions"
// (draft-ietf-ippm-responsiveness-09) against the configuration document
// the target URL names. The draft's parameters keep its defaults, except
// where a scrape-driven probe needs a time bound the draft leaves to the
// implementation (stage_timeout).
type ResponsivenessProbe struct {
	// Direction is download, upload, both (the default: download, then
	// upload, one figure each and an overall one; the draft's sequential
	// mode) or parallel (both at once, the draft's concurrent mode, whose
	// overall figure is the one that counts).
	Direction string `yaml:"direction,omitempty"`
	// StageTimeout bounds one direction (ramp-up and responsiveness); a
	// stage that is not stable by then reports what it has with the
	// confidence it earned. Default 60s; the probe's timeout shortens it.
	StageTimeout time.Duration `yaml:"stage_timeout,omitempty"`
	// IntervalDuration is the draft's ID: how often goodput and
	// responsiveness are re-evaluated and a connection is added. Default 5s
	// (draft 09; drafts 02–08 and goresponsiveness use 1s).
	IntervalDuration time.Duration `yaml:"interval_duration,omitempty"`
	// MovingAverageDistance is MAD: the intervals in a moving average and in
	// a stability window. Default 4.
	MovingAverageDistance int `yaml:"moving_average_distance,omitempty"`
	// TrimmedMeanPercent is TMP: the share of samples kept, the slowest
	// dropped. Default 95.
	TrimmedMeanPercent float64 `yaml:"trimmed_mean_percent,omitempty"`
	// StdDevTolerancePercent is SDT. Default 5.
	StdDevTolerancePercent float64 `yaml:"stddev_tolerance_percent,omitempty"`
	// InitialConnections (INP, default 1), ConnectionsIncrement (INC, added
	// each interval, default 1) and MaxConnections (MNP, default 16) shape
	// the load-generating connections of one direction.
	InitialConnections   int `yaml:"initial_connections,omitempty"`
	ConnectionsIncrement int `yaml:"connections_increment,omitempty"`
	MaxConnections       int `yaml:"max_connections,omitempty"`
	// MaxProbesPerSecond is MPS: probe pairs (one foreign, one self)
	// launched per second at most. Default 100.
	MaxProbesPerSecond int `yaml:"max_probes_per_second,omitempty"`
	// ProbeCapacityPercent is PTC: the share of the measured goodput the
	// probes may use. Default 5.
	ProbeCapacityPercent float64 `yaml:"probe_capacity_percent,omitempty"`
	// IdleProbes is the number of foreign probes before any load, for the
	// idle round trip the report's bufferbloat letter is measured from.
	// Default 5.
	IdleProbes int `yaml:"idle_probes,omitempty"`

	// IPOptions: source_ip_address binds every connection of the probe.
	IPOptions `yaml:",inline"`
	// CongestionControl sets TCP_CONGESTION on the probe's connections
	// (Linux), as for the throughput prober: it matters for the upload,
	// where the probe is the sender.
	CongestionControl string `yaml:"congestion_control,omitempty"`
	// TLSConfig is for the configuration document and every test
	// connection.
	TLSConfig pconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// Responsiveness option values and limits.
const (
	ResponsivenessBoth                 = "both"
	ResponsivenessParallel             = "parallel"
	DefaultResponsivenessStageTimeout  = 60 * time.Second
	DefaultResponsivenessInterval      = 5 * time.Second
	DefaultResponsivenessIdleProbes    = 5
	ResponsivenessMaxConnections       = 64
	ResponsivenessMaxProbesPerSecond   = 1000
	ResponsivenessMaxStageTimeout      = 10 * time.Minute
	ResponsivenessMinInterval          = 100 * time.Millisecond
	ResponsivenessMaxIdleProbes        = 100
	ResponsivenessMaxMovingAverageDist = 100
)

// DefaultResponsivenessProbe returns the draft's defaults.
func DefaultResponsivenessProbe() ResponsivenessProbe {
	return ResponsivenessProbe{
		Direction:              ResponsivenessBoth,
		StageTimeout:           DefaultResponsivenessStageTimeout,
		IntervalDuration:       DefaultResponsivenessInterval,
		MovingAverageDistance:  4,
		TrimmedMeanPercent:     95,
		StdDevTolerancePercent: 5,
		InitialConnections:     1,
		ConnectionsIncrement:   1,
		MaxConnections:         16,
		MaxProbesPerSecond:     100,
		ProbeCapacityPercent:   5,
		IdleProbes:             DefaultResponsivenessIdleProbes,
		IPOptions:              DefaultIPOptions(),
	}
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ResponsivenessProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultResponsivenessProbe()
	type responsivenessProbe ResponsivenessProbe
	if err := unmarshal((*responsivenessProbe)(s)); err != nil {
		return err
	}
	if err := s.TLSConfig.Validate(); err != nil {
		return err
	}
	return s.Validate()
}

// Directions lists the stages Direction runs, in order.
func (s *ResponsivenessProbe) Directions() []string {
	if s.Direction == ResponsivenessBoth || s.Direction == ResponsivenessParallel {
		return []string{ThroughputDownload, ThroughputUpload}
	}
	return []string{s.Direction}
}

// Validate checks the options; UnmarshalYAML calls it, and the prober calls
// it for modules built in code.
func (s *ResponsivenessProbe) Validate() error {
	switch s.Direction {
	case ThroughputDownload, ThroughputUpload, ResponsivenessBoth, ResponsivenessParallel:
	default:
		return fmt.Errorf("direction %q is not valid (download, upload, both or parallel)", s.Direction)
	}
	percent := func(name string, v float64, zeroOK bool) error {
		if !(v > 0 && v <= 100) && !(zeroOK && v == 0) {
			return fmt.Errorf("%s %g is out of range (above 0, at most 100)", name, v)
		}
		return nil
	}
	switch {
	case s.StageTimeout <= 0 || s.StageTimeout > ResponsivenessMaxStageTimeout:
		return fmt.Errorf("stage_timeout %s is out of range (above 0, at most %s)", s.StageTimeout, ResponsivenessMaxStageTimeout)
	case s.IntervalDuration < ResponsivenessMinInterval:
		return fmt.Errorf("interval_duration %s is below the minimum of %s", s.IntervalDuration, ResponsivenessMinInterval)
	case s.IntervalDuration >= s.StageTimeout:
		return fmt.Errorf("interval_duration %s must be shorter than stage_timeout %s", s.IntervalDuration, s.StageTimeout)
	case s.MovingAverageDistance < 1 || s.MovingAverageDistance > ResponsivenessMaxMovingAverageDist:
		return fmt.Errorf("moving_average_distance %d is out of range 1-%d", s.MovingAverageDistance, ResponsivenessMaxMovingAverageDist)
	case s.InitialConnections < 1 || s.InitialConnections > ResponsivenessMaxConnections:
		return fmt.Errorf("initial_connections %d is out of range 1-%d", s.InitialConnections, ResponsivenessMaxConnections)
	case s.ConnectionsIncrement < 0 || s.ConnectionsIncrement > ResponsivenessMaxConnections:
		return fmt.Errorf("connections_increment %d is out of range 0-%d", s.ConnectionsIncrement, ResponsivenessMaxConnections)
	case s.MaxConnections < s.InitialConnections || s.MaxConnections > ResponsivenessMaxConnections:
		return fmt.Errorf("max_connections %d is out of range %d (initial_connections)-%d", s.MaxConnections, s.InitialConnections, ResponsivenessMaxConnections)
	case s.MaxProbesPerSecond < 1 || s.MaxProbesPerSecond > ResponsivenessMaxProbesPerSecond:
		return fmt.Errorf("max_probes_per_second %d is out of range 1-%d", s.MaxProbesPerSecond, ResponsivenessMaxProbesPerSecond)
	case s.IdleProbes < 0 || s.IdleProbes > ResponsivenessMaxIdleProbes:
		return fmt.Errorf("idle_probes %d is out of range 0-%d", s.IdleProbes, ResponsivenessMaxIdleProbes)
	}
	if err := percent("trimmed_mean_percent", s.TrimmedMeanPercent, false); err != nil {
		return err
	}
	if s.StdDevTolerancePercent <= 0 || s.StdDevTolerancePercent >= 100 {
		return fmt.Errorf("stddev_tolerance_percent %g is out of range (above 0, below 100)", s.StdDevTolerancePercent)
	}
	if err := percent("probe_capacity_percent", s.ProbeCapacityPercent, false); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	if !validCongestionControl(s.CongestionControl) {
		return fmt.Errorf("congestion_control %q is not a congestion control name (like cubic or bbr)", s.CongestionControl)
	}
	return nil
}
