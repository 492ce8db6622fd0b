package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/prober"
)

// A Parker holds the connections of /probe requests whose probe waits
// holding no goroutine (prober.StartFunc: the icmp prober, on the echo
// engine), answers them itself when the probe ends, and keeps each
// connection, idle, until its next request arrives, when it hands the
// connection back to net/http.
//
// Through net/http alone every waiting probe holds its connection's
// goroutine (an 8 kB stack, more once deep), its read and write buffers
// and its request, and every kept-alive connection between scrapes holds
// a goroutine and a 4 kB read buffer: 23-34 kB per probe before the probe
// itself, measured (bench/icmp's floor). Parked, a probe holds its state
// and its socket, and an idle connection only its socket, watched by one
// epoll instance for the whole process (Linux; elsewhere an idle
// connection goes back to net/http at once).
//
// Only plain HTTP/1.x GET requests are parked: TLS keeps its own buffers
// per connection and HTTP/2 cannot be hijacked, so those probes run as
// every other prober's do.
type Parker struct {
	logger      *slog.Logger
	idleTimeout time.Duration
	back        *backListener
	idle        *idlePoller // nil: hand idle connections back at once

	// transit bounds the connections handed back that net/http has not
	// yet read a request from (moving): each holds a goroutine and a 4 kB
	// buffer, and 10,000 probes scraped at once would otherwise hand
	// 10,000 back at once.
	transit chan struct{}

	// Prometheus sends the same Accept (250 bytes) with every scrape: the
	// parked requests share one copy, not the request's whole header.
	accept, acceptEncoding lastValue

	parkedTotal atomic.Uint64
	probing     atomic.Int64

	mu      sync.Mutex
	moving  map[net.Conn]struct{}
	cond    *sync.Cond
	queue   []*parked // ended probes to answer
	closed  bool      // shutting down: answer with Connection: close
	stopped bool      // the workers are to return
	active  sync.WaitGroup
	workers sync.WaitGroup
}

// NewParker returns a Parker for srv, which must also Serve the Parker's
// Listener (connections handed back come through it). srv's Shutdown
// starts the Parker's; Shutdown waits for it.
func NewParker(srv *http.Server, logger *slog.Logger) *Parker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	idle := srv.IdleTimeout
	if idle == 0 {
		idle = srv.ReadTimeout // net/http's rule
	}
	n := runtime.GOMAXPROCS(0)
	p := &Parker{logger: logger, idleTimeout: idle, back: newBackListener(),
		transit: make(chan struct{}, max(64, 16*n)), moving: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.idle = newIdlePoller(p)
	// A few workers answer ended probes: rendering is CPU work, and a
	// goroutine per answer would bring back, at the end of a burst of
	// probes, the memory parking saves.
	p.workers.Add(n)
	for range n {
		go p.work()
	}
	srv.RegisterOnShutdown(p.close)
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if prev != nil {
			prev(c, st)
		}
		if st != http.StateNew {
			p.arrived(c)
		}
	}
	return p
}

// Listener is what srv must also Serve: the connections the Parker hands
// back to net/http.
func (p *Parker) Listener() net.Listener { return p.back }

// parked is one parked request: its connection, what the probe holds, and
// what its answer needs of the request.
type parked struct {
	h    *ProbeHandler
	a    answer
	s    *prober.Suspended
	res  prober.Result // set when the probe ended before it could wait
	conn net.Conn
	// head is what net/http had read past the request (a pipelined next
	// one), given back before the connection's own bytes.
	head []byte
	// Of the request: its content negotiation, and whether the connection
	// is to be closed after the answer.
	accept, acceptEncoding []string
	close                  bool
}

// hijack takes r's connection from net/http for a parked probe, or
// returns nil when r cannot be parked (then nothing changed).
func (p *Parker) hijack(w http.ResponseWriter, r *http.Request) *parked {
	if r.ProtoMajor != 1 || r.TLS != nil || r.Method != http.MethodGet {
		return nil
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil
	}
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.active.Add(1)
	}
	p.mu.Unlock()
	if closed {
		return nil
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		p.active.Done()
		return nil
	}
	p.parkedTotal.Add(1)
	p.probing.Add(1)
	pk := &parked{conn: conn, accept: p.accept.of(r.Header["Accept"]), acceptEncoding: p.acceptEncoding.of(r.Header["Accept-Encoding"]), close: r.Close}
	if n := rw.Reader.Buffered(); n > 0 {
		pk.head, _ = rw.Peek(n)
		pk.head = bytes.Clone(pk.head)
	}
	return pk
}

// ready queues an ended probe to be answered. It runs on the echo
// engine's goroutines: it must not block.
func (p *Parker) ready(pk *parked) {
	p.mu.Lock()
	p.queue = append(p.queue, pk)
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *Parker) work() {
	defer p.workers.Done()
	for {
		p.mu.Lock()
		for len(p.queue) == 0 && !p.stopped {
			p.cond.Wait()
		}
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		pk := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		p.answer(pk)
	}
}

// answer finishes pk's probe, writes its answer and keeps or closes its
// connection.
func (p *Parker) answer(pk *parked) {
	defer p.active.Done()
	defer p.probing.Add(-1)
	res := pk.res
	if pk.s != nil {
		res = pk.s.Finish()
	}
	a := &pk.a
	w := newBufferedResponse()
	defer a.release()
	func() {
		defer func() {
			if v := recover(); v != nil {
				a.logger.Error("rendering the probe's metrics panicked", "panic", v)
				w = newBufferedResponse()
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, "internal error rendering the probe's metrics\n")
			}
		}()
		pk.h.ended(a, res)
		r := &http.Request{Method: http.MethodGet, Header: http.Header{}}
		if pk.accept != nil {
			r.Header["Accept"] = pk.accept
		}
		if pk.acceptEncoding != nil {
			r.Header["Accept-Encoding"] = pk.acceptEncoding
		}
		collector.ServeMetrics(w, r, a.metrics, a.logger)
	}()
	p.mu.Lock()
	keep := !pk.close && !p.closed
	p.mu.Unlock()
	if err := w.writeTo(pk.conn, !keep); err != nil {
		p.logger.Debug("writing a parked probe's answer", "err", err)
		keep = false
	}
	if !keep {
		_ = pk.conn.Close()
		return
	}
	p.keep(pk.conn, pk.head)
}

// keep holds a connection until its next request.
func (p *Parker) keep(conn net.Conn, head []byte) {
	if len(head) > 0 {
		// Its next request is here already.
		p.handBack(&headConn{Conn: conn, head: head})
		return
	}
	if p.idle == nil || !p.idle.add(conn) {
		p.handBack(conn)
	}
}

// transitWait is how long a connection waits for room in transit: a
// client that sends half a request holds its room until net/http's read
// header timeout, and must not hold up the others for that long.
const transitWait = 20 * time.Millisecond

// handBack gives conn back to net/http.
func (p *Parker) handBack(conn net.Conn) {
	select {
	case p.transit <- struct{}{}:
	default:
		t := time.NewTimer(transitWait)
		select {
		case p.transit <- struct{}{}:
		case <-t.C:
			t.Stop()
			p.send(conn)
			return
		}
		t.Stop()
	}
	p.mu.Lock()
	p.moving[conn] = struct{}{}
	p.mu.Unlock()
	if !p.send(conn) {
		p.arrived(conn)
	}
}

func (p *Parker) send(conn net.Conn) bool {
	if !p.back.put(conn) {
		_ = conn.Close()
		return false
	}
	return true
}

// arrived frees conn's room in transit: net/http read a request from it
// (or it went idle, was hijacked or closed).
func (p *Parker) arrived(conn net.Conn) {
	p.mu.Lock()
	_, ok := p.moving[conn]
	delete(p.moving, conn)
	p.mu.Unlock()
	if ok {
		<-p.transit
	}
}

// close starts the Parker's shutdown (srv.Shutdown calls it): answers say
// Connection: close, nothing more is parked, idle connections are closed.
func (p *Parker) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.back.Close()
	if p.idle != nil {
		p.idle.close()
	}
}

// Shutdown shuts the Parker down (as srv.Shutdown does net/http): it waits
// until every parked probe has been answered, or ctx ends.
func (p *Parker) Shutdown(ctx context.Context) error {
	p.close()
	done := make(chan struct{})
	go func() {
		p.active.Wait()
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		p.cond.Broadcast()
		p.workers.Wait()
		if p.idle != nil {
			p.idle.wait()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	parkedTotalDesc = prometheus.NewDesc("isp_checker_parked_probes_total",
		"Probes whose connection was parked while they waited (icmp over plain HTTP/1.x), holding no goroutine.", nil, nil)
	parkedDesc = prometheus.NewDesc("isp_checker_parked_connections",
		"Connections the Parker holds: probing (a probe waits) or idle (watched for the next request).", []string{"state"}, nil)
)

// Describe and Collect make the Parker a prometheus.Collector of its own
// figures.
func (p *Parker) Describe(ch chan<- *prometheus.Desc) {
	ch <- parkedTotalDesc
	ch <- parkedDesc
}

func (p *Parker) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(parkedTotalDesc, prometheus.CounterValue, float64(p.parkedTotal.Load()))
	ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(p.probing.Load()), "probing")
	idle := 0
	if p.idle != nil {
		idle = p.idle.count()
	}
	ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(idle), "idle")
}

// lastValue is the last header value asked for, to share with the next
// request that has the same.
type lastValue struct{ v atomic.Pointer[[]string] }

// of returns v, or the equal value kept from before.
func (l *lastValue) of(v []string) []string {
	if v == nil {
		return nil
	}
	if last := l.v.Load(); last != nil && slices.Equal(*last, v) {
		return *last
	}
	c := slices.Clone(v)
	l.v.Store(&c)
	return c
}

// bufferedResponse is the http.ResponseWriter of a parked probe's answer:
// it is written to the connection whole, with its length.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse {
	return &bufferedResponse{header: http.Header{}}
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// parkedWriteTimeout bounds the write of an answer to a client that does
// not read it.
const parkedWriteTimeout = 30 * time.Second

// writeTo writes the response as HTTP/1.1, closing the connection after
// it when closing: its head and body in one writev.
func (b *bufferedResponse) writeTo(conn net.Conn, closing bool) error {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	b.header.Set("Content-Length", strconv.Itoa(b.body.Len()))
	if closing {
		b.header.Set("Connection", "close")
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 " + strconv.Itoa(b.status) + " " + http.StatusText(b.status) + "\r\n")
	if err := b.header.Write(&head); err != nil {
		return err
	}
	head.WriteString("\r\n")
	_ = conn.SetWriteDeadline(time.Now().Add(parkedWriteTimeout))
	defer func() { _ = conn.SetWriteDeadline(time.Time{}) }()
	bufs := net.Buffers{head.Bytes(), b.body.Bytes()}
	_, err := bufs.WriteTo(conn)
	return err
}

// headConn is a connection with bytes already read from it in front.
type headConn struct {
	net.Conn
	head []byte
}

func (c *headConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// backListener is the net.Listener through which the Parker hands
// connections back to net/http. Its queue has no bound: a connection
// waits there only until net/http's accept loop takes it.
type backListener struct {
	mu     sync.Mutex
	queue  []net.Conn
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

func newBackListener() *backListener {
	return &backListener{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (l *backListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-l.done:
		}
	}
}

// put hands conn to Accept; false once the listener is closed.
func (l *backListener) put(conn net.Conn) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, conn)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// Close closes the listener and the connections it still holds.
func (l *backListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	for _, c := range l.queue {
		_ = c.Close()
	}
	l.queue = nil
	return nil
}

func (l *backListener) Addr() net.Addr { return backAddr{} }

// backAddr is the address of connections handed back: they arrived on
// the server's own listeners.
type backAddr struct{}

func (backAddr) Network() string { return "parked" }
func (backAddr) String() string  { return "parked" }
