package config

import pconfig "github.com/prometheus/common/config"

// GRPCProbe is blackbox_exporter's grpc prober schema. isp-checker accepts it
// so that a blackbox.yml loads unchanged.
type GRPCProbe struct {
	Service             string            `yaml:"service,omitempty"`
	TLS                 bool              `yaml:"tls,omitempty"`
	TLSConfig           pconfig.TLSConfig `yaml:"tls_config,omitempty"`
	IPProtocolFallback  bool              `yaml:"ip_protocol_fallback,omitempty"`
	PreferredIPProtocol string            `yaml:"preferred_ip_protocol,omitempty"`
}

// DefaultGRPCProbe returns the grpc defaults (blackbox's).
func DefaultGRPCProbe() GRPCProbe { return GRPCProbe{IPProtocolFallback: true} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *GRPCProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultGRPCProbe()
	type grpcProbe GRPCProbe
	if err := unmarshal((*grpcProbe)(s)); err != nil {
		return err
	}
	return validIPProtocol(s.PreferredIPProtocol)
}
