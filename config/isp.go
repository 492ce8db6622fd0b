package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ISPProbe holds the isp prober's options: what the diagnosis checks (the
// gateway, internet targets, DNS resolvers, web sites, optionally a speed
// test) and the thresholds that turn the measurements into a verdict. The
// same options drive `isp-checker run`, whose flags override the lists.
type ISPProbe struct {
	// IPOptions: ip4 first for targets given by name, with fallback; no
	// source_ip_address.
	IPOptions `yaml:",inline"`

	// Gateway is the LAN gateway's address. Empty (the default) takes the
	// default route's gateway from the routing table (/proc/net/route, then
	// /proc/net/ipv6_route); "none" skips the gateway check.
	Gateway string `yaml:"gateway,omitempty"`
	// Targets are internet hosts pinged to measure loss, latency and jitter
	// beyond the gateway; the first is also traced, to see where the ISP
	// starts and where loss starts. The probe's target parameter, when it
	// names a host, comes first. Default: 1.1.1.1, 8.8.8.8, 9.9.9.9.
	Targets []string `yaml:"targets,omitempty"`
	// DNSServers are the resolvers queried (ip, ip:port or [ipv6]:port).
	// Empty (the default) means the nameservers of /etc/resolv.conf.
	DNSServers []string `yaml:"dns_servers,omitempty"`
	// DNSQueryName is resolved through every resolver (default example.com)
	// with DNSQueryType (default A).
	DNSQueryName string `yaml:"dns_query_name,omitempty"`
	DNSQueryType string `yaml:"dns_query_type,omitempty"`
	// DNSAttempts is how many times a resolver is asked before it counts as
	// failed (default 3, as a stub resolver retries); DNSTimeout bounds each
	// attempt (default 2s).
	DNSAttempts int           `yaml:"dns_attempts,omitempty"`
	DNSTimeout  time.Duration `yaml:"dns_timeout,omitempty"`
	// HTTPURLs are web sites fetched (a 2xx answer is success). Default:
	// https://www.example.com/. HTTPTimeout bounds each (default 10s).
	HTTPURLs    []string      `yaml:"http_urls,omitempty"`
	HTTPTimeout time.Duration `yaml:"http_timeout,omitempty"`
	// Speed runs a throughput and bufferbloat check against SpeedURL after
	// the other checks (it loads the link, so it never runs alongside
	// them), for SpeedDuration (default 5s). Off by default: every probe
	// then moves real data.
	Speed         bool          `yaml:"speed,omitempty"`
	SpeedURL      string        `yaml:"speed_url,omitempty"`
	SpeedDuration time.Duration `yaml:"speed_duration,omitempty"`
	// ResponsivenessURL is the responsiveness test's configuration
	// document (a /.well-known/nq URL), measured with speed: true after the
	// throughput. Empty: derived from an https speed_url on another
	// isp-checker (its /speedtest/download), else not measured.
	ResponsivenessURL string `yaml:"responsiveness_url,omitempty"`

	// Packets echo requests (default 30) are sent to the gateway and to
	// every target, Interval apart (default 200ms).
	Packets  int           `yaml:"packets,omitempty"`
	Interval time.Duration `yaml:"interval,omitempty"`
	// Trace traces the first target (default on), with at most
	// TraceMaxHops hops (default 30).
	Trace        bool `yaml:"trace"`
	TraceMaxHops int  `yaml:"trace_max_hops,omitempty"`
	// HopPings pings every router the trace found beyond the gateway, as
	// mtr does, to tell where loss starts (default on).
	HopPings bool `yaml:"hop_pings"`
	// MTU searches the path MTU toward the first target (the mtu prober,
	// default on), to find path-MTU black holes: ping works, large
	// transfers stall.
	MTU bool `yaml:"mtu"`
	// DNSIntegrity also asks every resolver for a name that cannot exist (a
	// random label under .invalid, RFC 6761; default on): an address back
	// means the resolver rewrites NXDOMAIN.
	DNSIntegrity bool `yaml:"dns_integrity"`

	Thresholds ISPThresholds `yaml:"thresholds,omitempty"`
}

// ISPThresholds turn measurements into faults. A measurement above its
// threshold is a fault; each dimension's score is 0.5 at its threshold.
type ISPThresholds struct {
	// LossRatio: packet loss (0–1) above it is a fault. Default 0.05.
	LossRatio float64 `yaml:"loss_ratio,omitempty"`
	// GatewayLatency: a mean round-trip time to the gateway above it is a
	// LAN fault. Default 50ms.
	GatewayLatency time.Duration `yaml:"gateway_latency,omitempty"`
	// Latency: a mean round-trip time beyond the gateway (to a target, less
	// the gateway's) above it is an ISP fault. Default 150ms.
	Latency time.Duration `yaml:"latency,omitempty"`
	// Jitter: jitter (mean difference of consecutive round-trip times)
	// above it is a fault, at the gateway (LAN) or beyond (ISP). Default 30ms.
	Jitter time.Duration `yaml:"jitter,omitempty"`
	// DNSLatency: resolvers answering slower than it (median) are a DNS
	// fault. Default 500ms.
	DNSLatency time.Duration `yaml:"dns_latency,omitempty"`
	// Bufferbloat: a rise of latency under load (speed test) above it is an
	// ISP (access link) fault. Default 100ms.
	Bufferbloat time.Duration `yaml:"bufferbloat,omitempty"`
}

// ISP defaults and limits.
const (
	ISPGatewayNone            = "none"
	DefaultISPPackets         = 30
	DefaultISPInterval        = 200 * time.Millisecond
	DefaultISPTraceMaxHops    = 30
	DefaultISPDNSQueryName    = "example.com"
	DefaultISPDNSQueryType    = "A"
	DefaultISPDNSAttempts     = 3
	DefaultISPDNSTimeout      = 2 * time.Second
	DefaultISPHTTPTimeout     = 10 * time.Second
	DefaultISPSpeedDuration   = 5 * time.Second
	ISPMaxPackets             = 1000
	ISPMinInterval            = 10 * time.Millisecond
	ISPMaxDNSAttempts         = 10
	ISPMaxListLength          = 32
	DefaultISPLossRatio       = 0.05
	DefaultISPGatewayLatency  = 50 * time.Millisecond
	DefaultISPLatency         = 150 * time.Millisecond
	DefaultISPJitter          = 30 * time.Millisecond
	DefaultISPDNSLatency      = 500 * time.Millisecond
	DefaultISPBufferbloat     = 100 * time.Millisecond
	ispMinSpeedDuration       = time.Second
	ispMaxSpeedDuration       = time.Minute
	ispMinTimeout             = 100 * time.Millisecond
	ispDefaultPublicHTTPSSite = "https://www.example.com/"
)

// DefaultISPTargets are well-known public anycast resolvers that answer
// ping: targets for a real user's connection, never for tests.
var DefaultISPTargets = []string{"1.1.1.1", "8.8.8.8", "9.9.9.9"}

// DefaultISPProbe returns the isp defaults.
func DefaultISPProbe() ISPProbe {
	return ISPProbe{
		IPOptions:     IPOptions{IPProtocol: "ip4", IPProtocolFallback: true},
		Targets:       append([]string(nil), DefaultISPTargets...),
		DNSQueryName:  DefaultISPDNSQueryName,
		DNSQueryType:  DefaultISPDNSQueryType,
		DNSAttempts:   DefaultISPDNSAttempts,
		DNSTimeout:    DefaultISPDNSTimeout,
		HTTPURLs:      []string{ispDefaultPublicHTTPSSite},
		HTTPTimeout:   DefaultISPHTTPTimeout,
		SpeedDuration: DefaultISPSpeedDuration,
		Packets:       DefaultISPPackets,
		Interval:      DefaultISPInterval,
		Trace:         true,
		TraceMaxHops:  DefaultISPTraceMaxHops,
		HopPings:      true,
		MTU:           true,
		DNSIntegrity:  true,
		Thresholds:    DefaultISPThresholds(),
	}
}

// DefaultISPThresholds returns the default thresholds.
func DefaultISPThresholds() ISPThresholds {
	return ISPThresholds{
		LossRatio:      DefaultISPLossRatio,
		GatewayLatency: DefaultISPGatewayLatency,
		Latency:        DefaultISPLatency,
		Jitter:         DefaultISPJitter,
		DNSLatency:     DefaultISPDNSLatency,
		Bufferbloat:    DefaultISPBufferbloat,
	}
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ISPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultISPProbe()
	type ispProbe ISPProbe
	if err := unmarshal((*ispProbe)(s)); err != nil {
		return err
	}
	return s.Validate()
}

// UnmarshalYAML implements yaml.Unmarshaler: thresholds not written keep
// their defaults.
func (t *ISPThresholds) UnmarshalYAML(unmarshal func(any) error) error {
	*t = DefaultISPThresholds()
	type ispThresholds ISPThresholds
	return unmarshal((*ispThresholds)(t))
}

// Validate checks the options; UnmarshalYAML calls it, and so does `run`
// after applying its flags.
func (s *ISPProbe) Validate() error {
	if err := s.noSource("isp"); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	if s.Gateway != "" && s.Gateway != ISPGatewayNone {
		if _, err := ParseISPGateway(s.Gateway); err != nil {
			return err
		}
	}
	if len(s.Targets) == 0 {
		return errors.New("targets: at least one internet target is needed")
	}
	for _, list := range []struct {
		name  string
		items []string
	}{{"targets", s.Targets}, {"dns_servers", s.DNSServers}, {"http_urls", s.HTTPURLs}} {
		if len(list.items) > ISPMaxListLength {
			return fmt.Errorf("%s: at most %d entries (%d given)", list.name, ISPMaxListLength, len(list.items))
		}
	}
	for _, t := range s.Targets {
		if err := ValidISPHost(t); err != nil {
			return fmt.Errorf("targets: %w", err)
		}
	}
	for _, d := range s.DNSServers {
		if err := ValidISPDNSServer(d); err != nil {
			return fmt.Errorf("dns_servers: %w", err)
		}
	}
	for _, u := range s.HTTPURLs {
		if err := ValidISPURL(u); err != nil {
			return fmt.Errorf("http_urls: %w", err)
		}
	}
	if _, ok := dns.IsDomainName(s.DNSQueryName); !ok || s.DNSQueryName == "" {
		return fmt.Errorf("dns_query_name %q is not a valid domain name", s.DNSQueryName)
	}
	if _, ok := dns.StringToType[s.DNSQueryType]; !ok {
		return fmt.Errorf("dns_query_type %q is not valid", s.DNSQueryType)
	}
	if s.DNSAttempts < 1 || s.DNSAttempts > ISPMaxDNSAttempts {
		return fmt.Errorf("dns_attempts %d is out of range 1-%d", s.DNSAttempts, ISPMaxDNSAttempts)
	}
	if s.DNSTimeout < ispMinTimeout || s.HTTPTimeout < ispMinTimeout {
		return fmt.Errorf("dns_timeout and http_timeout must be at least %s", ispMinTimeout)
	}
	if s.SpeedURL != "" {
		if err := ValidISPURL(s.SpeedURL); err != nil {
			return fmt.Errorf("speed_url: %w", err)
		}
	}
	if s.ResponsivenessURL != "" {
		if err := ValidISPURL(s.ResponsivenessURL); err != nil {
			return fmt.Errorf("responsiveness_url: %w", err)
		}
	}
	if s.Speed && s.SpeedURL == "" {
		return errors.New("speed: true needs a speed_url (a URL to download from)")
	}
	if s.SpeedDuration < ispMinSpeedDuration || s.SpeedDuration > ispMaxSpeedDuration {
		return fmt.Errorf("speed_duration %s is out of range %s-%s", s.SpeedDuration, ispMinSpeedDuration, ispMaxSpeedDuration)
	}
	if s.Packets < 1 || s.Packets > ISPMaxPackets {
		return fmt.Errorf("packets %d is out of range 1-%d", s.Packets, ISPMaxPackets)
	}
	if s.Interval < ISPMinInterval {
		return fmt.Errorf("interval %s is below the minimum of %s", s.Interval, ISPMinInterval)
	}
	if s.TraceMaxHops < 1 || s.TraceMaxHops > TracerouteMaxTTL {
		return fmt.Errorf("trace_max_hops %d is out of range 1-%d", s.TraceMaxHops, TracerouteMaxTTL)
	}
	return s.Thresholds.Validate()
}

// Validate checks the thresholds.
func (t *ISPThresholds) Validate() error {
	if t.LossRatio <= 0 || t.LossRatio >= 1 {
		return fmt.Errorf("thresholds: loss_ratio %g is out of range (0-1, exclusive; a ratio, not a percentage)", t.LossRatio)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"gateway_latency", t.GatewayLatency}, {"latency", t.Latency}, {"jitter", t.Jitter},
		{"dns_latency", t.DNSLatency}, {"bufferbloat", t.Bufferbloat}} {
		if d.v <= 0 {
			return fmt.Errorf("thresholds: %s must be positive", d.name)
		}
	}
	return nil
}

// ParseISPGateway parses a gateway address: an IP, optionally with an IPv6
// zone (fe80::1%eth0).
func ParseISPGateway(s string) (net.IPAddr, error) {
	host, zone, _ := strings.Cut(s, "%")
	ip := net.ParseIP(host)
	if ip == nil || (zone != "" && ip.To4() != nil) {
		return net.IPAddr{}, fmt.Errorf("gateway %q is not an IP address (or %q)", s, ISPGatewayNone)
	}
	return net.IPAddr{IP: ip, Zone: zone}, nil
}

// ValidISPHost checks a target: an IP address or a host name.
func ValidISPHost(h string) error {
	if h == "" {
		return errors.New("empty target")
	}
	if net.ParseIP(strings.Trim(h, "[]")) != nil {
		return nil
	}
	if strings.ContainsAny(h, "/:@ ") {
		return fmt.Errorf("%q is not a host name or IP address", h)
	}
	if _, ok := dns.IsDomainName(h); !ok {
		return fmt.Errorf("%q is not a host name or IP address", h)
	}
	return nil
}

// ParseISPProbeTarget reads the target of an isp probe: an IP address or
// a host name with a dot is the primary internet target (host), an http://
// or https:// URL is the first web site (site) and its host the primary
// target, and a single word (letters, digits, '-', '_': "internet") is
// only a label (both ""). Anything else is an error, so a mistyped target
// is not silently taken as a label.
func ParseISPProbeTarget(target string) (host, site string, err error) {
	target = strings.TrimSpace(target)
	if target == "" || isISPLabel(target) {
		return "", "", nil
	}
	if scheme, _, ok := strings.Cut(target, "://"); ok {
		if err := ValidISPURL(target); err != nil {
			return "", "", err
		}
		switch strings.ToLower(scheme) {
		case "http", "https":
		default:
			return "", "", fmt.Errorf("%q is not an http:// or https:// URL", target)
		}
		u, _ := url.Parse(target)
		return u.Hostname(), target, nil
	}
	if ip := net.ParseIP(strings.Trim(target, "[]")); ip != nil {
		return ip.String(), "", nil
	}
	if err := ValidISPHost(target); err != nil || !strings.Contains(target, ".") {
		return "", "", fmt.Errorf("%q is neither an IP address, a host name, an http(s) URL nor a single-word label (letters, digits, '-', '_')", target)
	}
	return strings.TrimSuffix(target, "."), "", nil
}

// isISPLabel says whether s is one word of letters, digits, '-' and '_'.
func isISPLabel(s string) bool {
	return s != "" && strings.IndexFunc(s, func(c rune) bool {
		word := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		return !word
	}) < 0
}

// ValidISPDNSServer checks a resolver: ip, ip:port or [ipv6]:port.
func ValidISPDNSServer(s string) error {
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		host = h
		if port, err := strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("%q has an invalid port", s)
		}
	}
	host, _, _ = strings.Cut(host, "%")
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q is not an IP address (ip, ip:port or [ipv6]:port)", s)
	}
	return nil
}

// ValidISPURL checks a web site URL: http or https, with a host.
func ValidISPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}
