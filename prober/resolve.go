package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// Resolver is the resolver probes use; tests may replace it.
var Resolver = net.DefaultResolver

// ResolveTarget picks the address to probe for host, as blackbox_exporter
// does: the preferred IP protocol (ip6 unless configured) first, the other
// one if fallback is allowed. It records the lookup time, protocol and
// address in c and enforces the target policy on the name and the address.
func ResolveTarget(ctx context.Context, c *Common, host, preferred string, fallback bool, policy *Policy, logger *slog.Logger) (*net.IPAddr, error) {
	h, err := config.CanonicalHost(host)
	if err != nil {
		return nil, fmt.Errorf("invalid target host: %w", err)
	}
	// A name is judged before it is looked up; an address (zone and all)
	// once it is picked, below, as every answer of a lookup is.
	if !h.Addr.IsValid() {
		if err := policy.AllowHost(host); err != nil {
			return nil, err
		}
		host = h.Dial // what is looked up is what the policy judged
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
	// "host": the caller's logger names the probe's target already.
	logger.Info("resolving target address", "host", host, "ip_protocol", want)

	// An IP literal (zoned, or written in fullwidth digits) needs no
	// lookup, and no fallback games.
	if h.Addr.IsValid() {
		zone := ""
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			zone = a.Zone()
		}
		return pick(c, &net.IPAddr{IP: h.Addr.AsSlice(), Zone: zone}, policy, logger)
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
	// One string for both: a probe's log lives as long as its Result.
	logger.Info("resolved target address", "ip", c.IPAddr)
	return addr, nil
}

// urlSchemeOnly are schemes recognised in a target even without "//".
var urlSchemeOnly = map[string]bool{
	"unix": true, "file": true, "mailto": true, "data": true, "javascript": true,
	"about": true, "urn": true, "tel": true, "news": true,
}

// targetScheme returns the lower-cased URL scheme target starts with, or ""
// for a host, host:port or bare address (which blackbox_exporter's http
// prober turns into http://target).
func targetScheme(target string) string {
	i := strings.IndexByte(target, ':')
	if i <= 0 {
		return ""
	}
	scheme := target[:i]
	for j, r := range scheme {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		other := r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'
		if !letter && (j == 0 || !other) {
			return ""
		}
	}
	scheme = strings.ToLower(scheme)
	if strings.HasPrefix(target[i+1:], "//") || urlSchemeOnly[scheme] {
		return scheme
	}
	return ""
}

// clipText keeps a message short whatever a caller sends.
func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// targetURL parses an http(s) target as the http prober and blackbox_exporter
// do: a target without a scheme gets http://, and it must name a host.
func targetURL(target string) (*url.URL, error) {
	if s := targetScheme(target); s != "" && s != "http" && s != "https" {
		return nil, fmt.Errorf("unsupported scheme %q: only http and https can be probed", clipText(s, 20))
	}
	if l := strings.ToLower(target); !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL, password and all
	}
	if err == nil && u.Host == "" {
		err = errors.New("the URL has no host")
	}
	return u, err
}

// RedactTarget hides the password of a target's user information
// (scheme://user:password@host or user:password@host) wherever a target is
// shown, as url.URL.Redacted does, without otherwise changing its text.
func RedactTarget(target string) string {
	start := 0
	if i := strings.Index(target, "://"); i >= 0 {
		start = i + 3
	}
	authority := target[start:]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return target
	}
	user := authority[:at]
	if i := strings.IndexByte(user, ':'); i >= 0 {
		user = user[:i+1] + "xxxxx"
	} else if user != "" {
		user = "xxxxx" // a lone user part may be a token
	}
	return target[:start] + user + target[start+at:]
}
