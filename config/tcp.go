package config

import (
	"errors"
	"fmt"
	"net"

	pconfig "github.com/prometheus/common/config"
)

// TCPProbe is blackbox_exporter's tcp prober schema.
type TCPProbe struct {
	IPProtocol         string            `yaml:"preferred_ip_protocol,omitempty"`
	IPProtocolFallback bool              `yaml:"ip_protocol_fallback,omitempty"`
	SourceIPAddress    string            `yaml:"source_ip_address,omitempty"`
	QueryResponse      []QueryResponse   `yaml:"query_response,omitempty"`
	TLS                bool              `yaml:"tls,omitempty"`
	TLSConfig          pconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// DefaultTCPProbe returns the tcp defaults (blackbox's).
func DefaultTCPProbe() TCPProbe { return TCPProbe{IPProtocolFallback: true} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *TCPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultTCPProbe()
	type tcpProbe TCPProbe
	if err := unmarshal((*tcpProbe)(s)); err != nil {
		return err
	}
	if err := validIPProtocol(s.IPProtocol); err != nil {
		return err
	}
	if s.SourceIPAddress != "" && net.ParseIP(s.SourceIPAddress) == nil {
		return fmt.Errorf("source_ip_address %q is not an IP address", s.SourceIPAddress)
	}
	return nil
}

// QueryResponse is one step of a tcp dialogue: wait for Expect, then Send.
type QueryResponse struct {
	Expect   Regexp  `yaml:"expect,omitempty"`
	Labels   []Label `yaml:"labels,omitempty"`
	Send     string  `yaml:"send,omitempty"`
	StartTLS bool    `yaml:"starttls,omitempty"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *QueryResponse) UnmarshalYAML(unmarshal func(any) error) error {
	type queryResponse QueryResponse
	if err := unmarshal((*queryResponse)(s)); err != nil {
		return err
	}
	if len(s.Labels) > 0 && s.Expect.Regexp == nil {
		return errors.New("query_response labels need an expect regexp")
	}
	return nil
}

// Label names a value taken from an expect regexp's submatches (${1}).
type Label struct {
	Name  string `yaml:"name,omitempty"`
	Value string `yaml:"value,omitempty"`
}
