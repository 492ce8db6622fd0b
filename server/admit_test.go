package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// admitServer serves h on loopback behind an admission gate of n places.
// Its ConnContext and ConnState, set before the gate, count what they see:
// the gate must keep calling them. queued: its listener hands a connection
// to net/http only once its request head is in the socket (as a busy
// server's accept queue does; requestQueued), so that it takes a place.
func admitServer(t *testing.T, n int, hold time.Duration, queued bool, h http.HandlerFunc) (addr string, innerCtx, closed *atomic.Int64) {
	t.Helper()
	innerCtx, closed = new(atomic.Int64), new(atomic.Int64)
	type innerKey struct{}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			innerCtx.Add(1)
			return context.WithValue(ctx, innerKey{}, true)
		},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				closed.Add(1)
			}
		},
	}
	LimitAdmission(srv, n, hold)
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(innerKey{}) == nil {
			t.Error("the server's own ConnContext did not run")
		}
		h(w, r)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve := l
	if queued {
		serve = queuedListener{l}
	}
	go func() { _ = srv.Serve(serve) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String(), innerCtx, closed
}

// queuedListener's Accept returns a connection once its request head has
// arrived (or after 2 s).
type queuedListener struct{ net.Listener }

func (l queuedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(2 * time.Second); !requestQueued(c) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return c, nil
}

// get sends a GET on a connection of its own and returns the connection
// (the answer is left unread).
func rawGet(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	return c
}

// At most n connections get to their handler before one gives its place
// back; the first request's end (the connection going idle), its
// connection's close, a hijack and admitted each give it back.
func TestAdmissionBounds(t *testing.T) {
	var in atomic.Int64
	release := make(chan string)
	addr, innerCtx, _ := admitServer(t, 2, time.Hour, true, func(w http.ResponseWriter, r *http.Request) {
		in.Add(1)
		switch how := <-release; how {
		case "admitted":
			admitted(r.Context())
			<-release // the handler goes on waiting, its place given back
		case "hijack":
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				defer c.Close()
				<-release
			}
		}
	})
	for i := range 6 {
		rawGet(t, addr, fmt.Sprintf("/%d", i))
	}
	waitFor(t, "2 handlers entered", func() bool { return in.Load() == 2 })
	settle := func(want int64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d handlers entered", want), func() bool { return in.Load() == want })
		time.Sleep(100 * time.Millisecond)
		if got := in.Load(); got != want {
			t.Fatalf("%d handlers entered, want %d: the gate let more through", got, want)
		}
	}
	settle(2)
	release <- "end" // the request ends: its connection is idle
	settle(3)
	release <- "admitted"
	settle(4)
	release <- "hijack"
	settle(5)
	if got := innerCtx.Load(); got != 5 {
		t.Errorf("the server's ConnContext ran %d times, want 5", got)
	}
	close(release)
	waitFor(t, "the last handler entered", func() bool { return in.Load() == 6 })
}

// A request whose handler blocks before giving its place back holds it
// for hold only; then the next one is served.
func TestAdmissionHold(t *testing.T) {
	const hold = 150 * time.Millisecond
	block := make(chan struct{})
	defer close(block)
	addr, innerCtx, _ := admitServer(t, 1, hold, true, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-block
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	start := time.Now()
	rawGet(t, addr, "/block")
	waitFor(t, "the blocking request admitted", func() bool { return innerCtx.Load() == 1 })
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if took := time.Since(start); took < hold-30*time.Millisecond {
		t.Errorf("served after %v: the blocking request's place was not held (hold %v)", took, hold)
	}
}

// Connections that have not sent a whole request head take no place: net/http
// alone serves a new connection at once however many silent or slow ones
// came before it, and so does the gate (a port scan, a client's pre-connect
// pool, a slowloris at n/hold connects a second must not hold every new
// connection back by hold for every n of them).
func TestAdmissionSilentConnectionsDoNotStarve(t *testing.T) {
	const n, hold, silent = 2, 50 * time.Millisecond, 100
	addr, innerCtx, _ := admitServer(t, n, hold, false, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	for i := range silent {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if i%2 == 1 { // half of them send a head's beginning, never its end
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The GET's connection is behind them in the accept queue.
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if took := time.Since(start); took > 10*hold {
		t.Errorf("served after %v behind %d silent connections (%d places, hold %v): want at most %v", took, silent, n, hold, 10*hold)
	}
	// The silent ones wait in the kernel (TestAdmissionDefersAccept); those
	// that sent a head's beginning were accepted before the GET's.
	if got := innerCtx.Load(); got < silent/2 {
		t.Errorf("%d connections accepted before the GET's, want %d", got, silent/2)
	}
}

// AdmitHandler gives a request's place back as its handler starts, but for
// /probe (under any prefix), whose handler gives it back itself.
func TestAdmitHandler(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var in atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-release })
	mux.HandleFunc("/x/probe", func(w http.ResponseWriter, r *http.Request) { in.Add(1); <-release })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { in.Add(1); _, _ = io.WriteString(w, "ok\n") })
	h := AdmitHandler(mux)
	addr, _, _ := admitServer(t, 1, time.Hour, true, h.ServeHTTP)
	rawGet(t, addr, "/slow")
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("behind a slow handler: %v (its place was not given back)", err)
	}
	_ = resp.Body.Close()
	rawGet(t, addr, "/x/probe")
	waitFor(t, "the probe handler entered", func() bool { return in.Load() == 2 })
	rawGet(t, addr, "/after")
	time.Sleep(200 * time.Millisecond)
	if got := in.Load(); got != 2 {
		t.Errorf("a request went past a /probe handler that holds the only place (%d handlers entered)", got)
	}
}

// A hold shorter than the accept loop's step (0, 1 ns) gives places back
// from the timer's goroutine while ConnContext is still setting up the
// ticket: every connection is still served, and `go test -race` sees no
// race between the two.
func TestAdmissionShortHold(t *testing.T) {
	for _, hold := range []time.Duration{0, time.Nanosecond} {
		addr, _, closed := admitServer(t, 1, hold, true, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "ok\n")
		})
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		const n = 100
		for i := range n {
			resp, err := client.Get("http://" + addr + "/")
			if err != nil {
				t.Fatalf("hold %v, request %d: %v", hold, i, err)
			}
			_ = resp.Body.Close()
		}
		waitFor(t, "every connection closed", func() bool { return closed.Load() == n })
	}
}

// The gate's TCP listeners defer a connection's accept until its first
// bytes (TCP_DEFER_ACCEPT): a silent connection never reaches net/http,
// and one that sends its request is served at once.
func TestAdmissionDefersAccept(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_DEFER_ACCEPT is Linux's")
	}
	addr, innerCtx, _ := admitServer(t, 2, time.Hour, false, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() {
		t.Helper()
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	get() // the server serves: its listener's option is set
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(50 * time.Millisecond) // long enough for an accept that is not deferred
	get()
	if got := innerCtx.Load(); got != 2 {
		t.Errorf("%d connections reached net/http, want 2: the silent one's accept was not deferred", got)
	}
}
