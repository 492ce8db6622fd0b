//go:build linux

package server

import (
	"bytes"
	"net"

	"golang.org/x/sys/unix"
)

// requestQueued reports whether a whole request head without a body waits
// to be read on c: in what a Parker read past the last request (a
// headConn), or in the socket's receive queue. Serving it then waits on
// nothing from the client. A TLS connection, a client that sent nothing
// yet or only part of its head: false. A request with a body too: net/http
// reads (discards) what its handler left unread, and a handler that does
// not give the place back as it starts (exporter-toolkit's refusals, a
// path that ends in /probe but is not /probe) would hold it for hold
// waiting on the client.
func requestQueued(c net.Conn) bool {
	if hc, ok := c.(*headConn); ok {
		if i := bytes.Index(hc.head, headEnd); i >= 0 {
			return !hasBody(hc.head[:i])
		}
		c = hc.Conn
	}
	buf := peekBufs.Get().(*[peekLen]byte)
	defer peekBufs.Put(buf)
	n, err := recvNow(c, buf[:], unix.MSG_PEEK)
	if err != nil || n <= 0 {
		return false
	}
	i := bytes.Index(buf[:n], headEnd)
	return i >= 0 && !hasBody(buf[:i])
}

// deferAccept asks the kernel to hand l's connections to accept only once
// their first bytes arrived (TCP_DEFER_ACCEPT), so a new connection comes
// with its request queued and passes the gate (requestQueued), and one
// that sends nothing costs only kernel memory until it does or, after
// deferAcceptSeconds and the kernel's next SYN-ACK retransmit (1-3 s), is
// accepted as before (net/http's header timeout starts then). Listeners
// that are not TCP (a Parker's hand-back listener, TLS's wrapper) are left as they are; a
// socket-activated one is systemd's, and keeps the option.
func deferAccept(l net.Listener) {
	raw, ok := socketOf(l)
	if !ok {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	})
}

// deferAcceptSeconds is how long the kernel holds a silent connection
// back: the least, so --web.read-header-timeout still closes a silent
// client about when it did.
const deferAcceptSeconds = 1
