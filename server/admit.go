package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
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
// peak the Go runtime keeps from the operating system long after: 21-24 kB
// of RSS per connection after 1,000 new ones, 9-13 kB with the gate
// (bench/icmp, before a round). Gated, the connections beyond the bound
// wait in the kernel's accept queue, or in the Parker's epoll set or
// hand-back queue, holding their socket (and, in that queue, the bytes
// the Parker read, at most 4 kB). The listener defers each accept until
// the connection's first bytes (deferAccept): a new connection then comes
// with its request. Without a web config file the Parker's listener
// (Parker.Listener) takes every new connection: a /probe that parks at
// once never reaches net/http, and any other request is gated when the
// Parker hands it back.
//
// Only a connection whose whole request head is already queued, and
// announces no body (requestQueued), takes a place, and it gives it back
// before anything it does can wait on its client: when its handler starts
// (AdmitHandler), or for /probe when the probe parks, starts or is
// refused. So the wait for a place is the server's own work, never a
// client's: a client that sends
// nothing yet, or part of its head, or a TLS handshake, goes past the gate
// as through net/http alone (and costs what it costs there), and cannot
// hold back the connections behind it in the accept queue. A place is held
// for hold at most all the same: a handler that blocks before its probe
// starts delays the others by hold, no more.
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
// srv's own ConnContext, ConnState and BaseContext (which still run), and
// defers the accept of its TCP listeners' connections until their first
// bytes (deferAccept). Call it before srv serves.
func LimitAdmission(srv *http.Server, n int, hold time.Duration) {
	a := &admission{slots: make(chan struct{}, n), hold: hold, held: map[net.Conn]*ticket{}}
	connContext, connState, baseContext := srv.ConnContext, srv.ConnState, srv.BaseContext
	srv.BaseContext = func(l net.Listener) context.Context {
		deferAccept(l)
		if baseContext != nil {
			return baseContext(l)
		}
		return context.Background()
	}
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if !requestQueued(c) {
			if connContext != nil {
				ctx = connContext(ctx, c)
			}
			return ctx
		}
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

// AdmitHandler gives back the place of every request's connection as its
// handler starts, but /probe's (a path ending in /probe, under any route
// prefix): the ProbeHandler gives its own back once its probe parks,
// starts or is refused (see admission). Wrap the server's handler in it.
func AdmitHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/probe") {
			admitted(r.Context())
		}
		next.ServeHTTP(w, r)
	})
}

// admitted gives back the place of ctx's connection (a request's context),
// if it holds one: its request is about to wait (a probe runs), and
// waiting costs what net/http's goroutine holds anyway.
func admitted(ctx context.Context) {
	if t, ok := ctx.Value(admissionKey{}).(*ticket); ok {
		t.give()
	}
}

// peekLen is how much of a connection's receive queue requestQueued
// looks at (and a Parker reads of an idle connection's next request): a
// scrape's request head is about 500 bytes.
const peekLen = 4096

var peekBufs = sync.Pool{New: func() any { return new([peekLen]byte) }}

var headEnd = []byte("\r\n\r\n")

// hasBody reports whether a request head (its lines, without the blank
// one) announces a body: a Content-Length other than 0, or any
// Transfer-Encoding. Prometheus's scrapes have none.
func hasBody(head []byte) bool {
	_, rest, _ := bytes.Cut(head, []byte("\n")) // past the request line
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return true
		case bytes.EqualFold(name, []byte("Content-Length")):
			if string(bytes.TrimSpace(value)) != "0" {
				return true
			}
		}
	}
	return false
}
