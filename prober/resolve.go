package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Resolver is the resolver probes use; tests may replace it.
var Resolver = net.DefaultResolver

// ResolveTarget picks the address to probe for host, as blackbox_exporter
// does: the preferred IP protocol (ip6 unless configured) first, the other
// one if fallback is allowed. It records the lookup time, protocol and
// address in c and enforces the target policy on the name and the address.
func ResolveTarget(ctx context.Context, c *Common, host, preferred string, fallback bool, policy *Policy, logger *slog.Logger) (*net.IPAddr, error) {
	if err := policy.AllowHost(host); err != nil {
		return nil, err
	}
	want := "ip6"
	switch preferred {
	case "ip4", "ipv4", "tcp4", "udp4":
		want = "ip4"
	}
	start := time.Now()
	defer func() {
		c.Resolved = true
		c.DNSLookupSeconds = time.Since(start).Seconds()
	}()
	logger.Info("resolving target address", "target", host, "ip_protocol", want)

	// An IP literal needs no lookup, and no fallback games.
	if ip := net.ParseIP(host); ip != nil {
		return pick(c, &net.IPAddr{IP: ip}, policy, logger)
	}
	ips, err := Resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	var other *net.IPAddr
	for i := range ips {
		is4 := ips[i].IP.To4() != nil
		if (want == "ip4") == is4 {
			return pick(c, &ips[i], policy, logger)
		}
		if other == nil {
			other = &ips[i]
		}
	}
	if other != nil && fallback {
		return pick(c, other, policy, logger)
	}
	return nil, fmt.Errorf("resolving %s: no %s address (ip_protocol_fallback is off)", host, want)
}

func pick(c *Common, addr *net.IPAddr, policy *Policy, logger *slog.Logger) (*net.IPAddr, error) {
	if err := policy.AllowIP(addr.IP); err != nil {
		return nil, err
	}
	c.IPProtocol = 6
	if addr.IP.To4() != nil {
		c.IPProtocol = 4
	}
	c.IPAddr = addr.String()
	logger.Info("resolved target address", "ip", addr.String())
	return addr, nil
}

// targetURL parses an http(s) target as the http prober and blackbox_exporter
// do: a target without a scheme gets http://, and it must name a host.
func targetURL(target string) (*url.URL, error) {
	if l := strings.ToLower(target); !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err == nil && u.Host == "" {
		err = errors.New("the URL has no host")
	}
	return u, err
}

// resolveFailure is the reason a probe gives when ResolveTarget failed: the
// target policy's refusal, or the lookup's own failure.
func resolveFailure(err error) string {
	if errors.Is(err, ErrDenied) {
		return "Target refused by target_policy"
	}
	return "Error resolving address"
}
