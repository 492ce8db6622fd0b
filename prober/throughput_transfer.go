package prober

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"

	"github.com/isp-checker/isp-checker/config"
)

// transfer is one probe's set of parallel HTTP streams.
type transfer struct {
	o          config.ThroughputProbe
	u          *url.URL
	hostHeader string
	logger     *slog.Logger
	clients    []*http.Client
	conns      *connTracker
	budget     byteBudget
	perRequest int64 // upload body size

	moved    atomic.Int64 // payload bytes read (download) or handed to the connection (upload)
	requests atomic.Int64
	status   atomic.Int64

	// Set by run.
	samples    []progress
	stopReason string
}

func (p *throughputProbe) newTransfer(ctx context.Context, u *url.URL, hostHeader, serverName string) (*transfer, error) {
	o := p.cfg
	tr := &transfer{o: o, u: u, hostHeader: hostHeader, logger: p.logger, conns: &connTracker{}}
	if o.MaxBytes > 0 {
		tr.budget.limited = true
		tr.budget.left.Store(int64(o.MaxBytes))
	}
	tr.perRequest = int64(o.UploadRequestBytes)
	if o.MaxBytes > 0 {
		share := (int64(o.MaxBytes) + int64(o.Connections) - 1) / int64(o.Connections)
		tr.perRequest = max(1, min(tr.perRequest, share))
	}
	dialer, err := p.req.Policy.Dialer("tcp", o.SourceIPAddress)
	if err != nil {
		return nil, err
	}
	// Redirects to other names resolve at dial time; Control checks every
	// address before connect.
	dialer.Resolver = Resolver
	if cc := o.CongestionControl; cc != "" {
		check := dialer.Control
		dialer.Control = func(network, address string, c syscall.RawConn) error {
			if check != nil {
				if err := check(network, address, c); err != nil {
					return err
				}
			}
			return setCongestionControl(c, cc)
		}
	}
	checked := p.req.Policy.DialExempting(o.HTTPClientConfig.Proxy(), dialer.DialContext)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := checked(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return tr.conns.track(c), nil
	}
	hc := o.HTTPClientConfig
	if hc.TLSConfig.ServerName == "" {
		hc.TLSConfig.ServerName = serverName
	}
	for range o.Connections {
		// One transport per stream, so that each has its own connection
		// (HTTP/2 would otherwise multiplex them all onto one), and its
		// own bound on each response's headers.
		head := &headGuard{perRequest: true}
		rt, err := pconfig.NewRoundTripperFromConfigWithContext(ctx, hc, "throughput_probe",
			pconfig.WithDialContextFunc(head.dial(dial)), pconfig.WithUserAgent(tpUserAgent()))
		if err != nil {
			tr.close()
			return nil, err
		}
		c := &http.Client{Transport: &guardedTransport{rt: rt, g: head}, CheckRedirect: p.checkRedirect}
		if !hc.FollowRedirects {
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		}
		tr.clients = append(tr.clients, c)
	}
	return tr, nil
}

// checkRedirect refuses a hop the target policy denies before it is
// requested (the dial wrapper and Control check it again), and names a
// redirect loop as one.
func (p *throughputProbe) checkRedirect(r *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("redirect loop: stopped after %d redirects", maxRedirects)
	}
	return p.req.Policy.AllowHost(r.URL.Hostname())
}

// hostOnly strips the port from a Host header value.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func tpUserAgent() string {
	if version.Version == "" {
		return "isp-checker"
	}
	return "isp-checker/" + version.Version
}

func (tr *transfer) close() {
	for _, c := range tr.clients {
		c.CloseIdleConnections()
	}
}

// progressBytes is the payload delivered so far: for an upload the bytes
// the server acknowledged (capped by the bytes written, so request headers
// do not count), where the kernel says; otherwise the bytes moved.
func (tr *transfer) progressBytes() int64 {
	moved := tr.moved.Load()
	if tr.o.Direction == config.ThroughputUpload {
		if acked, ok := tr.conns.acked(); ok {
			return min(acked, moved)
		}
	}
	return moved
}

// run moves data until duration has passed, the byte budget is spent, a
// stream fails or ctx ends, recording progress every tpSampleEvery; it
// closes stop when the transfer ends (before connections are torn down).
func (tr *transfer) run(ctx context.Context, start time.Time, duration time.Duration, stop chan struct{}) error {
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(tr.clients))
	var wg sync.WaitGroup
	for i, c := range tr.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if tr.o.Direction == config.ThroughputUpload {
				err = tr.upload(tctx, c)
			} else {
				err = tr.download(tctx, c)
			}
			if err != nil && tctx.Err() == nil {
				errc <- fmt.Errorf("connection %d: %w", i+1, err)
				return
			}
			tr.logger.Debug("transfer connection done", "connection", i+1, "err", err)
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	tr.samples = append(tr.samples, progress{at: 0, bytes: 0})
	tick := time.NewTicker(tpSampleEvery)
	defer tick.Stop()
	timer := time.NewTimer(time.Until(start.Add(duration)))
	defer timer.Stop()
	var err error
loop:
	for {
		select {
		case <-tick.C:
			tr.samples = append(tr.samples, progress{at: time.Since(start), bytes: tr.progressBytes()})
		case <-timer.C:
			tr.stopReason = StopDuration
			break loop
		case <-allDone:
			select {
			case err = <-errc:
				tr.stopReason = StopError
				break loop
			default:
			}
			tr.stopReason = StopMaxBytes
			if !tr.budget.spent() {
				// Every stream ended by itself without an error: cannot
				// happen with a budget left, but say so if it does.
				err = errors.New("every connection ended before the transfer did")
				tr.stopReason = StopError
			}
			break loop
		case err = <-errc:
			tr.stopReason = StopError
			break loop
		case <-ctx.Done():
			tr.stopReason = StopDeadline
			break loop
		}
	}
	tr.samples = append(tr.samples, progress{at: time.Since(start), bytes: tr.progressBytes()})
	close(stop)
	// Reset rather than close the connections: a closed socket would go
	// on sending what its send buffer holds (megabytes, seconds on a slow
	// link), loading the link after the probe and into the next one.
	tr.conns.abortAll()
	cancel()
	wg.Wait()
	if err == nil && tr.stopReason == StopDeadline {
		err = errors.New("the probe's deadline came before the transfer ended")
	}
	return err
}

func (tr *transfer) newRequest(ctx context.Context, method string, body io.Reader) (*http.Request, error) {
	if tr.o.Method != "" {
		method = tr.o.Method
	}
	r, err := http.NewRequestWithContext(ctx, method, tr.u.String(), body)
	if err != nil {
		return nil, err
	}
	r.Host = tr.hostHeader
	for k, v := range tr.o.Headers {
		if strings.EqualFold(k, "Host") {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	if r.Header.Get("Accept-Encoding") == "" {
		r.Header.Set("Accept-Encoding", "identity")
	}
	return r, nil
}

// checkStatus fails non-2xx responses, quoting the start of the body.
func (tr *transfer) checkStatus(resp *http.Response) error {
	tr.status.Store(int64(resp.StatusCode))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	msg := fmt.Sprintf("HTTP status %d (want 2xx)", resp.StatusCode)
	if body := strings.TrimSpace(string(b)); body != "" {
		msg += fmt.Sprintf(": %q", body)
	}
	if resp.StatusCode == http.StatusRequestEntityTooLarge && tr.o.Direction == config.ThroughputUpload {
		msg += fmt.Sprintf(" (each upload request sends %d bytes: lower upload_request_bytes, or raise the server's limit)", tr.perRequest)
	}
	return errors.New(msg)
}

// download GETs the URL again and again, reading every body, until ctx
// ends or the budget is spent.
func (tr *transfer) download(ctx context.Context, c *http.Client) error {
	buf := make([]byte, tpReadChunk)
	for ctx.Err() == nil {
		if tr.budget.spent() {
			return nil
		}
		r, err := tr.newRequest(ctx, http.MethodGet, nil)
		if err != nil {
			return err
		}
		tr.requests.Add(1)
		resp, err := c.Do(r)
		if err != nil {
			return err
		}
		n, err := tr.readBody(resp, buf)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		if n == 0 && !tr.budget.spent() && ctx.Err() == nil {
			return errors.New("the response body was empty")
		}
	}
	return nil
}

func (tr *transfer) readBody(resp *http.Response, buf []byte) (int64, error) {
	if err := tr.checkStatus(resp); err != nil {
		return 0, err
	}
	var total int64
	for {
		want := tr.budget.take(int64(len(buf)))
		if want == 0 {
			return total, nil
		}
		n, err := resp.Body.Read(buf[:want])
		tr.budget.give(want - int64(n))
		tr.moved.Add(int64(n))
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("reading response body: %w", err)
		}
	}
}

// upload POSTs bodies of perRequest bytes (less at the end of the budget)
// one after another until ctx ends or the budget is spent.
func (tr *transfer) upload(ctx context.Context, c *http.Client) error {
	for ctx.Err() == nil {
		size := tr.budget.take(tr.perRequest)
		if size == 0 {
			return nil
		}
		body := &payloadReader{left: size, moved: &tr.moved, off: rand.IntN(len(randomPayload()))}
		r, err := tr.newRequest(ctx, http.MethodPost, body)
		if err != nil {
			return err
		}
		r.ContentLength = size
		r.Header.Set("Content-Type", "application/octet-stream")
		tr.requests.Add(1)
		resp, err := c.Do(r)
		if err != nil {
			return err
		}
		err = tr.checkStatus(resp)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		if body.left > 0 && ctx.Err() == nil {
			return fmt.Errorf("the server answered %d before reading the whole upload (%d bytes unsent)", resp.StatusCode, body.left)
		}
	}
	return nil
}

// randomPayload is the data uploads send: random, so compression on the
// path cannot inflate the rate.
var randomPayload = sync.OnceValue(func() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
})

// payloadReader reads left bytes of randomPayload, counting them in moved.
type payloadReader struct {
	left  int64
	off   int
	moved *atomic.Int64
}

func (r *payloadReader) Read(b []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	src := randomPayload()
	n := copy(b[:min(int64(len(b)), r.left, tpReadChunk)], src[r.off:])
	r.off = (r.off + n) % len(src)
	r.left -= int64(n)
	r.moved.Add(int64(n))
	return n, nil
}

// byteBudget is max_bytes shared by all streams.
type byteBudget struct {
	limited bool
	left    atomic.Int64
}

// take reserves up to want bytes and returns how many it got (want when
// unlimited, 0 when the budget is spent).
func (b *byteBudget) take(want int64) int64 {
	if !b.limited {
		return want
	}
	for {
		cur := b.left.Load()
		if cur <= 0 {
			return 0
		}
		got := min(want, cur)
		if b.left.CompareAndSwap(cur, cur-got) {
			return got
		}
	}
}

// give returns bytes taken but not used.
func (b *byteBudget) give(n int64) {
	if b.limited && n > 0 {
		b.left.Add(n)
	}
}

func (b *byteBudget) spent() bool { return b.limited && b.left.Load() <= 0 }

// connTracker remembers the transfer's TCP connections, to count them and
// to read how many bytes their peers acknowledged.
type connTracker struct {
	mu    sync.Mutex
	conns []*trackedConn
	final int64 // bytes acked by connections already closed
	noTCP bool  // a connection had no TCP info
}

type trackedConn struct {
	net.Conn
	tcp    *net.TCPConn
	t      *connTracker
	closed bool // under t.mu
}

func (t *connTracker) track(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, t: t}
	tc.tcp, _ = c.(*net.TCPConn)
	t.mu.Lock()
	t.conns = append(t.conns, tc)
	t.mu.Unlock()
	return tc
}

func (t *connTracker) opened() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// acked sums the bytes acknowledged on every connection; false when the
// kernel does not say.
func (t *connTracker) acked() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sum := t.final
	for _, c := range t.conns {
		if c.closed {
			continue
		}
		if c.tcp == nil {
			return 0, false
		}
		n, ok := tcpBytesAcked(c.tcp)
		if !ok {
			return 0, false
		}
		sum += n
	}
	return sum, !t.noTCP
}

// abortAll makes closing every open connection send a reset and drop
// unsent data (SO_LINGER 0).
func (t *connTracker) abortAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		if !c.closed && c.tcp != nil {
			_ = c.tcp.SetLinger(0)
		}
	}
}

// Close records the connection's acknowledged bytes before closing it.
func (c *trackedConn) Close() error {
	c.t.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.tcp != nil {
			if n, ok := tcpBytesAcked(c.tcp); ok {
				c.t.final += n
			} else {
				c.t.noTCP = true
			}
		}
	}
	c.t.mu.Unlock()
	return c.Conn.Close()
}
