package config

import (
	"fmt"
	"net"
)

// IPOptions are the address options of every prober that resolves a
// target: which address family to try first, whether to fall back to the
// other, and the local address to send from. Each prober's options embed
// them (yaml inline), so they are spelled, defaulted and checked once.
type IPOptions struct {
	// IPProtocol is the family tried first: ip6 unless set (ip4 for the
	// isp prober), as blackbox_exporter does.
	IPProtocol string `yaml:"preferred_ip_protocol,omitempty"`
	// IPProtocolFallback tries the other family when the preferred one has
	// no address. It defaults to true, so it is never omitted: /config
	// must show false to round-trip it.
	IPProtocolFallback bool `yaml:"ip_protocol_fallback"`
	// SourceIPAddress binds outgoing packets and connections (multi-WAN
	// hosts). Not in blackbox_exporter for every prober.
	SourceIPAddress string `yaml:"source_ip_address,omitempty"`
}

// DefaultIPOptions returns the defaults: ip6 first, with fallback.
func DefaultIPOptions() IPOptions { return IPOptions{IPProtocolFallback: true} }

// check validates the options. (Not Validate: it would be promoted to the
// sections that embed IPOptions and have no Validate of their own.)
func (o *IPOptions) check() error {
	if err := validIPProtocol(o.IPProtocol); err != nil {
		return err
	}
	if o.SourceIPAddress != "" && net.ParseIP(o.SourceIPAddress) == nil {
		return fmt.Errorf("source_ip_address %q is not an IP address", o.SourceIPAddress)
	}
	return nil
}

// noSource refuses source_ip_address for a prober that cannot bind it.
func (o *IPOptions) noSource(prober string) error {
	if o.SourceIPAddress != "" {
		return fmt.Errorf("source_ip_address is not an option of the %s prober", prober)
	}
	return nil
}

// validIPProtocol checks a preferred_ip_protocol value.
func validIPProtocol(p string) error {
	switch p {
	case "", "ip4", "ip6", "ipv4", "ipv6", "tcp4", "tcp6", "udp4", "udp6":
		return nil
	}
	return fmt.Errorf("preferred_ip_protocol %q is not valid (ip4 or ip6)", p)
}
