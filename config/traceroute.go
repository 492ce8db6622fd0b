package config

import (
	"errors"
	"fmt"
	"time"
)

// TracerouteProbe holds the traceroute prober's options. A trace sends
// PacketsPerHop probes for every TTL from FirstHop to MaxHops at once
// (Paris-traceroute style: every probe of one trace belongs to the same
// flow), then waits at most HopTimeout for the answers.
type TracerouteProbe struct {
	IPOptions `yaml:",inline"`

	// Protocol is the probe packet: icmp (echo requests, the default),
	// udp (datagrams to Port, answered by port-unreachable) or tcp (SYNs
	// to Port, answered by SYN-ACK or RST), for paths that filter the
	// others.
	Protocol string `yaml:"protocol,omitempty"`
	// Port is the destination port of udp and tcp probes; default 33434
	// (traceroute's base port) for udp, 80 for tcp. Not used with icmp.
	Port int `yaml:"port,omitempty"`
	// FirstHop is the first TTL probed (default 1).
	FirstHop int `yaml:"first_hop,omitempty"`
	// MaxHops is the last TTL probed (default 30).
	MaxHops int `yaml:"max_hops,omitempty"`
	// PacketsPerHop is the number of probes per TTL (default 3), which
	// sets the resolution of the per-hop loss ratio.
	PacketsPerHop int `yaml:"packets_per_hop,omitempty"`
	// HopTimeout is how long to wait for the answers after the last probe
	// was sent (default 3s). A trace takes about this long when a hop is
	// silent or the destination does not answer, and about one round trip
	// otherwise. It is shortened to fit the probe's timeout.
	HopTimeout time.Duration `yaml:"hop_timeout,omitempty"`
	// DropAddressLabel leaves the address label off the per-hop metrics
	// (they keep only hop), for setups that must keep cardinality low.
	DropAddressLabel bool `yaml:"drop_address_label,omitempty"`
}

// Traceroute option values and limits.
const (
	TracerouteProtocolICMP   = "icmp"
	TracerouteProtocolUDP    = "udp"
	TracerouteProtocolTCP    = "tcp"
	DefaultTracerouteUDPPort = 33434
	DefaultTracerouteTCPPort = 80
	DefaultTracerouteMaxHops = 30
	DefaultTraceroutePackets = 3
	TracerouteMaxTTL         = 255
	TracerouteMaxPackets     = 10
	DefaultTracerouteTimeout = 3 * time.Second
	TracerouteMinHopTimeout  = 10 * time.Millisecond
)

// DefaultTracerouteProbe returns the traceroute defaults.
func DefaultTracerouteProbe() TracerouteProbe {
	return TracerouteProbe{
		IPOptions:     DefaultIPOptions(),
		Protocol:      TracerouteProtocolICMP,
		FirstHop:      1,
		MaxHops:       DefaultTracerouteMaxHops,
		PacketsPerHop: DefaultTraceroutePackets,
		HopTimeout:    DefaultTracerouteTimeout,
	}
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *TracerouteProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultTracerouteProbe()
	type tracerouteProbe TracerouteProbe
	if err := unmarshal((*tracerouteProbe)(s)); err != nil {
		return err
	}
	switch s.Protocol {
	case TracerouteProtocolUDP:
		if s.Port == 0 {
			s.Port = DefaultTracerouteUDPPort
		}
	case TracerouteProtocolTCP:
		if s.Port == 0 {
			s.Port = DefaultTracerouteTCPPort
		}
	}
	return s.Validate()
}

// Validate checks the options; UnmarshalYAML calls it.
func (s *TracerouteProbe) Validate() error {
	switch s.Protocol {
	case TracerouteProtocolICMP:
		if s.Port != 0 {
			return errors.New("port is only used with protocol udp or tcp")
		}
	case TracerouteProtocolUDP, TracerouteProtocolTCP:
		if s.Port < 1 || s.Port > 65535 {
			return fmt.Errorf("port %d is out of range 1-65535", s.Port)
		}
	default:
		return fmt.Errorf("protocol %q is not valid (icmp, udp or tcp)", s.Protocol)
	}
	if s.FirstHop < 1 || s.FirstHop > TracerouteMaxTTL {
		return fmt.Errorf("first_hop %d is out of range 1-%d", s.FirstHop, TracerouteMaxTTL)
	}
	if s.MaxHops < 1 || s.MaxHops > TracerouteMaxTTL {
		return fmt.Errorf("max_hops %d is out of range 1-%d", s.MaxHops, TracerouteMaxTTL)
	}
	if s.FirstHop > s.MaxHops {
		return fmt.Errorf("first_hop %d is above max_hops %d", s.FirstHop, s.MaxHops)
	}
	if s.PacketsPerHop < 1 || s.PacketsPerHop > TracerouteMaxPackets {
		return fmt.Errorf("packets_per_hop %d is out of range 1-%d", s.PacketsPerHop, TracerouteMaxPackets)
	}
	if s.HopTimeout < TracerouteMinHopTimeout {
		return fmt.Errorf("hop_timeout %s is below the minimum of %s", s.HopTimeout, TracerouteMinHopTimeout)
	}
	return s.check()
}
