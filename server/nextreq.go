package server

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Reading an idle connection's next request (Parker.ReadRequests).
//
// Handed back to net/http, a kept-alive connection's next request costs a
// new connection goroutine, a 4 kB read and a 4 kB write buffer that never
// go back to net/http's pools (the request is hijacked again, and a
// hijacked connection's buffers are not pooled), a third 4 kB buffer at
// the hijack, and a pass through the admission gate: about 12 kB of
// garbage per scrape of a parked probe. A Parker that reads requests
// itself takes, on one of its workers, a plain request it can serve
// without waiting on anything (a /probe whose probe parks at once:
// ProbeHandler.quick) and runs the server's handler for it; it gives every
// other request, with the bytes it read, to net/http, which serves it as
// it would have, its own checks, limits and errors included.

// ReadRequests makes p read its idle connections' next requests itself
// (see above). Call it before srv serves, and only when srv.Handler is
// the exporter's own: without exporter-toolkit's web config, whose basic
// auth would run bcrypt on the Parker's few workers and whose TLS
// connections are never parked anyway.
func (p *Parker) ReadRequests() { p.readNext = true }

// A job is a Parker worker's: an ended probe to answer, or an idle
// connection whose next request (or its end) arrived.
type job struct {
	pk   *parked
	conn net.Conn
	// first: conn is new, and its first request head must be in by then
	// (zero: no limit, or not new).
	first time.Time
}

// next takes an idle connection that became readable (a new one's first
// head due by first).
func (p *Parker) next(conn net.Conn, first time.Time) {
	if p.readNext && p.quick.Load() != nil && p.queue.push(job{conn: conn, first: first}) {
		return
	}
	if first.IsZero() {
		p.handBack(conn) // an idle connection: nothing to hold to a limit
	} else {
		p.handBack(&headConn{Conn: conn, limit: first})
	}
}

// nextReader parses request heads for one worker, with buffers it keeps.
type nextReader struct {
	src bytes.Reader
	br  *bufio.Reader
}

func newNextReader() *nextReader {
	rd := &nextReader{}
	rd.br = bufio.NewReaderSize(&rd.src, peekLen)
	return rd
}

// read parses the request head at the start of data, if data holds a
// whole one that serveNext may take (plainRequest), and returns the
// request and a copy of the bytes past its head (a pipelined next one);
// nil when it may not.
func (rd *nextReader) read(data []byte, maxHeader int) (*http.Request, []byte) {
	end := bytes.Index(data, headEnd)
	if end < 0 || end+len(headEnd) > maxHeader {
		return nil, nil
	}
	end += len(headEnd)
	rd.src.Reset(data[:end])
	rd.br.Reset(&rd.src)
	// ReadRequest copies what it keeps: data may be reused after.
	req, err := http.ReadRequest(rd.br)
	// A head that ended before the first CRLF CRLF (a blank line after
	// bare LFs, which ReadRequest takes) leaves bytes unread: net/http
	// reads them as what follows, a next request or a body.
	if err != nil || rd.br.Buffered() > 0 || rd.src.Len() > 0 || !plainRequest(req) {
		return nil, nil
	}
	var rest []byte
	if end < len(data) {
		rest = bytes.Clone(data[end:])
	}
	return req, rest
}

// plainRequest reports whether req passes every check net/http's server
// makes of a request head beyond ReadRequest's, and is a plain GET with
// no body and nothing that asks more of the server (Expect, Upgrade, an
// absolute URI). Anything else goes to net/http.
func plainRequest(req *http.Request) bool {
	if req.Method != http.MethodGet || req.ProtoMajor != 1 || !strings.HasPrefix(req.RequestURI, "/") ||
		req.ContentLength != 0 || len(req.TransferEncoding) > 0 ||
		req.Header["Expect"] != nil || req.Header["Upgrade"] != nil {
		return false
	}
	// ReadRequest refused two Host headers and took the one out of the
	// header: an empty req.Host is a missing (or empty) one.
	if req.Host == "" && req.ProtoAtLeast(1, 1) || !httpguts.ValidHostHeader(req.Host) {
		return false
	}
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}

// serveNext reads conn's next request and serves it, or gives it to
// net/http.
func (p *Parker) serveNext(conn net.Conn, first time.Time, rd *nextReader) {
	w := &nextWriter{conn: conn}
	defer func() {
		// As net/http's per-connection recover: the process lives on, the
		// connection (unless a probe took it) is closed.
		if v := recover(); v != nil {
			p.logger.Error("serving a request of an idle connection panicked", "panic", v)
			if !w.hijacked {
				_ = conn.Close()
			}
		}
	}()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		_ = conn.Close()
		return
	}
	buf := peekBufs.Get().(*[peekLen]byte)
	defer peekBufs.Put(buf)
	n, err := recvNow(conn, buf[:], 0)
	switch {
	case err != nil || n == 0:
		_ = conn.Close() // the client closed it, or it broke
		return
	case n < 0: // nothing yet after all
		switch left := time.Until(first); {
		case first.IsZero():
			p.keep(conn, nil)
		case left <= 0:
			_ = conn.Close() // its header timeout passed, as net/http would
		case p.idle == nil || !p.idle.addFirst(conn, left):
			p.handBack(&headConn{Conn: conn, limit: first})
		}
		return
	}
	data := buf[:n]
	maxHeader := p.srv.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = http.DefaultMaxHeaderBytes
	}
	req, rest := rd.read(data, maxHeader)
	h := p.quick.Load()
	if req == nil || !strings.HasSuffix(req.URL.Path, "/probe") || !h.quick(req) {
		p.handBack(&headConn{Conn: conn, head: bytes.Clone(data), limit: first})
		return
	}
	p.readTotal.Add(1)
	ctx := context.WithValue(context.WithValue(context.Background(), http.ServerContextKey, p.srv),
		http.LocalAddrContextKey, conn.LocalAddr())
	req = req.WithContext(ctx)
	req.RemoteAddr = conn.RemoteAddr().String()
	w.rest = rest
	handler := p.srv.Handler
	if handler == nil {
		handler = http.DefaultServeMux
	}
	handler.ServeHTTP(w, req)
	if w.hijacked {
		return // parked: the Parker answers when the probe ends
	}
	p.writeNext(w, req)
}

// writeNext writes the answer of a request serveNext served that did not
// park (a refusal), then keeps the connection, or closes it as net/http
// would. The answer is a few hundred bytes the socket takes at once;
// a client that does not take them loses the connection.
func (p *Parker) writeNext(w *nextWriter, req *http.Request) {
	b := w.response()
	if _, ok := b.header["Content-Type"]; !ok && b.body.Len() > 0 {
		b.header.Set("Content-Type", http.DetectContentType(b.body.Bytes()))
	}
	keep := p.keepsOpen(req.Close)
	bufs := b.encode(!keep, keepAlive10(req))
	_ = w.conn.SetWriteDeadline(time.Now().Add(parkedQuickWrite))
	_, err := bufs.WriteTo(w.conn)
	_ = w.conn.SetWriteDeadline(time.Time{})
	if err != nil || !keep {
		_ = w.conn.Close()
		return
	}
	p.keep(w.conn, w.rest)
}

// nextWriter is the http.ResponseWriter of a request serveNext serves:
// Parker.hijack takes its connection, or it buffers the answer.
type nextWriter struct {
	conn     net.Conn
	rest     []byte // read past the request
	resp     *bufferedResponse
	hijacked bool
}

func (w *nextWriter) response() *bufferedResponse {
	if w.resp == nil {
		w.resp = newBufferedResponse(nil)
	}
	return w.resp
}

func (w *nextWriter) Header() http.Header { return w.response().header }

func (w *nextWriter) WriteHeader(code int) {
	if !w.hijacked {
		w.response().WriteHeader(code)
	}
}

func (w *nextWriter) Write(b []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	return w.response().Write(b)
}
