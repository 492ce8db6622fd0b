package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	pconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
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

// QueryResponse is one step of a tcp or unix dialogue: wait for Expect (a
// line matching a regexp) or ExpectBytes (exactly these bytes), then Send.
type QueryResponse struct {
	Expect Regexp `yaml:"expect,omitempty"`
	// ExpectBytes must arrive exactly, byte for byte (a binary handshake
	// such as PostgreSQL's SSLRequest answer); write it as !!binary base64
	// for bytes that are not text.
	ExpectBytes string  `yaml:"expect_bytes,omitempty"`
	Labels      []Label `yaml:"labels,omitempty"`
	Send        string  `yaml:"send,omitempty"`
	StartTLS    bool    `yaml:"starttls,omitempty"`
	// SendBinary is true when send was written as !!binary: it is sent as
	// those bytes exactly, without the newline a text line gets.
	// blackbox_exporter appends "\n" to binary sends too, which a strict
	// server rejects (PostgreSQL closes the connection on anything after an
	// SSLRequest).
	SendBinary bool `yaml:"-"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *QueryResponse) UnmarshalYAML(unmarshal func(any) error) error {
	var raw nodeOf
	if err := unmarshal(&raw); err != nil {
		return err
	}
	type queryResponse QueryResponse
	if err := unmarshal((*queryResponse)(s)); err != nil {
		return err
	}
	if raw.Node != nil && raw.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(raw.Content); i += 2 {
			if raw.Content[i].Value == "send" && raw.Content[i+1].Tag == "!!binary" {
				s.SendBinary = true
			}
		}
	}
	if s.Expect.Regexp != nil && s.ExpectBytes != "" {
		return errors.New("expect and expect_bytes are mutually exclusive")
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

// MarshalYAML implements yaml.Marshaler: a binary send is written back as
// !!binary, so /config loads again with the same meaning.
func (s QueryResponse) MarshalYAML() (any, error) {
	type queryResponse QueryResponse
	if !s.SendBinary {
		return queryResponse(s), nil
	}
	send := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!binary", Value: base64.StdEncoding.EncodeToString([]byte(s.Send))}
	out := struct {
		Expect      Regexp     `yaml:"expect,omitempty"`
		ExpectBytes string     `yaml:"expect_bytes,omitempty"`
		Labels      []Label    `yaml:"labels,omitempty"`
		Send        *yaml.Node `yaml:"send"`
		StartTLS    bool       `yaml:"starttls,omitempty"`
	}{s.Expect, s.ExpectBytes, s.Labels, send, s.StartTLS}
	return out, nil
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
