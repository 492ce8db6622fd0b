package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"

	"github.com/isp-checker/isp-checker/config"
)

// ErrDenied wraps every refusal by the target policy.
var ErrDenied = errors.New("denied by target_policy")

// Policy enforces config.TargetPolicy on host names and on every address a
// probe connects or sends to.
type Policy struct {
	config.TargetPolicy
	// OnDeny, when set, is called once per refusal (to count it).
	OnDeny func()
}

// NewPolicy wraps a configured policy.
func NewPolicy(p config.TargetPolicy, onDeny func()) *Policy {
	return &Policy{TargetPolicy: p, OnDeny: onDeny}
}

func (p *Policy) deny(err error) error {
	if p.OnDeny != nil {
		p.OnDeny()
	}
	return fmt.Errorf("%w: %w", ErrDenied, err)
}

// AllowHost checks a target's host (a name or an IP literal in any form)
// before it is resolved or dialled: see config.TargetPolicy.Check.
func (p *Policy) AllowHost(host string) error {
	if p == nil {
		return nil
	}
	if err := p.Check(host); err != nil {
		return p.deny(err)
	}
	return nil
}

// AllowUnixPath checks a Unix socket path before it is connected to: see
// config.TargetPolicy.CheckUnixPath.
func (p *Policy) AllowUnixPath(sock string) error {
	if p == nil {
		return nil
	}
	if err := p.CheckUnixPath(sock); err != nil {
		return p.deny(err)
	}
	return nil
}

// AllowIP checks an address before anything is sent to it.
func (p *Policy) AllowIP(ip net.IP) error {
	if p == nil {
		return nil
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return p.deny(fmt.Errorf("invalid address %v", ip))
	}
	if err := p.CheckAddr(addr); err != nil {
		return p.deny(err)
	}
	return nil
}

// Control is a net.Dialer Control function that refuses denied addresses at
// connect time, after every redirect and every DNS answer. It sees the
// socket address the kernel is given, zone and all.
func (p *Policy) Control(_, address string, _ syscall.RawConn) error {
	if p == nil {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return p.deny(fmt.Errorf("cannot parse dialled address %q", address))
	}
	if err := p.CheckAddr(addr); err != nil {
		return p.deny(err)
	}
	return nil
}

// Dial wraps a dial function (net.Dialer.DialContext) so that the host of
// every address it is asked for, a name after net/http's IDNA mapping or an
// IP literal, is checked before it is resolved; the dialer's Control (see
// Dialer) then checks each address it connects to.
func (p *Policy) Dial(dial func(ctx context.Context, network, address string) (net.Conn, error)) func(ctx context.Context, network, address string) (net.Conn, error) {
	if p == nil {
		return dial
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		h, err := config.CanonicalHost(host)
		if err != nil {
			return nil, p.deny(err)
		}
		if err := p.Check(host); err != nil {
			return nil, p.deny(err)
		}
		if !h.Addr.IsValid() {
			address = net.JoinHostPort(h.Dial, port)
		}
		return dial(ctx, network, address)
	}
}

// Dialer returns a net.Dialer that enforces the policy and, when source is
// set, binds to that local address.
func (p *Policy) Dialer(network, source string) (*net.Dialer, error) {
	d := &net.Dialer{Control: p.Control}
	if source != "" {
		ip := net.ParseIP(source)
		if ip == nil {
			return nil, fmt.Errorf("source_ip_address %q is not an IP address", source)
		}
		switch network {
		case "udp", "udp4", "udp6":
			d.LocalAddr = &net.UDPAddr{IP: ip}
		default:
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
	}
	return d, nil
}

// DialContext dials with the policy enforced.
func (p *Policy) DialContext(ctx context.Context, network, address, source string) (net.Conn, error) {
	d, err := p.Dialer(network, source)
	if err != nil {
		return nil, err
	}
	return p.Dial(d.DialContext)(ctx, network, address)
}

// DialExempting is Dial, except that the configured proxies (whose
// addresses proxy returns for http:// and https:// requests) are dialled
// without their names being matched against the host patterns: the
// operator named them, not the target. Control still checks their
// addresses, as it always did.
func (p *Policy) DialExempting(proxy func(*http.Request) (*url.URL, error), dial func(ctx context.Context, network, address string) (net.Conn, error)) func(ctx context.Context, network, address string) (net.Conn, error) {
	checked := p.Dial(dial)
	if p == nil || proxy == nil {
		return checked
	}
	exempt := map[string]bool{}
	for _, scheme := range []string{"http", "https"} {
		u, err := proxy(&http.Request{URL: &url.URL{Scheme: scheme, Host: "target.invalid"}})
		if err != nil || u == nil {
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443", "socks5": "1080"}[u.Scheme]
		}
		exempt[net.JoinHostPort(u.Hostname(), port)] = true
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if exempt[address] {
			return dial(ctx, network, address)
		}
		return checked(ctx, network, address)
	}
}

// AllowProxiedHost checks a host that a proxy, not this process, will
// connect to: the name, and (resolve) every address it resolves to here.
// A nil Policy allows everything.
func (p *Policy) AllowProxiedHost(ctx context.Context, host string, resolve bool) error {
	if p == nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return p.AllowIP(ip)
	}
	if err := p.AllowHost(host); err != nil {
		return err
	}
	if !resolve {
		return nil
	}
	addrs, err := Resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolving %s to check it against target_policy: %w", host, err)
	}
	for _, a := range addrs {
		if err := p.AllowIP(a.IP); err != nil {
			return err
		}
	}
	return nil
}
