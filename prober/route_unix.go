//go:build !windows

package prober

import "syscall"

// setBroadcast sets SO_BROADCAST on a socket (localRoute's).
func setBroadcast(fd uintptr) {
	_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
}
