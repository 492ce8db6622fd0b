//go:build linux

package server

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// idlePoller watches the Parker's idle connections for their next
// request with one epoll instance, so an idle connection holds no
// goroutine and no buffer. Go's own poller keeps the descriptor too (edge
// triggered); nothing reads it until net/http has it back, and net/http
// reads before it waits, so the two never miss a byte between them.
type idlePoller struct {
	p      *Parker
	epfd   int
	wakefd int // an eventfd: close wakes the loop
	mu     sync.Mutex
	conns  map[uint64]*idleConn
	next   uint64
	closed bool
	exited chan struct{}
}

type idleConn struct {
	conn  net.Conn
	raw   syscall.RawConn
	since time.Time
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
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
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
	err = raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
		ctlErr = unix.EpollCtl(ip.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || ctlErr != nil {
		return false
	}
	ip.conns[key] = &idleConn{conn: conn, raw: raw, since: time.Now()}
	return true
}

// remove stops watching c (ip.mu not held).
func (c *idleConn) remove(epfd int) {
	_ = c.raw.Control(func(fd uintptr) {
		_ = unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
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
	if ip.p.idleTimeout > 0 {
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
				delete(ip.conns, key)
				ready = append(ready, c)
			}
		}
		var expired []*idleConn
		if now := time.Now(); timeout > 0 && now.Sub(lastSweep) >= idleSweep {
			lastSweep = now
			for key, c := range ip.conns {
				if now.Sub(c.since) >= ip.p.idleTimeout {
					delete(ip.conns, key)
					expired = append(expired, c)
				}
			}
		}
		ip.mu.Unlock()
		for _, c := range ready {
			c.remove(ip.epfd)
			ip.p.handBack(c.conn)
		}
		for _, c := range expired {
			_ = c.conn.Close() // closing takes it out of the epoll set
		}
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
	ip.conns = nil
	// Under the lock: the loop closes wakefd only once it saw closed.
	_, _ = unix.Write(ip.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	ip.mu.Unlock()
	for _, c := range conns {
		_ = c.conn.Close()
	}
}

// wait waits for the loop to end, after close.
func (ip *idlePoller) wait() { <-ip.exited }

// count is how many idle connections are watched.
func (ip *idlePoller) count() int {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	return len(ip.conns)
}
