package prober

import "syscall"

// setBroadcast sets SO_BROADCAST on a socket (localRoute's): Windows
// takes a Handle where Unix takes an int.
func setBroadcast(fd uintptr) {
	_ = syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
}
