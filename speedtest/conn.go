package speedtest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn is what the responsiveness endpoints know of the connection a
// request came on; ConnContext puts one in every connection's context.
type conn struct {
	c net.Conn
	// transfers counts the load-generating transfers (large downloads,
	// uploads) running on the connection: a small request on a connection
	// without one is a foreign probe.
	transfers atomic.Int32

	mu     sync.Mutex // guards the rest
	sent   int64      // large-download payload bytes written on the connection
	markAt time.Time  // when sent was last sampled for the rate
	mark   int64
	lowat  int // TCP_NOTSENT_LOWAT in force, 0 before any
}

type connKey struct{}

// ConnContext is for http.Server.ConnContext: it lets the responsiveness
// endpoints reach the connection a request came on, to bound its unsent
// data (draft 09, § Server-Side Influence) and to let a foreign probe's
// connection go once it is answered. Without it they still work, without
// those two.
func (h *Handler) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &conn{c: c})
}

func connOf(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c
}

// begin and end bracket a load-generating transfer on the connection.
func (c *conn) begin() {
	if c != nil {
		c.transfers.Add(1)
	}
}

func (c *conn) end() {
	if c != nil {
		c.transfers.Add(-1)
	}
}

// busy reports a load-generating transfer on the connection.
func (c *conn) busy() bool { return c != nil && c.transfers.Load() > 0 }

// Bounds of the unsent data a large download keeps in the kernel. Below
// one HTTP/2 frame (16 KiB) every frame would wait for the one before;
// 4 MiB is the default largest send buffer.
const (
	minLowat = 16 << 10
	maxLowat = 4 << 20
	// rateWindow is how long a rate sample spans before the mark moves.
	rateWindow = 100 * time.Millisecond
)

// wrote records n payload bytes written and, every rateWindow, sets
// TCP_NOTSENT_LOWAT to sendBuffer worth of the connection's rate, as draft
// 09 asks of a server without TCP_REPLENISH_TIME: the kernel then holds
// about that much unsent data, so a self probe's response does not queue
// behind seconds of it. sendBuffer ≤ 0 turns this off.
func (c *conn) wrote(n int, sendBuffer time.Duration) {
	if c == nil || sendBuffer <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent += int64(n)
	now := time.Now()
	if c.markAt.IsZero() {
		c.markAt, c.mark = now, c.sent
		c.setLowat(minLowat)
		return
	}
	d := now.Sub(c.markAt)
	if d < rateWindow {
		return
	}
	rate := float64(c.sent-c.mark) / d.Seconds()
	c.markAt, c.mark = now, c.sent
	c.setLowat(min(max(int(rate*sendBuffer.Seconds()), minLowat), maxLowat))
}

// setLowat sets the socket option when it changes; c.mu is held. A
// connection that is not TCP (a test's pipe) or a system without the
// option is left as it is.
func (c *conn) setLowat(v int) {
	if v == c.lowat {
		return
	}
	c.lowat = v
	nc := c.c
	// A TLS connection, or one a Parker handed back with bytes in front.
	if u, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) { setNotSentLowat(fd, v) })
}
