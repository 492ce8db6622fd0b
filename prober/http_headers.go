package prober

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// maxResponseHead bounds what one request of an http probe may read before
// its response headers are in: the TLS handshake and the headers. net/http
// would take up to 10 MiB of headers a request, and the round tripper from
// prometheus/common gives no way to lower it; a real site sends a few KiB.
const maxResponseHead = 1 << 20

// headGuard counts the bytes the probe's connections read while a round
// trip waits for its response (the handshake and the headers), fails the
// read past maxResponseHead, and reserves what it counted from the memory
// budget until the probe ends.
type headGuard struct {
	mu       sync.Mutex
	active   bool
	tls      bool // the round trip is https: the handshake counts too
	read     int64
	reserved int64
	// perRequest gives the reservation back at the end of each round trip
	// (the throughput prober makes thousands, discarding each response).
	perRequest bool
}

// begin starts the round trip of r and returns r traced, so that an
// HTTP/2 round trip stops counting when its headers are in; end marks the
// response headers as read.
//
// Over HTTP/1.1 the caller reads the body, after the round trip returns.
// Over HTTP/2 the connection's read loop takes DATA frames (up to the
// stream's flow-control window, 4 MiB) as soon as they come, before the
// round trip returns: counting those as "headers" failed every fast h2
// download. Its HEADERS frames are read and decoded whole before the
// transport reports the first response byte, so that is where h2 stops.
func (g *headGuard) begin(r *http.Request) *http.Request {
	g.start(r.URL.Scheme == "https")
	var h2 atomic.Bool // set in the round trip, read in the read loop
	trace := &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) {
			if c, ok := i.Conn.(*tls.Conn); ok {
				h2.Store(c.ConnectionState().NegotiatedProtocol == "h2")
			}
		},
		GotFirstResponseByte: func() {
			if h2.Load() {
				g.mu.Lock()
				g.active = false
				g.mu.Unlock()
			}
		},
	}
	return r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
}

// start starts a round trip that is not an http.Request's (a websocket
// upgrade, never HTTP/2); overTLS says whether a handshake counts too.
func (g *headGuard) start(overTLS bool) {
	g.mu.Lock()
	g.active, g.read, g.tls = true, 0, overTLS
	g.mu.Unlock()
}

func (g *headGuard) end() {
	g.mu.Lock()
	g.active = false
	g.mu.Unlock()
	if g.perRequest {
		g.release()
	}
}

// release gives the reservation back (when the probe is done).
func (g *headGuard) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	budget.Release(g.reserved)
	g.reserved = 0
}

func (g *headGuard) count(n int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.active || n <= 0 {
		return nil
	}
	g.read += int64(n)
	if g.read > maxResponseHead {
		if g.tls {
			return fmt.Errorf("the TLS handshake and response headers are larger than %d bytes", maxResponseHead)
		}
		return fmt.Errorf("the response headers are larger than %d bytes", maxResponseHead)
	}
	if err := budget.Reserve(int64(n)); err != nil {
		return fmt.Errorf("response headers: %w", err)
	}
	g.reserved += int64(n)
	return nil
}

// dial wraps a dial function so that its connections report to g.
func (g *headGuard) dial(dial func(ctx context.Context, network, address string) (net.Conn, error)) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return &guardedConn{Conn: c, g: g}, nil
	}
}

type guardedConn struct {
	net.Conn
	g *headGuard
}

func (c *guardedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if gerr := c.g.count(n); gerr != nil {
		return 0, gerr
	}
	return n, err
}

// guardedTransport brackets every round trip with begin and end, for
// clients whose requests are not made through httpTransport.
type guardedTransport struct {
	rt http.RoundTripper
	g  *headGuard
}

func (t *guardedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = t.g.begin(r)
	defer t.g.end()
	return t.rt.RoundTrip(r)
}

// CloseIdleConnections passes on to the wrapped transport.
func (t *guardedTransport) CloseIdleConnections() { closeIdle(t.rt) }
