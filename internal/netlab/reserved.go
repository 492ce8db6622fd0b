package netlab

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// registryHosts are the package registries this machine reaches. On this
// workplace they resolve to documentation-range addresses behind the
// default route, so a lab slot must not cover them.
var registryHosts = []string{"proxy.golang.org", "sum.golang.org", "deb.debian.org", "security.debian.org", "registry.npmjs.org"}

var (
	reservedOnce sync.Once
	reservedList []netip.Addr
)

// registryAddrs resolves the registries (once per process) through the
// system resolver; names from $GOPROXY and apt's sources are added.
func registryAddrs() []netip.Addr {
	reservedOnce.Do(func() {
		names := append([]string(nil), registryHosts...)
		for _, p := range strings.FieldsFunc(os.Getenv("GOPROXY"), func(r rune) bool { return r == ',' || r == '|' }) {
			if u, err := url.Parse(p); err == nil && u.Hostname() != "" {
				names = append(names, u.Hostname())
			}
		}
		files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
		for _, f := range append(files, "/etc/apt/sources.list") {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, w := range strings.Fields(string(data)) {
				if u, err := url.Parse(w); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" {
					names = append(names, u.Hostname())
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		for _, n := range names {
			addrs, err := net.DefaultResolver.LookupHost(ctx, n)
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if ip, err := netip.ParseAddr(a); err == nil {
					reservedList = append(reservedList, ip.Unmap())
				}
			}
		}
	})
	return reservedList
}

// reservedAddrs are addresses the host really uses and the lab must never
// route into a namespace: its own interface addresses, its resolvers, and
// every address in /etc/hosts, and the package registries' addresses. On this workplace's machines the package
// registries (Go proxy, Debian, npm) live at documentation-range addresses
// named in /etc/hosts, and the host's own LAN is 192.0.2.0/24; a lab slot that
// covered them would cut the machine off from its registries while the test
// runs, and send the lab's packets for them to the wrong place.
func reservedAddrs() []netip.Addr {
	out := append([]netip.Addr(nil), registryAddrs()...)
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	for _, file := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			if file == "/etc/resolv.conf" {
				if fields[0] == "nameserver" && len(fields) > 1 {
					add(fields[1])
				}
				continue
			}
			add(fields[0])
		}
		f.Close()
	}
	for _, ipn := range hostInterfaceNets() {
		add(ipn.IP.String())
	}
	return out
}

// slotReserved reports whether lab slot s would cover an address the host
// uses (see reservedAddrs).
func slotReserved(s int, reserved []netip.Addr) bool {
	l := &Lab{slot: s}
	for _, p := range []netip.Prefix{l.poolPrefix(0), l.poolPrefix(1), l.prefix6()} {
		for _, a := range reserved {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// hostInterfaceNets are the addresses (with their prefixes) of the host's
// own interfaces, lab interfaces ("nlab…") left out.
func hostInterfaceNets() []*net.IPNet {
	var out []*net.IPNet
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, "nlab") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				out = append(out, ipn)
			}
		}
	}
	return out
}
