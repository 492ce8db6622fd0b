package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"
	pconfig "github.com/prometheus/common/config"
)

// DNSProbe is blackbox_exporter's dns prober schema.
type DNSProbe struct {
	IPProtocol         string            `yaml:"preferred_ip_protocol,omitempty"`
	IPProtocolFallback bool              `yaml:"ip_protocol_fallback,omitempty"`
	DNSOverTLS         bool              `yaml:"dns_over_tls,omitempty"`
	TLSConfig          pconfig.TLSConfig `yaml:"tls_config,omitempty"`
	SourceIPAddress    string            `yaml:"source_ip_address,omitempty"`
	TransportProtocol  string            `yaml:"transport_protocol,omitempty"`
	QueryClass         string            `yaml:"query_class,omitempty"` // Defaults to IN.
	QueryName          string            `yaml:"query_name,omitempty"`
	QueryType          string            `yaml:"query_type,omitempty"`        // Defaults to ANY.
	Recursion          bool              `yaml:"recursion_desired,omitempty"` // Defaults to true.
	ValidRcodes        []string          `yaml:"valid_rcodes,omitempty"`      // Defaults to NOERROR.
	ValidateAnswer     DNSRRValidator    `yaml:"validate_answer_rrs,omitempty"`
	ValidateAuthority  DNSRRValidator    `yaml:"validate_authority_rrs,omitempty"`
	ValidateAdditional DNSRRValidator    `yaml:"validate_additional_rrs,omitempty"`
}

// DefaultDNSProbe returns the dns defaults (blackbox's).
func DefaultDNSProbe() DNSProbe { return DNSProbe{IPProtocolFallback: true, Recursion: true} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *DNSProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultDNSProbe()
	type dnsProbe DNSProbe
	if err := unmarshal((*dnsProbe)(s)); err != nil {
		return err
	}
	if s.QueryName == "" {
		return errors.New("query name must be set for DNS module")
	}
	if s.QueryClass != "" {
		if _, ok := dns.StringToClass[s.QueryClass]; !ok {
			return fmt.Errorf("query class '%s' is not valid", s.QueryClass)
		}
	}
	if s.QueryType != "" {
		if _, ok := dns.StringToType[s.QueryType]; !ok {
			return fmt.Errorf("query type '%s' is not valid", s.QueryType)
		}
	}
	switch s.TransportProtocol {
	case "", "udp", "tcp":
	default:
		return fmt.Errorf("transport_protocol %q is not valid (udp or tcp)", s.TransportProtocol)
	}
	for _, rc := range s.ValidRcodes {
		if _, ok := dns.StringToRcode[strings.ToUpper(rc)]; !ok {
			return fmt.Errorf("valid_rcodes: %q is not a DNS response code", rc)
		}
	}
	if s.SourceIPAddress != "" && net.ParseIP(s.SourceIPAddress) == nil {
		return fmt.Errorf("source_ip_address %q is not an IP address", s.SourceIPAddress)
	}
	return validIPProtocol(s.IPProtocol)
}

// DNSRRValidator checks the records of one section of a DNS answer.
type DNSRRValidator struct {
	FailIfMatchesRegexp     []Regexp `yaml:"fail_if_matches_regexp,omitempty"`
	FailIfAllMatchRegexp    []Regexp `yaml:"fail_if_all_match_regexp,omitempty"`
	FailIfNotMatchesRegexp  []Regexp `yaml:"fail_if_not_matches_regexp,omitempty"`
	FailIfNoneMatchesRegexp []Regexp `yaml:"fail_if_none_matches_regexp,omitempty"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *DNSRRValidator) UnmarshalYAML(unmarshal func(any) error) error {
	type dnsRRValidator DNSRRValidator
	return unmarshal((*dnsRRValidator)(s))
}
