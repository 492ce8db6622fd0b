package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/net/idna"
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
	// AllowUnixPaths are the Unix socket paths (shell globs, absolute;
	// "@name" for Linux abstract sockets) the unix prober may connect to.
	// None by default: see CheckUnixPath.
	AllowUnixPaths []string `yaml:"allow_unix_paths,omitempty"`
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
	for _, pat := range p.AllowUnixPaths {
		if !strings.HasPrefix(pat, "/") && !strings.HasPrefix(pat, "@") {
			return fmt.Errorf("allow_unix_paths: pattern %q is neither an absolute path nor an abstract socket name (@name)", pat)
		}
		if hasDotDot(pat) {
			return fmt.Errorf("allow_unix_paths: pattern %q has a .. element", pat)
		}
		if _, err := path.Match(pat, ""); err != nil {
			return fmt.Errorf("allow_unix_paths: bad pattern %q: %w", pat, err)
		}
	}
	return nil
}

// CheckUnixPath says why the Unix socket sock may not be probed, or
// returns nil. The network policy cannot judge a path, and /probe is
// usually unauthenticated with the socket chosen by whoever sends the
// target, so nothing is allowed unless allow_unix_paths names it: otherwise
// anyone who reaches the exporter could point a unix module at the Docker
// or containerd socket or the system bus, learn which sockets exist, send
// them the module's payload, and read their answers back through
// probe_expect_info. The path must be absolute without .. elements and
// match a pattern; so must the path its symbolic links lead to, so that a
// link inside an allowed directory cannot reach a socket outside it. An
// abstract socket (@name) must match a pattern starting with @.
func (p *TargetPolicy) CheckUnixPath(sock string) error {
	if sock == "" {
		return errors.New("empty unix socket path")
	}
	if strings.HasPrefix(sock, "@") {
		if !p.unixPathAllowed(sock) {
			return fmt.Errorf("abstract unix socket %s is not in target_policy.allow_unix_paths", clipHost(sock))
		}
		return nil
	}
	if !filepath.IsAbs(sock) {
		return fmt.Errorf("unix socket path %q is not absolute", clipHost(sock))
	}
	if hasDotDot(sock) || strings.ContainsRune(sock, 0) {
		return fmt.Errorf("unix socket path %q has a .. element or a NUL byte", clipHost(sock))
	}
	clean := filepath.Clean(sock)
	if !p.unixPathAllowed(clean) {
		return fmt.Errorf("unix socket path %s is not in target_policy.allow_unix_paths", clipHost(clean))
	}
	// A path that does not exist (yet) has no links to follow; the dial
	// then fails on its own.
	if real, err := filepath.EvalSymlinks(clean); err == nil && real != clean && !p.unixPathAllowed(real) {
		return fmt.Errorf("unix socket path %s leads to %s, which is not in target_policy.allow_unix_paths", clipHost(clean), clipHost(real))
	}
	return nil
}

func (p *TargetPolicy) unixPathAllowed(sock string) bool {
	for _, pat := range p.AllowUnixPaths {
		if strings.HasPrefix(pat, "@") != strings.HasPrefix(sock, "@") {
			continue
		}
		if ok, _ := path.Match(pat, sock); ok {
			return true
		}
	}
	return false
}

func hasDotDot(p string) bool {
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// Check is the one policy decision: it says why host may not be probed, or
// returns nil. host is what a URL or target names (an IP literal in any form
// Go's dialler accepts, bracketed or not, with or without a zone, or a host
// name), and Check decides on what a dialler actually uses after its own
// normalisation: see CanonicalHost.
func (p *TargetPolicy) Check(host string) error {
	h, err := CanonicalHost(host)
	if err != nil {
		return err
	}
	if h.Addr.IsValid() {
		return p.CheckAddr(h.Addr)
	}
	return p.checkName(h.Name)
}

// CheckAddr says why addr may not be probed, or returns nil. A zone only
// picks the interface and an IPv4-mapped address is dialled as IPv4, so
// both are stripped before the networks are compared.
func (p *TargetPolicy) CheckAddr(addr netip.Addr) error {
	addr = addr.WithZone("").Unmap()
	if err := p.checkOne(addr); err != nil {
		return err
	}
	// Connecting to 0.0.0.0 or :: reaches this host, as loopback does.
	if addr.IsUnspecified() {
		lo := netip.IPv6Loopback()
		if addr.Is4() {
			lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		if err := p.checkOne(lo); err != nil {
			return fmt.Errorf("address %s reaches this host: %w", addr, err)
		}
	}
	return nil
}

func (p *TargetPolicy) checkOne(addr netip.Addr) error {
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

// CheckHost says why a host name may not be probed, or returns nil. It is
// Check under its older name: IP literals are checked as addresses.
func (p *TargetPolicy) CheckHost(host string) error { return p.Check(host) }

func (p *TargetPolicy) checkName(name string) error {
	for _, pat := range p.DenyHosts {
		if ok, _ := path.Match(strings.ToLower(pat), name); ok {
			return fmt.Errorf("host %s matches denied host pattern %q", name, pat)
		}
	}
	if len(p.AllowHosts) == 0 {
		return nil
	}
	for _, pat := range p.AllowHosts {
		if ok, _ := path.Match(strings.ToLower(pat), name); ok {
			return nil
		}
	}
	return fmt.Errorf("host %s matches no allowed host pattern", name)
}

// Host is a target host as a dialler sees it: an address, or else a name.
type Host struct {
	// Addr is set for an IP literal: zone stripped, IPv4-mapped unwrapped.
	Addr netip.Addr
	// Name is the host name in the ASCII form that is looked up (IDNA
	// UTS-46 mapped, as net/http maps it), lower case, without trailing dots.
	Name string
	// Dial is the name to hand to a resolver: the IDNA-mapped name with its
	// case and trailing dot as written (a trailing dot makes a name absolute).
	Dial string
}

// CanonicalHost normalises host the way the probers' diallers do before
// they connect or resolve. Names net/http would refuse to map are refused
// here too, so nothing the policy could not judge is ever dialled.
func CanonicalHost(host string) (Host, error) {
	h := host
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" {
		return Host{}, errors.New("empty host")
	}
	if addr, err := netip.ParseAddr(h); err == nil {
		return Host{Addr: addr.WithZone("").Unmap()}, nil
	}
	if strings.ContainsAny(h, "%[]/\\@ \t\r\n\x00") {
		return Host{}, fmt.Errorf("host %q is neither an IP address nor a host name", clipHost(host))
	}
	dial := h
	if !isASCII(h) {
		a, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return Host{}, fmt.Errorf("host %q is not a valid internationalised domain name: %w", clipHost(host), err)
		}
		dial = a
		// A mapped name can be an address again (e.g. fullwidth digits).
		if addr, err := netip.ParseAddr(a); err == nil {
			return Host{Addr: addr.WithZone("").Unmap()}, nil
		}
	}
	name := strings.TrimRight(strings.ToLower(dial), ".")
	if name == "" {
		return Host{}, fmt.Errorf("host %q has no name", clipHost(host))
	}
	return Host{Name: name, Dial: dial}, nil
}

// clipHost keeps error messages short whatever a caller sends.
func clipHost(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
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
func (n Network) Contains(addr netip.Addr) bool {
	return n.Prefix.Contains(addr.WithZone("").Unmap())
}
