//go:build linux

package prober

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// mtuReadBuffer is the receive buffer of the mtu probe's ICMP socket: the
// first round's replies on a jumbo-frame or loopback path add up to a few
// hundred kilobytes.
const mtuReadBuffer = 4 << 20

// openMTUSockets opens a raw ICMP (ICMPv6) socket bound to the source
// address, in the calling thread's network namespace.
//
// Its echo requests carry DF (IPv4) or may not be fragmented (IPv6:
// IPV6_DONTFRAG), and path-MTU discovery is set to "probe"
// (IP_PMTUDISC_PROBE, IPV6_PMTUDISC_PROBE): the kernel sends them up to the
// interface MTU whatever path MTU it has cached for the target. The kernel
// caches the next-hop MTU of every fragmentation-needed / packet-too-big it
// receives (for all traffic to that destination, for about ten minutes);
// without "probe" a second run would get EMSGSIZE for every size above the
// cached value and never see the path again, and a black hole found by
// silence would not be cached at all, so runs would disagree.
//
// Of the echo replies the socket takes only those with the probe's
// identifier id (see echoIDFilter).
func openMTUSockets(source string, dst netip.Addr, zone string, id uint16) (*mtuSockets, error) {
	v6 := dst.Is6()
	src, err := routeSource(source, dst, zone, 0)
	if err != nil {
		return nil, err
	}
	ifName, ifMTU := interfaceOf(src)
	network := "ip4:icmp"
	if v6 {
		network = "ip6:ipv6-icmp"
	}
	c, err := listenRaw(network, src, zone)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	s := &mtuSockets{src: src, ifName: ifName, ifMTU: ifMTU, conn: c,
		close: func() { once.Do(func() { _ = c.Close() }) }}
	if err := setICMPFilter(c, v6); err != nil {
		s.close()
		return nil, fmt.Errorf("setting the ICMP type filter: %w", err)
	}
	if err := setBPF(c, v6, echoIDFilter(v6, id)); err != nil {
		s.close()
		return nil, fmt.Errorf("setting the echo identifier filter: %w", err)
	}
	if err := setDontFragment(c, v6); err != nil {
		s.close()
		return nil, err
	}
	if rb, ok := c.(interface{ SetReadBuffer(int) error }); ok {
		_ = rb.SetReadBuffer(mtuReadBuffer)
	}
	to := &net.IPAddr{IP: dst.AsSlice(), Zone: zone}
	s.send = func(b []byte) error {
		_, err := c.WriteTo(b, to)
		if errors.Is(err, syscall.EMSGSIZE) {
			return fmt.Errorf("%d-byte echo request: %w", len(b), errMTUTooBigLocal)
		}
		return err
	}
	return s, nil
}

// setDontFragment sets "probe" path-MTU discovery (and, for IPv6, no
// fragmentation) on a raw socket.
func setDontFragment(c net.PacketConn, v6 bool) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("raw socket has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE); serr != nil {
				serr = fmt.Errorf("setting IPV6_MTU_DISCOVER: %w", serr)
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1); serr != nil {
				serr = fmt.Errorf("setting IPV6_DONTFRAG: %w", serr)
			}
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE); serr != nil {
			serr = fmt.Errorf("setting IP_MTU_DISCOVER: %w", serr)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// interfaceOf returns the name and MTU of the interface that has addr;
// ("", 1500) when none has (the search then tops out at 1500 bytes).
func interfaceOf(addr netip.Addr) (string, int) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", 1500
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == addr {
				return ifi.Name, ifi.MTU
			}
		}
	}
	return "", 1500
}
