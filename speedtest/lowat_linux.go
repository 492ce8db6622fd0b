package speedtest

import "golang.org/x/sys/unix"

// setNotSentLowat sets TCP_NOTSENT_LOWAT; an error (an old kernel) leaves
// the socket as it was, which only costs latency.
func setNotSentLowat(fd uintptr, v int) {
	_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, v)
}
