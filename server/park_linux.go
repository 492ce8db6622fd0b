//go:build linux

package server

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// idlePoller watches the Parker's idle connections for their next
// request, and its waiting probes' connections for a hang-up, with one
// epoll instance, so neither holds a goroutine or a buffer. Go's own
// poller keeps the descriptor too (edge triggered); nothing reads it until
// net/http has it back, and net/http reads before it waits, so the two
// never miss a byte between them.
type idlePoller struct {
	p      *Parker
	epfd   int
	wakefd int // an eventfd: close wakes the loop
	mu     sync.Mutex
	conns  map[uint64]*idleConn
	next   uint64
	idle   int // conns that wait for their next request, not a hang-up
	closed bool
	exited chan struct{}
}

type idleConn struct {
	conn net.Conn
	// due: when it is closed if its request's first bytes have not come
	// (zero: never; a waiting probe's connection has none). For a new
	// connection (first) it is also when its first head must be in.
	due   time.Time
	first bool
	// pk, when set: the connection's probe is still waiting, and the watch
	// is for its client's hang-up (watchHangup); a next request's bytes
	// end it.
	pk *parked
}

// wakeKey is the wake eventfd's key; connections' keys start at 1.
const wakeKey = 0

func newIdlePoller(p *Parker) *idlePoller {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		p.logger.Warn("cannot watch idle connections with epoll: they stay with net/http", "err", err)
		return nil
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		if err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
			_ = unix.Close(wakefd)
		}
	}
	if err != nil {
		_ = unix.Close(epfd)
		p.logger.Warn("cannot watch idle connections with epoll: they stay with net/http", "err", err)
		return nil
	}
	ip := &idlePoller{p: p, epfd: epfd, wakefd: wakefd, conns: map[uint64]*idleConn{}, exited: make(chan struct{})}
	go ip.loop()
	return ip
}

// add watches conn until it is readable (its next request, or its close);
// false when it cannot (then the caller hands it back at once).
func (ip *idlePoller) add(conn net.Conn) bool {
	return ip.watch(conn, nil, ip.p.idleTimeout, false)
}

// addFirst watches a new connection until its first request's bytes
// arrive, for at most timeout (0: forever); false when it cannot.
func (ip *idlePoller) addFirst(conn net.Conn, timeout time.Duration) bool {
	return ip.watch(conn, nil, timeout, true)
}

// watchHangup watches the connection of pk, whose probe waits, for its
// client's hang-up (Parker.hangup), as net/http's background read ends a
// request's context when its client goes; false when it cannot. As that
// read does, the watch ends at the first byte of a next request: a client
// that pipelines one and then half-closes gets both answers.
func (ip *idlePoller) watchHangup(pk *parked) bool {
	return ip.watch(pk.conn, pk, 0, false)
}

// socketOf is x's socket (a connection's or a listener's), if it has one.
func socketOf(x any) (syscall.RawConn, bool) {
	sc, ok := x.(syscall.Conn)
	if !ok {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	return raw, err == nil
}

// hungUp reports whether conn's client closed it (or it broke) with
// nothing left to read: its next request's bytes mean it did not.
func hungUp(conn net.Conn) bool {
	var b [1]byte
	n, err := recvNow(conn, b[:], unix.MSG_PEEK)
	if errors.Is(err, errNoSocket) {
		return false
	}
	return err != nil || n == 0 // a reset or a closed socket; the client's FIN
}

// errNoSocket is recvNow's for a connection without a socket of its own.
var errNoSocket = errors.New("the connection has no socket")

// recvNow reads what conn's socket holds (peeks, with MSG_PEEK in
// flags), without waiting: -1 when it holds nothing, 0 when its client
// closed it, an error when it broke or is closed.
func recvNow(conn net.Conn, b []byte, flags int) (int, error) {
	raw, ok := socketOf(conn)
	if !ok {
		return 0, errNoSocket
	}
	var n int
	var rerr error
	if err := raw.Control(func(fd uintptr) {
		n, rerr = recv(int(fd), b, flags|unix.MSG_DONTWAIT)
	}); err != nil {
		return 0, err
	}
	switch {
	case errors.Is(rerr, unix.EAGAIN), errors.Is(rerr, unix.EINTR):
		return -1, nil
	case rerr != nil:
		return 0, rerr
	}
	return n, nil
}

// recv is recv(2): unix.Recvfrom would allocate the sender's address,
// which a TCP socket never gives.
func recv(fd int, b []byte, flags int) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(p), uintptr(len(b)), uintptr(flags), 0, 0)
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// unwatchHangup stops watching pk's connection (its probe ended), unless
// its hang-up was reported already.
func (ip *idlePoller) unwatchHangup(pk *parked) {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	if c := ip.conns[pk.watchKey]; c != nil && pk.watchKey != wakeKey {
		ip.drop(pk.watchKey, c)
	}
}

// watch arms conn's one-shot watch for readability or its peer's close,
// for pk's hang-up or (pk nil) its next request, which may take timeout
// (0: forever); first: a new connection's (addFirst).
func (ip *idlePoller) watch(conn net.Conn, pk *parked, timeout time.Duration, first bool) bool {
	raw, ok := socketOf(conn)
	if !ok {
		return false
	}
	ip.mu.Lock()
	defer ip.mu.Unlock()
	if ip.closed {
		return false
	}
	ip.next++
	key := ip.next
	var ctlErr error
	err := raw.Control(func(fd uintptr) {
		// A connection stays in the epoll set from its first watch until
		// it is closed (which takes it out), its one-shot watch disarmed
		// after each event: each later watch only re-arms it, one system
		// call where taking it out and adding it again were two more.
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
		if ctlErr = unix.EpollCtl(ip.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev); errors.Is(ctlErr, unix.ENOENT) {
			ctlErr = unix.EpollCtl(ip.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err != nil || ctlErr != nil {
		return false
	}
	c := &idleConn{conn: conn, pk: pk, first: first}
	if timeout > 0 {
		c.due = time.Now().Add(timeout)
	}
	ip.conns[key] = c
	if pk == nil {
		ip.idle++
	} else {
		pk.watchKey = key // under ip.mu: the loop may report it at once
	}
	return true
}

// idleSweep is how often idle connections are checked against the idle
// timeout.
const idleSweep = time.Second

func (ip *idlePoller) loop() {
	defer close(ip.exited)
	defer func() {
		_ = unix.Close(ip.epfd)
		_ = unix.Close(ip.wakefd)
	}()
	events := make([]unix.EpollEvent, 256)
	timeout := -1
	if ip.p.idleTimeout > 0 || ip.p.firstTimeout > 0 {
		timeout = int(idleSweep / time.Millisecond)
	}
	lastSweep := time.Now()
	for {
		n, err := unix.EpollWait(ip.epfd, events, timeout)
		if err != nil {
			n = 0
			if !errors.Is(err, unix.EINTR) { // a signal (the profiler's)
				ip.p.logger.Error("watching idle connections failed; closing them", "err", err)
				ip.close()
			}
		}
		ip.mu.Lock()
		if ip.closed {
			ip.mu.Unlock()
			return
		}
		ready := make([]*idleConn, 0, n)
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if c := ip.conns[key]; c != nil && key != wakeKey {
				ip.drop(key, c)
				ready = append(ready, c)
			}
		}
		var expired []*idleConn
		if now := time.Now(); timeout > 0 && now.Sub(lastSweep) >= idleSweep {
			lastSweep = now
			for key, c := range ip.conns {
				if c.pk == nil && !c.due.IsZero() && !now.Before(c.due) {
					ip.drop(key, c)
					expired = append(expired, c)
				}
			}
		}
		ip.mu.Unlock()
		for _, c := range ready {
			if c.pk != nil {
				if hungUp(c.conn) {
					ip.p.hangup(c.pk)
				} // else its next request is here: the probe goes on, unwatched
			} else {
				var headDue time.Time // no limit: not a new connection's first head
				if c.first {
					headDue = c.due
				}
				ip.p.next(c.conn, headDue)
			}
		}
		for _, c := range expired {
			_ = c.conn.Close() // closing takes it out of the epoll set
		}
	}
}

// drop stops watching c, at key (ip.mu held). Its descriptor stays in the
// epoll set (see watch): an event it may still report, at key, finds no
// entry and is ignored.
func (ip *idlePoller) drop(key uint64, c *idleConn) {
	delete(ip.conns, key)
	if c.pk == nil {
		ip.idle--
	}
}

// close closes every idle connection and stops the loop.
func (ip *idlePoller) close() {
	ip.mu.Lock()
	if ip.closed {
		ip.mu.Unlock()
		return
	}
	ip.closed = true
	conns := ip.conns
	ip.conns, ip.idle = nil, 0
	// Under the lock: the loop closes wakefd only once it saw closed.
	_, _ = unix.Write(ip.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	ip.mu.Unlock()
	for _, c := range conns {
		if c.pk == nil { // a waiting probe's connection is answered still
			_ = c.conn.Close()
		}
	}
}

// wait waits for the loop to end, after close.
func (ip *idlePoller) wait() { <-ip.exited }

// count is how many idle connections are watched.
func (ip *idlePoller) count() int {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	return ip.idle
}
