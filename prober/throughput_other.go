//go:build !linux

package prober

import (
	"errors"
	"net"
	"syscall"
)

// tcpBytesAcked is only available on Linux; elsewhere uploads are counted
// by the bytes written.
func tcpBytesAcked(*net.TCPConn) (int64, bool) { return 0, false }

func setCongestionControl(syscall.RawConn, string) error {
	return errors.New("congestion_control is only supported on Linux")
}
