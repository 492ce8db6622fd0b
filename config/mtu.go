package config

import (
	"fmt"
	"time"
)

// MTUProbe holds the mtu prober's options: path-MTU discovery to the
// target with ICMP echo requests that must not be fragmented.
type MTUProbe struct {
	IPOptions `yaml:",inline"`

	// MinSize is the smallest packet size (IP header included) searched;
	// a target that does not answer it fails the probe. 0 (the default)
	// means 576 for IPv4 and 1280 (the IPv6 minimum MTU) for IPv6.
	MinSize int `yaml:"min_size,omitempty"`
	// MaxSize is the largest packet size probed. 0 (the default) means
	// the MTU of the interface the route to the target leaves by; a
	// larger value is lowered to it.
	MaxSize int `yaml:"max_size,omitempty"`
	// Retries is the number of extra probes of each size (default 2). They
	// are sent together with the first, so they cost no time: a size
	// counts as too big for a path that answers no ICMP error only when
	// all 1+retries probes of it went unanswered.
	Retries int `yaml:"retries"`
	// ReplyTimeout is the longest wait for the answers to one round of
	// probes (default 1s). Once replies arrive, the wait shrinks to a few
	// round-trip times.
	ReplyTimeout time.Duration `yaml:"reply_timeout,omitempty"`
}

// MTU option limits and defaults.
const (
	MTUMinIPv4             = 68   // RFC 791's minimum MTU
	MTUMinIPv6             = 1280 // RFC 8200's minimum MTU
	DefaultMTUMinIPv4      = 576
	MTUMaxSize             = 65535
	DefaultMTURetries      = 2
	MTUMaxRetries          = 10
	DefaultMTUReplyTimeout = time.Second
	MTUMinReplyTimeout     = 10 * time.Millisecond
)

// DefaultMTUProbe returns the mtu defaults.
func DefaultMTUProbe() MTUProbe {
	return MTUProbe{
		IPOptions:    DefaultIPOptions(),
		Retries:      DefaultMTURetries,
		ReplyTimeout: DefaultMTUReplyTimeout,
	}
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *MTUProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultMTUProbe()
	type mtuProbe MTUProbe
	if err := unmarshal((*mtuProbe)(s)); err != nil {
		return err
	}
	return s.Validate()
}

// Validate checks the options; UnmarshalYAML calls it.
func (s *MTUProbe) Validate() error {
	if s.MinSize != 0 && (s.MinSize < MTUMinIPv4 || s.MinSize > MTUMaxSize) {
		return fmt.Errorf("min_size %d is out of range %d-%d", s.MinSize, MTUMinIPv4, MTUMaxSize)
	}
	if s.MaxSize != 0 && (s.MaxSize < MTUMinIPv4 || s.MaxSize > MTUMaxSize) {
		return fmt.Errorf("max_size %d is out of range %d-%d", s.MaxSize, MTUMinIPv4, MTUMaxSize)
	}
	if s.MinSize != 0 && s.MaxSize != 0 && s.MinSize > s.MaxSize {
		return fmt.Errorf("min_size %d is above max_size %d", s.MinSize, s.MaxSize)
	}
	if s.Retries < 0 || s.Retries > MTUMaxRetries {
		return fmt.Errorf("retries %d is out of range 0-%d", s.Retries, MTUMaxRetries)
	}
	if s.ReplyTimeout < MTUMinReplyTimeout {
		return fmt.Errorf("reply_timeout %s is below the minimum of %s", s.ReplyTimeout, MTUMinReplyTimeout)
	}
	return s.check()
}
