//go:build linux

package prober

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpBytesAcked is the number of bytes the peer has acknowledged on c
// (tcpi_bytes_acked, Linux 4.1+): what an upload really delivered, unlike
// the bytes written, which include what still sits in the send buffer.
func tcpBytesAcked(c *net.TCPConn) (int64, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var (
		info *unix.TCPInfo
		ierr error
	)
	if err := raw.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil || info == nil {
		return 0, false
	}
	return int64(info.Bytes_acked), true
}

// setCongestionControl sets TCP_CONGESTION on a socket before it connects.
func setCongestionControl(c syscall.RawConn, name string) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting congestion_control %q: %w (see net.ipv4.tcp_available_congestion_control; "+
			"one not in tcp_allowed_congestion_control needs CAP_NET_ADMIN)", name, serr)
	}
	return nil
}
