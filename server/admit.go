package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// An admission gate bounds how many connections net/http serves at once
// before their request gets to wait. From its accept (or its hand-back by
// a Parker) until its first request parks, starts its probe, or ends, a
// connection holds a goroutine that grows to the handler's depth, a 4 kB
// read and a 4 kB write buffer and its request: about 20 kB. A scrape
// instant brings all of a fleet's connections at once (Prometheus keeps at
// most 1,000 idle connections to one host, so a bigger fleet opens new ones
// every interval), and without a bound all of them hold that at once, a
// peak the Go runtime keeps from the operating system long after: 21 kB of
// RSS per probe after 1,000 new connections, 11 kB with the gate
// (bench/icmp, before a round). Gated, the connections beyond the bound
// wait in the kernel's accept queue, or in the Parker's epoll set, holding
// only their socket.
//
// A connection holds its place for hold at most: a client slow to send its
// request (a slow link, or a slowloris) then stops counting, so it delays
// the others by hold, not by net/http's header timeout.
type admission struct {
	slots chan struct{}
	hold  time.Duration
	mu    sync.Mutex
	held  map[net.Conn]*ticket
}

// A ticket is one connection's place, given back once.
type ticket struct {
	a     *admission
	c     net.Conn
	given atomic.Bool
	timer *time.Timer
}

type admissionKey struct{}

// AdmissionHold is how long a connection holds its place at most.
const AdmissionHold = 20 * time.Millisecond

// LimitAdmission installs an admission gate of n places on srv, before
// srv's own ConnContext and ConnState (which still run). Call it before
// srv serves.
func LimitAdmission(srv *http.Server, n int, hold time.Duration) {
	a := &admission{slots: make(chan struct{}, n), hold: hold, held: map[net.Conn]*ticket{}}
	connContext, connState := srv.ConnContext, srv.ConnState
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		// On the listener's accept loop: while every place is taken, the
		// next connections wait in the kernel's accept queue.
		a.slots <- struct{}{}
		t := &ticket{a: a, c: c}
		a.mu.Lock()
		a.held[c] = t
		a.mu.Unlock()
		// The timer's goroutine may run before t.timer is set (a hold
		// of 0): it only releases, never touches t.timer.
		t.timer = time.AfterFunc(a.hold, func() { t.release() })
		ctx = context.WithValue(ctx, admissionKey{}, t)
		if connContext != nil {
			ctx = connContext(ctx, c)
		}
		return ctx
	}
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateIdle, http.StateHijacked, http.StateClosed:
			// Its first request ended, parked (hijacked), or never came.
			a.mu.Lock()
			t := a.held[c]
			a.mu.Unlock()
			if t != nil {
				t.give()
			}
		}
		if connState != nil {
			connState(c, s)
		}
	}
}

// give gives the place back, once, and stops its timer. It runs on the
// connection's goroutines, after ConnContext set t.timer.
func (t *ticket) give() {
	if t.release() {
		t.timer.Stop()
	}
}

// release gives the place back, once, and says whether it did.
func (t *ticket) release() bool {
	if !t.given.CompareAndSwap(false, true) {
		return false
	}
	t.a.mu.Lock()
	// A connection handed back by a Parker may hold a new ticket by now.
	if t.a.held[t.c] == t {
		delete(t.a.held, t.c)
	}
	t.a.mu.Unlock()
	<-t.a.slots
	return true
}

// admitted gives back the place of ctx's connection (a request's context),
// if it holds one: its request is about to wait (a probe runs), and
// waiting costs what net/http's goroutine holds anyway.
func admitted(ctx context.Context) {
	if t, ok := ctx.Value(admissionKey{}).(*ticket); ok {
		t.give()
	}
}
