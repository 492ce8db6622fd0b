package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
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
// connection back to net/http. While a probe waits, its connection is
// watched for the client's hang-up, which ends the probe.
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
	// firstTimeout is how long a new connection may take to send its
	// first request's bytes (Listener): net/http's limit for a first
	// request's head.
	firstTimeout time.Duration
	back         *backListener
	idle         *idlePoller // nil: hand idle connections back at once

	// Prometheus sends the same Accept (250 bytes) with every scrape: the
	// parked requests share one copy, not the request's whole header.
	accept, acceptEncoding lastValue
	// The headers set before /probe (exporter-toolkit's
	// http_server_config.headers) are the same for every answer: the
	// parked probes share one copy, as read-only.
	header lastHeader

	parkedTotal atomic.Uint64
	probing     atomic.Int64

	srv       *http.Server
	serveBack sync.Once
	// readNext: the Parker reads its idle connections' next requests
	// itself (ReadRequests); quick is the /probe handler that says which
	// of them it serves (ProbeHandler.quick).
	readNext  bool
	quick     atomic.Pointer[ProbeHandler]
	readTotal atomic.Uint64

	queue   fifo[job] // ended probes to answer, requests to read
	mu      sync.Mutex
	closed  bool // shutting down: answer with Connection: close
	active  sync.WaitGroup
	workers sync.WaitGroup
}

// NewParker returns a Parker for srv. srv serves the connections handed
// back through a listener of the Parker's, from the first hand-back on:
// by then srv's own Serve (exporter-toolkit's, which sets up its handler
// and TLS first) is running. srv's Shutdown starts the Parker's;
// Shutdown waits for it.
func NewParker(srv *http.Server, logger *slog.Logger) *Parker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	idle := srv.IdleTimeout
	if idle == 0 {
		idle = srv.ReadTimeout // net/http's rule
	}
	first := srv.ReadHeaderTimeout
	if first <= 0 {
		first = srv.ReadTimeout // net/http's rule
	}
	n := runtime.GOMAXPROCS(0)
	p := &Parker{logger: logger, idleTimeout: idle, firstTimeout: first, back: newBackListener(), srv: srv}
	p.queue.init()
	p.idle = newIdlePoller(p)
	// A few workers answer ended probes: rendering is CPU work, and a
	// goroutine per answer would bring back, at the end of a burst of
	// probes, the memory parking saves.
	p.workers.Add(n)
	for range n {
		go p.work()
	}
	srv.RegisterOnShutdown(p.close)
	return p
}

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
	// The answer's headers so far (exporter-toolkit's
	// http_server_config.headers).
	header http.Header
	// Of the request: its content negotiation (shared with the other
	// parked requests, see lastValue), whether the connection is to be
	// closed after the answer, and whether an HTTP/1.0 client asked to
	// keep it.
	accept, acceptEncoding *[]string
	// The hang-up watch of the connection while the probe waits (its key
	// in the idle poller, under its lock), and which came first: the
	// probe's end or the client's hang-up (gone).
	watchKey           uint64
	ended              atomic.Bool
	close, keepAlive10 bool
	gone               bool
	released           bool // done ran (by the one goroutine that has pk at a time)
}

// hijack takes r's connection from net/http for a parked probe, or
// returns nil when r cannot be parked (then nothing changed).
func (p *Parker) hijack(w http.ResponseWriter, r *http.Request) *parked {
	// A body would be left unread in the connection, and net/http would
	// then take it for the next request.
	if r.ProtoMajor != 1 || r.TLS != nil || r.Method != http.MethodGet || (r.Body != nil && r.Body != http.NoBody) {
		return nil
	}
	nw, next := w.(*nextWriter)
	hj, ok := w.(http.Hijacker)
	if !ok && !next {
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
	var conn net.Conn
	var rw *bufio.ReadWriter
	if next {
		conn, nw.hijacked = nw.conn, true
	} else {
		var err error
		if conn, rw, err = hj.Hijack(); err != nil {
			p.active.Done()
			return nil
		}
	}
	p.parkedTotal.Add(1)
	p.probing.Add(1)
	pk := &parked{conn: conn, header: p.header.of(w.Header()), close: r.Close,
		keepAlive10: keepAlive10(r),
		accept:      p.accept.of(r.Header["Accept"]), acceptEncoding: p.acceptEncoding.of(r.Header["Accept-Encoding"])}
	// What net/http read past this request, then what a connection handed
	// back with bytes in front still holds of them: one wrapper, never a
	// wrapper of a wrapper.
	if next {
		pk.head = nw.rest // read by the Parker, a copy already
		return pk
	}
	var rest []byte
	if hc, ok := conn.(*headConn); ok {
		pk.conn, rest = hc.Conn, hc.head
	}
	if n := rw.Reader.Buffered(); n > 0 || len(rest) > 0 {
		b, _ := rw.Peek(n)
		pk.head = append(bytes.Clone(b), rest...)
	}
	return pk
}

// start starts pk's probe; a Parker worker answers it when it ends (or at
// once when it could not wait).
func (p *Parker) start(ctx context.Context, pk *parked, start prober.StartFunc, req *prober.Request) {
	defer func() {
		if v := recover(); v != nil {
			p.logger.Error("starting a parked probe panicked", "panic", v)
			// Unless a hang-up took pk already (then a worker ends it).
			if pk.ended.CompareAndSwap(false, true) {
				if p.idle != nil {
					p.idle.unwatchHangup(pk)
				}
				_ = pk.conn.Close()
				p.done(pk)
			}
		}
	}()
	res, s := prober.StartRequest(ctx, start, req)
	// A suspended probe keeps its deadline, not ctx.
	pk.a.cancel()
	pk.a.cancel = nil
	if s == nil {
		pk.res = res
		p.ready(pk)
		return
	}
	pk.s = s
	// The watch comes first: once OnDone is set, the probe's end may
	// answer, then keep, the connection at any moment.
	if p.idle != nil {
		p.idle.watchHangup(pk)
	}
	s.OnDone(func() {
		if pk.ended.CompareAndSwap(false, true) {
			p.ready(pk)
		}
	})
}

// ready queues an ended probe to be answered. It runs on the echo
// engine's goroutines: it must not block.
func (p *Parker) ready(pk *parked) { p.queue.push(job{pk: pk}) }

// hangup cuts pk's probe short: its client closed the connection (as
// net/http ends a request's context then), so the probe's
// --probes.max-concurrent slot is free at once, not at its deadline.
// The watch ends at a next request's first byte on the socket (see
// idlePoller.watchHangup), as net/http's background read does.
func (p *Parker) hangup(pk *parked) {
	if pk.ended.CompareAndSwap(false, true) {
		pk.gone = true
		p.ready(pk)
	}
}

func (p *Parker) work() {
	defer p.workers.Done()
	rd := newNextReader()
	for {
		j, ok := p.queue.pop()
		if !ok {
			return
		}
		if j.pk != nil {
			p.answer(j.pk)
		} else {
			p.serveNext(j.conn, j.first, rd)
		}
	}
}

// answer finishes pk's probe and writes its answer. A worker never waits
// on a client: an answer the socket does not take at once is written on
// from a goroutine of its own.
func (p *Parker) answer(pk *parked) {
	defer func() {
		// A panic past the renderer's recover (in Finish, in ended) must
		// not take the process down, as net/http's per-connection recover
		// did not.
		if v := recover(); v != nil {
			p.logger.Error("answering a parked probe panicked", "panic", v)
			_ = pk.conn.Close()
			p.done(pk)
		}
	}()
	if p.idle != nil {
		p.idle.unwatchHangup(pk)
	}
	if pk.gone {
		// As net/http does: the answer is still written (a client that
		// only half-closed reads it), and the connection closed, unless a
		// next request was read already: net/http serves that one too
		// (then reads the end of the connection and closes it).
		pk.a.logger.Info("the client closed the connection: the probe ends now")
		if len(pk.head) == 0 {
			pk.close = true
		}
	}
	res := pk.res
	if pk.s != nil {
		res = pk.s.Finish()
	}
	a := &pk.a
	w := newBufferedResponse(pk.header)
	func() {
		defer func() {
			if v := recover(); v != nil {
				a.logger.Error("rendering the probe's metrics panicked", "panic", v)
				w = newBufferedResponse(pk.header)
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, "internal error rendering the probe's metrics\n")
			}
		}()
		pk.h.ended(a, res)
		r := &http.Request{Method: http.MethodGet, Header: http.Header{}}
		if pk.accept != nil {
			r.Header["Accept"] = *pk.accept
		}
		if pk.acceptEncoding != nil {
			r.Header["Accept-Encoding"] = *pk.acceptEncoding
		}
		collector.ServeMetrics(w, r, a.metrics, a.logger)
	}()
	keep := p.keepsOpen(pk.close)
	bufs := w.encode(!keep, pk.keepAlive10)
	_ = pk.conn.SetWriteDeadline(time.Now().Add(parkedQuickWrite))
	_, err := bufs.WriteTo(pk.conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		go p.writeRest(pk, bufs, keep)
		return
	}
	p.wrote(pk, err, keep)
}

// keepsOpen reports whether a connection stays open after its answer:
// its request did not ask to close it, and the Parker is not shutting
// down.
func (p *Parker) keepsOpen(closeAsked bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !closeAsked && !p.closed
}

// keepAlive10 reports whether r is an HTTP/1.0 request that asked to keep
// its connection (its answer then says Connection: keep-alive).
func keepAlive10(r *http.Request) bool { return !r.ProtoAtLeast(1, 1) && !r.Close }

// parkedQuickWrite is how long a worker writes an answer: a few kB the
// socket's buffer takes at once, unless the client stopped reading.
// parkedWriteTimeout bounds the rest, written from a goroutine.
const (
	parkedQuickWrite   = 5 * time.Millisecond
	parkedWriteTimeout = 30 * time.Second
)

func (p *Parker) writeRest(pk *parked, bufs net.Buffers, keep bool) {
	_ = pk.conn.SetWriteDeadline(time.Now().Add(parkedWriteTimeout))
	_, err := bufs.WriteTo(pk.conn)
	p.wrote(pk, err, keep)
}

// wrote keeps or closes pk's connection once its answer was written (err:
// or not), and gives back what the probe held: its
// --probes.max-concurrent slot first, so a request pipelined behind finds
// it free, and its place in Shutdown's count last, so Shutdown returns
// only once the connection is kept or closed.
func (p *Parker) wrote(pk *parked, err error, keep bool) {
	_ = pk.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		p.logger.Debug("writing a parked probe's answer", "err", err)
		keep = false
	}
	pk.a.release()
	if keep {
		p.keep(pk.conn, pk.head)
	} else {
		_ = pk.conn.Close()
	}
	p.done(pk)
}

// done gives back what pk's probe held, once (a panic's recover may call
// it after wrote began).
func (p *Parker) done(pk *parked) {
	if pk.released {
		return
	}
	pk.released = true
	pk.a.release()
	p.probing.Add(-1)
	p.active.Done()
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

// handBack gives conn back to net/http.
func (p *Parker) handBack(conn net.Conn) {
	p.serveBack.Do(func() { go func() { _ = p.srv.Serve(p.back) }() })
	if !p.back.put(conn) {
		_ = conn.Close()
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
// until every parked probe has been answered, or ctx ends (then those
// still waiting are answered when they end, as net/http's handlers
// would).
func (p *Parker) Shutdown(ctx context.Context) error {
	p.close()
	done := make(chan struct{})
	go func() {
		p.active.Wait()
		// Every parked probe was answered: what is left are idle
		// connections whose next request came as the Parker closed.
		for _, j := range p.queue.close() {
			if j.conn != nil {
				_ = j.conn.Close()
			}
		}
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
	readDesc = prometheus.NewDesc("isp_checker_parked_requests_read_total",
		"Requests the Parker read itself from new and idle connections, and served without net/http: probes that park at once.", nil, nil)
	parkedDesc = prometheus.NewDesc("isp_checker_parked_connections",
		"Connections the Parker holds: probing (a probe waits) or idle (watched for its first or next request).", []string{"state"}, nil)
)

// Describe and Collect make the Parker a prometheus.Collector of its own
// figures.
func (p *Parker) Describe(ch chan<- *prometheus.Desc) {
	ch <- parkedTotalDesc
	ch <- readDesc
	ch <- parkedDesc
}

func (p *Parker) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(parkedTotalDesc, prometheus.CounterValue, float64(p.parkedTotal.Load()))
	ch <- prometheus.MustNewConstMetric(readDesc, prometheus.CounterValue, float64(p.readTotal.Load()))
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

// of returns a copy of v, or the equal one kept from before; nil when v
// is. The caller must not change it.
func (l *lastValue) of(v []string) *[]string {
	if v == nil {
		return nil
	}
	if last := l.v.Load(); last != nil && slices.Equal(*last, v) {
		return last
	}
	c := slices.Clone(v)
	l.v.Store(&c)
	return &c
}

// lastHeader is the last header asked for, to share with the next
// request that has the same.
type lastHeader struct{ v atomic.Pointer[http.Header] }

// of returns a copy of h, or the equal one kept from before; nil when h
// is empty. The caller must not change it.
func (l *lastHeader) of(h http.Header) http.Header {
	if len(h) == 0 {
		return nil
	}
	if last := l.v.Load(); last != nil && maps.EqualFunc(*last, h, slices.Equal) {
		return *last
	}
	c := h.Clone()
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

// newBufferedResponse starts with a copy of header (what was set before
// the handler: exporter-toolkit's http_server_config.headers).
func newBufferedResponse(header http.Header) *bufferedResponse {
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	return &bufferedResponse{header: h}
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

// encode returns the response as HTTP/1.1, its head and its body, with
// Connection: close when closing, or keep-alive for an HTTP/1.0 client
// that asked.
func (b *bufferedResponse) encode(closing, keepAlive10 bool) net.Buffers {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	b.header.Set("Content-Length", strconv.Itoa(b.body.Len()))
	switch {
	case closing:
		b.header.Set("Connection", "close")
	case keepAlive10:
		b.header.Set("Connection", "keep-alive")
	}
	var head bytes.Buffer
	head.Grow(512) // once: an answer's head is a few hundred bytes
	head.WriteString("HTTP/1.1 " + strconv.Itoa(b.status) + " " + http.StatusText(b.status) + "\r\n")
	_ = b.header.Write(&head) // a bytes.Buffer does not fail
	head.WriteString("\r\n")
	return net.Buffers{head.Bytes(), b.body.Bytes()}
}

// headConn is a connection with bytes already read from it in front.
type headConn struct {
	net.Conn
	head []byte
	// limit, when set, is when a new connection's first request head must
	// be in (Parker.Listener): net/http's first read deadline on it, the
	// head's, is held to it, so the time the Parker watched the connection
	// counts against --web.read-header-timeout as net/http's own would.
	limit time.Time
}

func (c *headConn) SetReadDeadline(t time.Time) error {
	if !c.limit.IsZero() {
		if t.IsZero() || t.After(c.limit) {
			t = c.limit
		}
		c.limit = time.Time{} // only the first: later ones are the body's, the next request's
	}
	return c.Conn.SetReadDeadline(t)
}

// NetConn is the connection underneath, as tls.Conn's (the speed test's
// socket options).
func (c *headConn) NetConn() net.Conn { return c.Conn }

func (c *headConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// fifo is an unbounded queue whose pop waits for an item: the Parker's
// ended probes (for its workers) and the connections it hands back (for
// net/http's accept loop).
type fifo[T any] struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []T
	closed bool
}

func (q *fifo[T]) init() { q.cond = sync.NewCond(&q.mu) }

// push queues v; false once the queue is closed.
func (q *fifo[T]) push(v T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.cond.Signal()
	return true
}

// pop waits for the next item; false once the queue is closed and empty.
func (q *fifo[T]) pop() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return v, false
	}
	v = q.items[0]
	var zero T
	q.items[0] = zero
	q.items = q.items[1:]
	return v, true
}

// close closes the queue and returns what it still held (nil when it was
// closed already).
func (q *fifo[T]) close() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	rest := q.items
	q.items = nil
	q.cond.Broadcast()
	return rest
}

// backListener is the net.Listener through which the Parker hands
// connections back to net/http. Its queue has no bound: a connection
// waits there only until net/http's accept loop takes it.
type backListener struct{ queue fifo[net.Conn] }

func newBackListener() *backListener {
	l := &backListener{}
	l.queue.init()
	return l
}

func (l *backListener) Accept() (net.Conn, error) {
	c, ok := l.queue.pop()
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

// put hands conn to Accept; false once the listener is closed.
func (l *backListener) put(conn net.Conn) bool { return l.queue.push(conn) }

// Close closes the listener and the connections it still holds.
func (l *backListener) Close() error {
	for _, c := range l.queue.close() {
		_ = c.Close()
	}
	return nil
}

func (l *backListener) Addr() net.Addr { return backAddr{} }

// backAddr is the address of connections handed back: they arrived on
// the server's own listeners.
type backAddr struct{}

func (backAddr) Network() string { return "parked" }
func (backAddr) String() string  { return "parked" }
