package config

import pconfig "github.com/prometheus/common/config"

// GRPCProbe is blackbox_exporter's grpc prober schema: a gRPC health check
// (grpc.health.v1.Health/Check) of Service, over TLS when TLS is set.
type GRPCProbe struct {
	// Service is the service name sent in the health check request; empty
	// asks about the server as a whole.
	Service string `yaml:"service,omitempty"`
	// TLS connects with TLS; TLSConfig is used only then.
	TLS       bool              `yaml:"tls,omitempty"`
	TLSConfig pconfig.TLSConfig `yaml:"tls_config,omitempty"`
	IPOptions `yaml:",inline"`
}

// DefaultGRPCProbe returns the grpc defaults (blackbox's).
func DefaultGRPCProbe() GRPCProbe { return GRPCProbe{IPOptions: DefaultIPOptions()} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *GRPCProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultGRPCProbe()
	type grpcProbe GRPCProbe
	if err := unmarshal((*grpcProbe)(s)); err != nil {
		return err
	}
	if err := s.noSource("grpc"); err != nil {
		return err
	}
	return s.check()
}
