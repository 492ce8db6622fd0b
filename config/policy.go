package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"
)

// TargetPolicy limits what the exporter may be asked to probe (an SSRF guard).
// It is enforced by the prober on the resolved address at dial time, so a
// redirect or a DNS answer that changes cannot get around it.
type TargetPolicy struct {
	// AllowNetworks, when set, is the only address space probes may reach.
	AllowNetworks []Network `yaml:"allow_networks,omitempty"`
	// DenyNetworks is never probed. Defaults to link-local and cloud metadata.
	DenyNetworks []Network `yaml:"deny_networks,omitempty"`
	// AllowHosts, when set, are the only host names (shell globs) accepted.
	AllowHosts []string `yaml:"allow_hosts,omitempty"`
	// DenyHosts are host names (shell globs) refused before resolution.
	DenyHosts []string `yaml:"deny_hosts,omitempty"`
}

// DefaultDenyNetworks are refused unless the config says otherwise: there is
// nothing a network probe needs there, and cloud metadata services live there.
var DefaultDenyNetworks = []string{"169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"}

// DefaultTargetPolicy returns the policy used when the config has none.
func DefaultTargetPolicy() TargetPolicy {
	p := TargetPolicy{}
	for _, s := range DefaultDenyNetworks {
		p.DenyNetworks = append(p.DenyNetworks, Network{netip.MustParsePrefix(s)})
	}
	return p
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *TargetPolicy) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultTargetPolicy()
	type targetPolicy TargetPolicy
	return unmarshal((*targetPolicy)(p))
}

func (p *TargetPolicy) compile() error {
	for _, h := range append(append([]string{}, p.AllowHosts...), p.DenyHosts...) {
		if h == "" {
			return errors.New("empty host pattern")
		}
		if _, err := path.Match(strings.ToLower(h), ""); err != nil {
			return fmt.Errorf("bad host pattern %q: %w", h, err)
		}
	}
	return nil
}

// CheckAddr says why addr may not be probed, or returns nil.
func (p *TargetPolicy) CheckAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, n := range p.DenyNetworks {
		if n.Contains(addr) {
			return fmt.Errorf("address %s is in denied network %s", addr, n.Prefix)
		}
	}
	if len(p.AllowNetworks) == 0 {
		return nil
	}
	for _, n := range p.AllowNetworks {
		if n.Contains(addr) {
			return nil
		}
	}
	return fmt.Errorf("address %s is outside the allowed networks", addr)
}

// CheckHost says why a host name may not be probed, or returns nil. IP
// literals are left to CheckAddr.
func (p *TargetPolicy) CheckHost(host string) error {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	for _, pat := range p.DenyHosts {
		if ok, _ := path.Match(strings.ToLower(pat), host); ok {
			return fmt.Errorf("host %s matches denied host pattern %q", host, pat)
		}
	}
	if len(p.AllowHosts) == 0 {
		return nil
	}
	for _, pat := range p.AllowHosts {
		if ok, _ := path.Match(strings.ToLower(pat), host); ok {
			return nil
		}
	}
	return fmt.Errorf("host %s matches no allowed host pattern", host)
}

// Network is an IP prefix in YAML: "10.0.0.0/8", or a single address.
type Network struct{ netip.Prefix }

// UnmarshalYAML implements yaml.Unmarshaler.
func (n *Network) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	if pfx, err := netip.ParsePrefix(s); err == nil {
		n.Prefix = pfx.Masked()
		return nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("invalid network %q: want an address or a CIDR prefix", s)
	}
	n.Prefix = netip.PrefixFrom(addr, addr.BitLen())
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (n Network) MarshalYAML() (any, error) { return n.String(), nil }

// Contains reports whether addr is in the network, with IPv4-mapped IPv6
// addresses treated as IPv4.
func (n Network) Contains(addr netip.Addr) bool { return n.Prefix.Contains(addr.Unmap()) }
