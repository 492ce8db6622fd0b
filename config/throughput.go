package config

import pconfig "github.com/prometheus/common/config"

// ThroughputProbe holds the throughput prober's options (filled in by its issue).
type ThroughputProbe struct {
	// HTTPClientConfig is the client for the transfer (TLS, auth).
	HTTPClientConfig pconfig.HTTPClientConfig `yaml:"http_client_config,inline"`
}

// DefaultThroughputProbe returns the throughput defaults.
func DefaultThroughputProbe() ThroughputProbe {
	return ThroughputProbe{HTTPClientConfig: pconfig.DefaultHTTPClientConfig}
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ThroughputProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultThroughputProbe()
	type throughputProbe ThroughputProbe
	return unmarshal((*throughputProbe)(s))
}
