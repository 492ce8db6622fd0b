package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
	pconfig "github.com/prometheus/common/config"
)

// DefaultDNSSECUDPSize is the EDNS0 UDP payload size advertised when dnssec
// is on and edns0_udp_size is not set: the DNS Flag Day 2020 value, which
// avoids IP fragmentation on practically every path.
const DefaultDNSSECUDPSize = 1232

// DNSProbe is blackbox_exporter's dns prober schema, plus DNS over HTTPS,
// retrying truncated answers over TCP and DNSSEC (DO bit, AD flag).
type DNSProbe struct {
	IPOptions          `yaml:",inline"`
	DNSOverTLS         bool              `yaml:"dns_over_tls,omitempty"`
	TLSConfig          pconfig.TLSConfig `yaml:"tls_config,omitempty"`
	TransportProtocol  string            `yaml:"transport_protocol,omitempty"` // udp (default) or tcp; tcp for DoT.
	QueryClass         string            `yaml:"query_class,omitempty"`        // Defaults to IN.
	QueryName          string            `yaml:"query_name,omitempty"`
	QueryType          string            `yaml:"query_type,omitempty"`   // Defaults to ANY.
	Recursion          bool              `yaml:"recursion_desired"`      // Defaults to true.
	ValidRcodes        []string          `yaml:"valid_rcodes,omitempty"` // Defaults to NOERROR.
	ValidateAnswer     DNSRRValidator    `yaml:"validate_answer_rrs,omitempty"`
	ValidateAuthority  DNSRRValidator    `yaml:"validate_authority_rrs,omitempty"`
	ValidateAdditional DNSRRValidator    `yaml:"validate_additional_rrs,omitempty"`

	// isp-checker's own options (none of them exists in blackbox_exporter;
	// tagged isp:"own", see omitOwnDefaults).

	// DNSOverHTTPS queries over RFC 8484 DNS over HTTPS. A target that is an
	// http:// or https:// URL is always queried that way; with this option a
	// bare host[:port] target means https://host[:port]/dns-query.
	DNSOverHTTPS bool `yaml:"dns_over_https,omitempty" isp:"own"`
	// DoHMethod is the HTTP method for DNS over HTTPS: POST (default) or GET.
	DoHMethod string `yaml:"doh_method,omitempty" isp:"own"`
	// RetryTruncatedOverTCP repeats the query over TCP when the UDP answer
	// has the TC bit set. Off by default, as in blackbox_exporter, which
	// judges the truncated answer.
	RetryTruncatedOverTCP bool `yaml:"retry_truncated_over_tcp,omitempty" isp:"own"`
	// DNSSEC sets the DO bit (and AD in the query) so a validating resolver
	// reports whether it validated the answer (the AD flag).
	DNSSEC bool `yaml:"dnssec,omitempty" isp:"own"`
	// FailIfNotAuthenticated fails the probe when the answer lacks the AD
	// flag. Needs dnssec: true.
	FailIfNotAuthenticated bool `yaml:"fail_if_not_authenticated,omitempty" isp:"own"`
	// EDNS0UDPSize adds an EDNS0 OPT record advertising this UDP payload
	// size. 0 sends no OPT record, as blackbox_exporter does, unless dnssec
	// is on (then DefaultDNSSECUDPSize).
	EDNS0UDPSize uint16 `yaml:"edns0_udp_size,omitempty" isp:"own"`
}

// DefaultDNSProbe returns the dns defaults (blackbox's, and POST for DoH).
func DefaultDNSProbe() DNSProbe {
	return DNSProbe{IPOptions: DefaultIPOptions(), Recursion: true, DoHMethod: "POST"}
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *DNSProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultDNSProbe()
	type dnsProbe DNSProbe
	if err := unmarshal((*dnsProbe)(s)); err != nil {
		return err
	}
	return s.Validate()
}

// Validate checks the options, also when the module has no dns: section.
func (s *DNSProbe) Validate() error {
	if s.QueryName == "" {
		return errors.New("query_name must be set for a dns module")
	}
	if isASCII(s.QueryName) {
		if _, ok := dns.IsDomainName(s.QueryName); !ok {
			return fmt.Errorf("query name %q is not a valid domain name", s.QueryName)
		}
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
	if s.DNSOverTLS && s.DNSOverHTTPS {
		return errors.New("dns_over_tls and dns_over_https cannot both be set")
	}
	// dns_over_tls with transport_protocol udp loads, as in blackbox (where
	// every such probe fails); DNS over TLS only exists over TCP, so the
	// prober uses TCP.
	if s.DNSOverHTTPS && s.TransportProtocol == "udp" {
		return errors.New("dns_over_https runs over TCP: remove transport_protocol udp")
	}
	s.DoHMethod = strings.ToUpper(s.DoHMethod)
	switch s.DoHMethod {
	case "GET", "POST":
	case "":
		s.DoHMethod = "POST"
	default:
		return fmt.Errorf("doh_method %q is not valid (GET or POST)", s.DoHMethod)
	}
	if s.FailIfNotAuthenticated && !s.DNSSEC {
		return errors.New("fail_if_not_authenticated needs dnssec: true")
	}
	if s.EDNS0UDPSize != 0 && s.EDNS0UDPSize < 512 {
		return fmt.Errorf("edns0_udp_size %d is too small: 512 is the minimum (RFC 6891)", s.EDNS0UDPSize)
	}
	return s.check()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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
