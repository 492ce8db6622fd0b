package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
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
	read     int64
	reserved int64
	// tls says whether the current round trip reads a TLS handshake first,
	// so the error names only what was read.
	tls bool
	// perRequest gives the reservation back at the end of each round trip
	// (the throughput prober makes thousands, discarding each response).
	perRequest bool
}

// begin starts a round trip; end marks its response headers as read.
func (g *headGuard) begin() { g.start(true) }

// start begins a round trip that reads a TLS handshake before the headers
// or not.
func (g *headGuard) start(tls bool) {
	g.mu.Lock()
	g.active, g.read, g.tls = true, 0, tls
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
		if !g.tls {
			return fmt.Errorf("the response headers are larger than %d bytes", maxResponseHead)
		}
		return fmt.Errorf("the TLS handshake and response headers are larger than %d bytes", maxResponseHead)
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
	t.g.begin()
	defer t.g.end()
	return t.rt.RoundTrip(r)
}

// CloseIdleConnections passes on to the wrapped transport.
func (t *guardedTransport) CloseIdleConnections() { closeIdle(t.rt) }
