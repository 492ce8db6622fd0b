package config

import (
	"errors"
	"fmt"
	"strings"

	pconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// TCPProbe is blackbox_exporter's tcp prober schema.
type TCPProbe struct {
	IPOptions     `yaml:",inline"`
	QueryResponse []QueryResponse   `yaml:"query_response,omitempty"`
	TLS           bool              `yaml:"tls,omitempty"`
	TLSConfig     pconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// DefaultTCPProbe returns the tcp defaults (blackbox's).
func DefaultTCPProbe() TCPProbe { return TCPProbe{IPOptions: DefaultIPOptions()} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *TCPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultTCPProbe()
	type tcpProbe TCPProbe
	if err := unmarshal((*tcpProbe)(s)); err != nil {
		return err
	}
	return s.check()
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
	seen := map[string]bool{}
	for _, l := range s.Labels {
		if seen[l.Name] {
			return fmt.Errorf("query_response label %q is defined twice", l.Name)
		}
		seen[l.Name] = true
	}
	return nil
}

// Label names a value taken from an expect regexp's submatches (${1}); it
// becomes a label of probe_expect_info.
type Label struct {
	Name  string `yaml:"name,omitempty"`
	Value string `yaml:"value,omitempty"`
}

// UnmarshalYAML implements yaml.Unmarshaler. The name must be a valid
// Prometheus label name, or probe_expect_info could not be exposed.
func (l *Label) UnmarshalYAML(unmarshal func(any) error) error {
	type label Label
	if err := unmarshal((*label)(l)); err != nil {
		return err
	}
	if !model.LegacyValidation.IsValidLabelName(l.Name) || strings.HasPrefix(l.Name, "__") {
		return fmt.Errorf("query_response label name %q is not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)", l.Name)
	}
	return nil
}
