package config

import (
	"errors"
	"fmt"
	"net"
)

// ICMPProbe is blackbox_exporter's icmp prober schema; isp-checker's
// multi-packet options are added by the icmp prober's issue.
type ICMPProbe struct {
	IPProtocol         string `yaml:"preferred_ip_protocol,omitempty"` // Defaults to "ip6".
	IPProtocolFallback bool   `yaml:"ip_protocol_fallback,omitempty"`
	SourceIPAddress    string `yaml:"source_ip_address,omitempty"`
	PayloadSize        int    `yaml:"payload_size,omitempty"`
	DontFragment       bool   `yaml:"dont_fragment,omitempty"`
	TTL                int    `yaml:"ttl,omitempty"`
}

// DefaultICMPTTL is the IP TTL of echo requests when none is configured.
const DefaultICMPTTL = 64

// DefaultICMPProbe returns the icmp defaults (blackbox's).
func DefaultICMPProbe() ICMPProbe { return ICMPProbe{IPProtocolFallback: true, TTL: DefaultICMPTTL} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ICMPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultICMPProbe()
	type icmpProbe ICMPProbe
	if err := unmarshal((*icmpProbe)(s)); err != nil {
		return err
	}
	if s.TTL < 0 {
		return errors.New(`"ttl" cannot be negative`)
	}
	if s.TTL > 255 {
		return errors.New(`"ttl" cannot exceed 255`)
	}
	if s.PayloadSize < 0 || s.PayloadSize > 65500 {
		return fmt.Errorf("payload_size %d is out of range 0-65500", s.PayloadSize)
	}
	if s.SourceIPAddress != "" && net.ParseIP(s.SourceIPAddress) == nil {
		return fmt.Errorf("source_ip_address %q is not an IP address", s.SourceIPAddress)
	}
	return validIPProtocol(s.IPProtocol)
}
