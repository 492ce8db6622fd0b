package prober

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/net/icmp"

	"github.com/isp-checker/isp-checker/config"
)

// ICMP socket modes, as reported in ICMPResult.SocketMode.
const (
	ICMPSocketPrivileged   = config.ICMPSocketPrivileged   // raw socket, needs CAP_NET_RAW
	ICMPSocketUnprivileged = config.ICMPSocketUnprivileged // datagram ICMP ("ping socket")
)

// icmpPingGroupRangeFile is read to explain a refused unprivileged socket. It
// shows the value of the network namespace of the reading thread.
var icmpPingGroupRangeFile = "/proc/sys/net/ipv4/ping_group_range"

// icmpSocketMode decides which ICMP socket a probe uses. want is the
// module's socket option: auto tries an unprivileged datagram socket first
// (as blackbox_exporter does: the kernel then picks a unique identifier and
// hands each socket only its own replies), then a raw socket. It opens and
// closes a socket of each kind it tries, in the calling goroutine's thread
// (hence network namespace). The error says what to change when no mode
// works.
func icmpSocketMode(want string, ipv6 bool) (mode string, tried []string, err error) {
	switch want {
	case config.ICMPSocketPrivileged:
		if err := icmpTrySocket(true, ipv6); err != nil {
			return "", nil, icmpPrivilegedError(err)
		}
		return ICMPSocketPrivileged, nil, nil
	case config.ICMPSocketUnprivileged:
		if err := icmpTrySocket(false, ipv6); err != nil {
			return "", nil, icmpUnprivilegedError(err)
		}
		return ICMPSocketUnprivileged, nil, nil
	}
	uerr := icmpTrySocket(false, ipv6)
	if uerr == nil {
		return ICMPSocketUnprivileged, nil, nil
	}
	tried = append(tried, fmt.Sprintf("unprivileged: %v", uerr))
	perr := icmpTrySocket(true, ipv6)
	if perr == nil {
		return ICMPSocketPrivileged, tried, nil
	}
	return "", tried, fmt.Errorf("no ICMP socket is allowed (raw: %w; datagram: %w): %s; %s; or use protocol: tcp",
		perr, uerr, icmpPrivilegedFix(), icmpUnprivilegedFix())
}

// tryICMPSocket opens and closes an ICMP socket of one kind.
func icmpTrySocket(privileged, ipv6 bool) error {
	network := map[[2]bool]string{
		{true, false}: "ip4:icmp", {true, true}: "ip6:ipv6-icmp",
		{false, false}: "udp4", {false, true}: "udp6",
	}[[2]bool{privileged, ipv6}]
	addr := "0.0.0.0"
	if ipv6 {
		addr = "::"
	}
	c, err := icmp.ListenPacket(network, addr)
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			return se.Err
		}
		return err
	}
	return c.Close()
}

func icmpPrivilegedError(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("raw ICMP socket (socket: privileged) not allowed: %w: %s", err, icmpPrivilegedFix())
	}
	return fmt.Errorf("raw ICMP socket (socket: privileged): %w", err)
}

func icmpUnprivilegedError(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("unprivileged ICMP socket (socket: unprivileged) not allowed: %w: %s", err, icmpUnprivilegedFix())
	}
	return fmt.Errorf("unprivileged ICMP socket (socket: unprivileged): %w", err)
}

func icmpPrivilegedFix() string {
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, ".test") {
		exe = "/path/to/isp-checker"
	}
	return fmt.Sprintf("raw sockets need CAP_NET_RAW: run as root or grant it with `setcap cap_net_raw+ep %s`", exe)
}

func icmpUnprivilegedFix() string {
	cur := "unknown"
	if b, err := os.ReadFile(icmpPingGroupRangeFile); err == nil {
		cur = strings.Join(strings.Fields(string(b)), " ")
	}
	return fmt.Sprintf("unprivileged ICMP sockets need the process's group (gid %d) inside net.ipv4.ping_group_range (now %q): "+
		"allow it with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`", os.Getegid(), cur)
}
