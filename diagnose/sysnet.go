package diagnose

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Where the system's network settings are read from; tests point them at
// fixtures.
var (
	RouteFile     = "/proc/net/route"
	IPv6RouteFile = "/proc/net/ipv6_route"
	ResolvConf    = "/etc/resolv.conf"
	// PingGroupRangeFile holds the groups allowed unprivileged ping
	// sockets, quoted in the fix when ping is not allowed.
	PingGroupRangeFile = "/proc/sys/net/ipv4/ping_group_range"
)

// DefaultGateway returns the gateway of the default route with the lowest
// metric: IPv4 from RouteFile, else IPv6 from IPv6RouteFile (a link-local
// IPv6 gateway comes with its zone, fe80::1%eth0). It reads files only.
func DefaultGateway() (string, error) {
	var errs []error
	if f, err := os.Open(RouteFile); err == nil {
		gw, err := ParseRoute(f)
		f.Close()
		if err == nil {
			return gw, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", RouteFile, err))
	} else {
		errs = append(errs, err)
	}
	if f, err := os.Open(IPv6RouteFile); err == nil {
		gw, err := ParseIPv6Route(f)
		f.Close()
		if err == nil {
			return gw, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", IPv6RouteFile, err))
	} else {
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// errNoDefault says a routing table has no default route with a gateway.
var errNoDefault = errors.New("no default route with a gateway")

// ParseRoute reads /proc/net/route and returns the gateway of the default
// route (destination and mask 0, flags up and gateway) with the lowest
// metric.
func ParseRoute(r io.Reader) (string, error) {
	const rtfUp, rtfGateway = 0x1, 0x2
	sc := bufio.NewScanner(r)
	best, bestMetric := "", int64(-1)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue // the header, or a short line
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.ParseInt(f[6], 10, 64)
		if err1 != nil || err2 != nil || f[1] != "00000000" || f[7] != "00000000" || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) != 4 {
			continue
		}
		// The kernel writes the address in host byte order: little-endian here.
		ip := netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
		if ip.IsUnspecified() {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = ip.String(), metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if best == "" {
		return "", errNoDefault
	}
	return best, nil
}

// ParseIPv6Route reads /proc/net/ipv6_route and returns the gateway of the
// default route (::/0 with a gateway) with the lowest metric, with its
// interface as zone when it is link-local.
func ParseIPv6Route(r io.Reader) (string, error) {
	const rtfUp, rtfGateway = 0x1, 0x2
	sc := bufio.NewScanner(r)
	best, bestMetric := "", uint64(0)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		metric, err1 := strconv.ParseUint(f[5], 16, 32)
		flags, err2 := strconv.ParseUint(f[8], 16, 32)
		b, err3 := hex.DecodeString(f[4])
		if err1 != nil || err2 != nil || err3 != nil || len(b) != 16 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		ip := netip.AddrFrom16([16]byte(b))
		if ip.IsUnspecified() {
			continue
		}
		if ip.IsLinkLocalUnicast() {
			ip = ip.WithZone(f[9])
		}
		if best == "" || metric < bestMetric {
			best, bestMetric = ip.String(), metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if best == "" {
		return "", errNoDefault
	}
	return best, nil
}

// SystemResolvers returns the nameservers of ResolvConf.
func SystemResolvers() ([]string, error) {
	f, err := os.Open(ResolvConf)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseResolvConf(f)
}

// ParseResolvConf returns the nameserver addresses of a resolv.conf, in
// order, as the dns prober takes them (an IPv6 address in brackets with
// port 53 when it carries a zone, since a bare one cannot say it).
func ParseResolvConf(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	var out []string
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		if a.Zone() != "" {
			out = append(out, net.JoinHostPort(a.String(), "53"))
		} else {
			out = append(out, a.String())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no nameserver line")
	}
	return out, nil
}
