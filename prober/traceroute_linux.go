//go:build linux

package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// openTraceSockets opens the sockets of one trace, in the calling thread's
// network namespace:
//
//   - a raw ICMP (ICMPv6) socket that receives the routers' errors and the
//     echo replies, with the kernel's ICMP type filter set so that it is
//     not woken by anything else; in icmp mode it also sends the probes;
//   - udp: a UDP socket bound to an ephemeral port, only to reserve the
//     port for the trace, and a raw UDP socket that sends the probes (their
//     checksum is ours to choose, see buildUDP) and drops everything it
//     would receive (a BPF filter that accepts nothing);
//   - tcp: a TCP socket bound (never listening or connecting) to reserve
//     the source port, and a raw TCP socket that sends the SYNs and
//     receives, through a BPF filter on the ports, the destination's SYN-ACK
//     or RST.
//
// All raw sockets are bound to the source address, which the checksums
// of udp and tcp probes cover: source_ip_address, or the address the
// kernel picks for the route to dst. Of the echo replies the ICMP socket
// takes only those with the trace's identifier id (none in udp and tcp
// mode: id is 0); see echoIDFilter.
func openTraceSockets(o config.TracerouteProbe, dst netip.Addr, zone string, id uint16) (*traceSockets, error) {
	v6 := dst.Is6()
	src, err := routeSource(o.SourceIPAddress, dst, zone, o.Port)
	if err != nil {
		return nil, err
	}
	s := &traceSockets{src: src}
	var (
		closers []func()
		once    sync.Once
	)
	s.close = func() {
		once.Do(func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		})
	}
	fail := func(err error) (*traceSockets, error) {
		s.close()
		return nil, err
	}
	to := &net.IPAddr{IP: dst.AsSlice(), Zone: zone}

	icmpNet := "ip4:icmp"
	if v6 {
		icmpNet = "ip6:ipv6-icmp"
	}
	ic, err := listenRaw(icmpNet, src, zone)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = ic.Close() })
	if err := setICMPFilter(ic, v6); err != nil {
		return fail(fmt.Errorf("setting the ICMP type filter: %w", err))
	}
	if err := setBPF(ic, v6, echoIDFilter(v6, id)); err != nil {
		return fail(fmt.Errorf("setting the echo identifier filter: %w", err))
	}
	s.icmp = ic

	switch o.Protocol {
	case config.TracerouteProtocolICMP:
		s.send = rawSender(ic, v6, to)
	case config.TracerouteProtocolUDP:
		network := "udp4"
		if v6 {
			network = "udp6"
		}
		uc, err := net.ListenUDP(network, &net.UDPAddr{IP: src.AsSlice(), Zone: zone})
		if err != nil {
			return fail(fmt.Errorf("reserving a UDP source port: %w", err))
		}
		closers = append(closers, func() { _ = uc.Close() })
		s.sport = uint16(uc.LocalAddr().(*net.UDPAddr).Port)
		raw, err := listenRaw(rawNet(v6, "udp"), src, zone)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { _ = raw.Close() })
		if err := setBPF(raw, v6, []bpf.Instruction{bpf.RetConstant{Val: 0}}); err != nil {
			return fail(fmt.Errorf("setting a receive filter on the raw UDP socket: %w", err))
		}
		s.send = rawSender(raw, v6, to)
	case config.TracerouteProtocolTCP:
		fd, port, err := reserveTCPPort(src, zone)
		if err != nil {
			return fail(fmt.Errorf("reserving a TCP source port: %w", err))
		}
		closers = append(closers, func() { _ = unix.Close(fd) })
		s.sport = port
		raw, err := listenRaw(rawNet(v6, "tcp"), src, zone)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, func() { _ = raw.Close() })
		if err := setBPF(raw, v6, tcpReplyFilter(v6, uint16(o.Port), port)); err != nil {
			return fail(fmt.Errorf("setting a receive filter on the raw TCP socket: %w", err))
		}
		s.tcp = raw
		s.send = rawSender(raw, v6, to)
	default:
		return fail(fmt.Errorf("protocol %q is not valid (icmp, udp or tcp)", o.Protocol))
	}
	return s, nil
}

func rawNet(v6 bool, proto string) string {
	if v6 {
		return "ip6:" + proto
	}
	return "ip4:" + proto
}

// routeSource returns source (when set) or the source address the kernel
// picks for packets to dst: connecting a UDP socket runs the route lookup
// and sends nothing.
func routeSource(source string, dst netip.Addr, zone string, port int) (netip.Addr, error) {
	if source != "" {
		a, err := netip.ParseAddr(source)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("source_ip_address %q is not an IP address", source)
		}
		a = a.Unmap()
		if a.Is6() != dst.Is6() {
			return netip.Addr{}, fmt.Errorf("source_ip_address %s and target %s are not of the same IP version", a, dst)
		}
		return a, nil
	}
	network := "udp4"
	if dst.Is6() {
		network = "udp6"
	}
	if port == 0 {
		port = config.DefaultTracerouteUDPPort
	}
	c, err := net.DialUDP(network, nil, &net.UDPAddr{IP: dst.AsSlice(), Port: port, Zone: zone})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to %s: %w", dst, err)
	}
	defer func() { _ = c.Close() }()
	la, _ := netip.AddrFromSlice(c.LocalAddr().(*net.UDPAddr).IP)
	return la.Unmap(), nil
}

// listenRaw opens a raw IP socket bound to src. A refusal says how to grant
// the capability raw sockets need.
func listenRaw(network string, src netip.Addr, zone string) (net.PacketConn, error) {
	addr := src.String()
	if zone != "" && src.Is6() && src.IsLinkLocalUnicast() {
		addr += "%" + zone
	}
	c, err := (&net.ListenConfig{}).ListenPacket(context.Background(), network, addr)
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			return nil, fmt.Errorf("raw socket (%s) not allowed: %w: %s", network, err, rawSocketFix())
		}
		return nil, fmt.Errorf("raw socket (%s): %w", network, err)
	}
	return c, nil
}

// rawSocketFix says how to allow raw sockets. (The ICMP prober has the same
// advice; this copy keeps the two probers independent.)
func rawSocketFix() string {
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, ".test") {
		exe = "/path/to/isp-checker"
	}
	return fmt.Sprintf("raw sockets need CAP_NET_RAW: run as root or grant it with `setcap cap_net_raw+ep %s`", exe)
}

// rawSender sends b to the destination with a TTL (hop limit) set on the
// socket just before; run sends from one goroutine.
func rawSender(c net.PacketConn, v6 bool, to *net.IPAddr) func(int, []byte) error {
	if v6 {
		p := ipv6.NewPacketConn(c)
		return func(ttl int, b []byte) error {
			if err := p.SetHopLimit(ttl); err != nil {
				return fmt.Errorf("setting hop limit %d: %w", ttl, err)
			}
			_, err := c.WriteTo(b, to)
			return err
		}
	}
	p := ipv4.NewPacketConn(c)
	return func(ttl int, b []byte) error {
		if err := p.SetTTL(ttl); err != nil {
			return fmt.Errorf("setting TTL %d: %w", ttl, err)
		}
		_, err := c.WriteTo(b, to)
		return err
	}
}

// setICMPFilter lets through only echo replies and the errors a probe can
// cause (destination unreachable, time exceeded, packet too big).
func setICMPFilter(c net.PacketConn, v6 bool) error {
	if v6 {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		for _, t := range []ipv6.ICMPType{ipv6.ICMPTypeEchoReply, ipv6.ICMPTypeDestinationUnreachable,
			ipv6.ICMPTypePacketTooBig, ipv6.ICMPTypeTimeExceeded} {
			f.Accept(t)
		}
		return ipv6.NewPacketConn(c).SetICMPFilter(&f)
	}
	var f ipv4.ICMPFilter
	f.SetAll(true)
	for _, t := range []ipv4.ICMPType{ipv4.ICMPTypeEchoReply, ipv4.ICMPTypeDestinationUnreachable, ipv4.ICMPTypeTimeExceeded} {
		f.Accept(t)
	}
	return ipv4.NewPacketConn(c).SetICMPFilter(&f)
}

// echoIDFilter passes ICMP errors and, of the echo replies, only those
// carrying identifier id (none when id is 0). A raw ICMP socket gets a copy
// of every ICMP packet of the host, the echo engine's replies included (at
// 10,000 probes, 10,000 a second): without it a trace or a path-MTU search
// would wake for each and drop it in Go. An IPv4 raw socket's filter sees
// the IP header first (its length is the low nibble of byte 0); an IPv6 one
// starts at the ICMPv6 header. The type filter (setICMPFilter) has already
// dropped every other type.
func echoIDFilter(v6 bool, id uint16) []bpf.Instruction {
	const accept, drop = 0x40000, 0 // accept: mtu replies are up to 64 KiB
	reply := uint32(icmpwire.ICMP4EchoReply)
	load := []bpf.Instruction{bpf.LoadMemShift{Off: 0}, bpf.LoadIndirect{Off: 0, Size: 1}}
	loadID := bpf.Instruction(bpf.LoadIndirect{Off: 4, Size: 2})
	if v6 {
		reply = icmpwire.ICMP6EchoReply
		load = []bpf.Instruction{bpf.LoadAbsolute{Off: 0, Size: 1}}
		loadID = bpf.LoadAbsolute{Off: 4, Size: 2}
	}
	if id == 0 {
		return append(load,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: reply, SkipTrue: 1},
			bpf.RetConstant{Val: accept}, // an error
			bpf.RetConstant{Val: drop},
		)
	}
	return append(load,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: reply, SkipFalse: 3},
		loadID,
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(id), SkipFalse: 2},
		bpf.RetConstant{Val: accept},
		bpf.RetConstant{Val: accept}, // an error
		bpf.RetConstant{Val: drop},
	)
}

// setBPF attaches a socket filter.
func setBPF(c net.PacketConn, v6 bool, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	if v6 {
		return ipv6.NewPacketConn(c).SetBPF(raw)
	}
	return ipv4.NewPacketConn(c).SetBPF(raw)
}

// tcpReplyFilter accepts TCP segments from the destination port to our
// source port. An IPv4 raw socket's filter sees the IP header first (its
// length is in the low nibble of byte 0); an IPv6 one sees the TCP header.
func tcpReplyFilter(v6 bool, dport, sport uint16) []bpf.Instruction {
	ports := []bpf.Instruction{
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dport), SkipTrue: 3},
		nil, // load the destination port
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(sport), SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
	if v6 {
		ports[1] = bpf.LoadAbsolute{Off: 2, Size: 2}
		return append([]bpf.Instruction{bpf.LoadAbsolute{Off: 0, Size: 2}}, ports...)
	}
	ports[1] = bpf.LoadIndirect{Off: 2, Size: 2}
	return append([]bpf.Instruction{bpf.LoadMemShift{Off: 0}, bpf.LoadIndirect{Off: 0, Size: 2}}, ports...)
}

// reserveTCPPort binds a TCP socket to an ephemeral port of src and keeps
// it: the kernel hands that port to no other socket, and, as the socket
// neither listens nor connects, answers the destination's SYN-ACKs to it
// with a RST, which clears the half-open connection at the destination.
func reserveTCPPort(src netip.Addr, zone string) (int, uint16, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if src.Is4() {
		sa = &unix.SockaddrInet4{Addr: src.As4()}
	} else {
		family = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{Addr: src.As16()}
		if zone != "" {
			if ifi, err := net.InterfaceByName(zone); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return -1, 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		_ = unix.Close(fd)
		return -1, 0, err
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		return fd, uint16(a.Port), nil
	case *unix.SockaddrInet6:
		return fd, uint16(a.Port), nil
	}
	_ = unix.Close(fd)
	return -1, 0, errors.New("bound TCP socket has no port")
}
