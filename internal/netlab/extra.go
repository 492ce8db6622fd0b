package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// extraPrefixes are the only addresses outside the lab's slot that AddAddress
// gives a node: IPv6 unique-local and link-local, which nothing routes off a
// machine by default. (169.254.169.254 is not offered: a host route for it
// would take the machine's own metadata service away from every process.)
var extraPrefixes = []netip.Prefix{netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10")}

// AddAddress gives this end, which must face the client, the extra IPv6
// address a (unique-local or link-local), so a test can stand up a server
// where a real network has something the exporter must never reach, such
// as the cloud metadata service on fd00:ec2::254 or a router on fe80::254.
//
// A unique-local address gets a host route from the client over this link
// and a client-guard rule that drops it on any other interface, so its
// packets cannot leave the machine even if the route went away; both go at
// teardown with the lab's interface and table. A link-local address needs
// no route: dial it with the client end's interface as the zone,
// a%<e.Peer().Name>.
func (e *End) AddAddress(a netip.Addr) {
	l := e.Node.lab
	l.t.Helper()
	p := e.Peer()
	if !p.Node.IsClient() {
		l.t.Fatalf("netlab: AddAddress on %s: the end must face the client", e)
	}
	extra := extraPrefixes[0].Contains(a) || extraPrefixes[1].Contains(a)
	if !a.Is6() || a.Zone() != "" || !extra {
		l.t.Fatalf("netlab: AddAddress %s: only unique-local or link-local IPv6 addresses, without a zone", a)
	}
	bits := 128
	if a.IsLinkLocalUnicast() {
		bits = 64
	} else {
		// The host route is machine-wide: one lab at a time may hold it.
		l.lockExtra(a)
	}
	l.must(e.Node.ip("addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", e.Name, "nodad"))
	if a.IsLinkLocalUnicast() {
		return
	}
	l.ensureHostTable()
	guard := p.Node.nft(l.hostTableName(), "guard", fmt.Sprintf(`ip6 daddr %s oifname != %q counter drop comment "netlab client guard"`, a, p.Name))
	l.must(run("ip", "-6", "route", "replace", a.String()+"/128", "via", e.IPv6.String(), "dev", p.Name, "src", p.IPv6.String()))
	// Undone before the lock is released (closers run in reverse order).
	l.onCleanup(func() {
		_ = run("ip", "-6", "route", "del", a.String()+"/128", "dev", p.Name)
		_ = guard.Remove()
	})
}

// lockExtra holds an exclusive flock on the address's lock file until
// teardown, waiting while another lab (in any process) holds it.
func (l *Lab) lockExtra(a netip.Addr) {
	l.t.Helper()
	l.must(os.MkdirAll(lockDir, 0o755))
	name := filepath.Join(lockDir, "addr-"+strings.ReplaceAll(a.String(), ":", "_")+".lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	l.must(err)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			l.t.Fatalf("netlab: flock %s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.onCleanup(func() { _ = f.Close() })
}
