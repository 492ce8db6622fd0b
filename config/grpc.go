package config

import (
	"fmt"
	"sort"
	"strings"

	pconfig "github.com/prometheus/common/config"
)

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
	// Metadata is sent with the health check (gRPC request headers, such
	// as authorization). Keys are lower-cased at load: gRPC sends only
	// lower-case names, and blackbox_exporter, which keeps them as
	// written, fails every call of a module with a capital in one. A key
	// ending in -bin carries binary values.
	Metadata map[string][]string `yaml:"metadata,omitempty"`
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
	if err := s.normaliseMetadata(); err != nil {
		return err
	}
	if err := s.noSource("grpc"); err != nil {
		return err
	}
	return s.check()
}

// normaliseMetadata lower-cases the metadata keys (merging the values of
// keys that differ only in case) and refuses what gRPC would refuse at
// call time, so such a module fails at load instead of on every probe.
func (s *GRPCProbe) normaliseMetadata() error {
	if len(s.Metadata) == 0 {
		return nil
	}
	keys := make([]string, 0, len(s.Metadata))
	for k := range s.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys) // merged values in a stable order
	md := make(map[string][]string, len(s.Metadata))
	for _, k := range keys {
		lk := strings.ToLower(k)
		if lk == "" || strings.HasPrefix(lk, "grpc-") || strings.Trim(lk, "0123456789abcdefghijklmnopqrstuvwxyz-_.") != "" {
			return fmt.Errorf("grpc metadata key %q is not valid: want letters, digits, -, _ or ., not starting with grpc- (reserved)", k)
		}
		if !strings.HasSuffix(lk, "-bin") {
			for _, v := range s.Metadata[k] {
				for i := 0; i < len(v); i++ {
					if v[i] < 0x20 || v[i] > 0x7e {
						return fmt.Errorf("grpc metadata %q: value has a byte that is not printable ASCII (%#x); binary values need a key ending in -bin", k, v[i])
					}
				}
			}
		}
		md[lk] = append(md[lk], s.Metadata[k]...)
	}
	s.Metadata = md
	return nil
}

// hideSecrets is the options as /config shows them: metadata values hidden.
func (s *GRPCProbe) hideSecrets() any {
	g := *s
	g.Metadata = hideMetadata(g.Metadata)
	return g
}

// hideMetadata returns md with every value shown as "<secret>": metadata
// usually carries credentials (authorization, API keys).
func hideMetadata(md map[string][]string) map[string][]string {
	if len(md) == 0 {
		return md
	}
	out := make(map[string][]string, len(md))
	for k, vs := range md {
		hidden := make([]string, len(vs))
		for i := range vs {
			hidden[i] = "<secret>"
		}
		out[k] = hidden
	}
	return out
}
