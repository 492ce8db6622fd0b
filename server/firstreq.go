package server

import (
	"errors"
	"net"
	"syscall"
)

// Reading a new connection's first request (Parker.Listener).
//
// Served by net/http, the first request of every connection costs what a
// handed-back next request does (a connection goroutine, read and write
// buffers that a hijack never returns to net/http's pools), and a
// /probe's is then parked all the same: after a restart, or when
// Prometheus opens new connections, that is most of a round's memory
// (measured with bench/icmp: a fleet of 10,000 probes whose first round
// came on new connections peaked 30 MiB above the next). Through the
// Parker's listener a new connection is watched as an idle one is, and
// its first request read as a next one: the Parker serves a /probe that
// parks at once, and gives every other request, with its bytes, to
// net/http.

// Listener returns the listener srv is to serve in place of l: with
// ReadRequests on, every connection it accepts goes to the Parker, which
// reads its first request itself (see above) and hands it back to net/http
// unless it serves it; otherwise l itself. A connection that sends nothing
// is closed after srv's ReadHeaderTimeout (else its ReadTimeout), as
// net/http would. The Parker's listener never returns a connection to srv
// but one the Parker cannot watch.
func (p *Parker) Listener(l net.Listener) net.Listener {
	if !p.readNext || p.idle == nil {
		return l
	}
	return &firstListener{Listener: l, p: p}
}

type firstListener struct {
	net.Listener
	p *Parker
}

func (f *firstListener) Accept() (net.Conn, error) {
	for {
		c, err := f.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !f.p.takeFirst(c) {
			return c, nil
		}
	}
}

// SyscallConn is the listener's socket, for the admission gate's
// TCP_DEFER_ACCEPT (deferAccept).
func (f *firstListener) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := f.Listener.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// takeFirst watches a new connection for its first request; false when
// the Parker cannot take it (shutting down, no /probe handler yet, no
// socket), and net/http serves it as usual.
func (p *Parker) takeFirst(c net.Conn) bool {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed || p.quick.Load() == nil {
		return false
	}
	return p.idle.addFirst(c, p.firstTimeout)
}
