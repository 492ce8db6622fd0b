package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/rpm"
)

// errNoHTTP2 is a test host that does not speak HTTP/2: self probes must
// share the load-generating connections, which HTTP/1.1 cannot.
var errNoHTTP2 = errors.New("the test host did not negotiate HTTP/2 (ALPN h2), which the responsiveness test needs " +
	"(its self probes share the loaded connections); an isp-checker far end speaks it with TLS from --web.config.file")

// connTimes is what dialling one test connection took.
type connTimes struct {
	tcp, tls time.Duration
	state    *tls.ConnectionState
}

// dialTest opens one test connection to p.addr: TCP (through the policy),
// then TLS for https, requiring h2. track, when set, keeps the connection
// for byte counts and for the reset at the end of a stage.
func (p *responsivenessProbe) dialTest(ctx context.Context, track *connTracker) (net.Conn, connTimes, error) {
	var ct connTimes
	d, err := p.dialer()
	if err != nil {
		return nil, ct, err
	}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, ct, err
	}
	ct.tcp = time.Since(start)
	if track != nil {
		c = track.track(c)
	}
	if p.tlsCfg == nil {
		return c, ct, nil
	}
	tc := tls.Client(c, p.tlsCfg.Clone())
	start = time.Now()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, ct, fmt.Errorf("TLS handshake: %w", err)
	}
	ct.tls = time.Since(start)
	cs := tc.ConnectionState()
	ct.state = &cs
	if cs.NegotiatedProtocol != "h2" {
		_ = tc.Close()
		return nil, ct, errNoHTTP2
	}
	return tc, ct, nil
}

// newTransport is an HTTP/2-only transport whose connections are dialTest's
// (h2c, HTTP/2 without TLS, for http:// URLs).
func (p *responsivenessProbe) newTransport(dial func(ctx context.Context) (net.Conn, error)) *http.Transport {
	protos := new(http.Protocols)
	tr := &http.Transport{
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		Protocols:              protos,
	}
	if p.tlsCfg != nil {
		// No TLSClientConfig: dialTest does TLS, and the transport would
		// rewrite the shared config's NextProtos.
		protos.SetHTTP2(true)
		tr.DialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
	} else {
		protos.SetUnencryptedHTTP2(true)
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
	}
	return tr
}

func (p *responsivenessProbe) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	r.Host = p.host
	r.Header.Set("User-Agent", tpUserAgent())
	r.Header.Set("Accept-Encoding", "identity") // the draft's MUST: no compression of the payload
	return r, nil
}

// foreignProbe GETs the small URL on a new connection: tcp_f and tls_f
// from the dial, http_f from the request to the end of the 1-byte body.
// cs is the TLS state (nil without TLS).
func (p *responsivenessProbe) foreignProbe(ctx context.Context) (rpm.Foreign, *tls.ConnectionState, error) {
	var f rpm.Foreign
	var ct connTimes
	var dialed bool
	tr := p.newTransport(func(ctx context.Context) (net.Conn, error) {
		c, t, err := p.dialTest(ctx, nil)
		ct, dialed = t, err == nil
		return c, err
	})
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	var sent time.Time
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { sent = time.Now() }}
	req, err := p.newRequest(httptrace.WithClientTrace(ctx, trace), http.MethodGet, p.urls.small.String(), nil)
	if err != nil {
		return f, nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return f, nil, unwrapURLError(err)
	}
	defer func() { _ = resp.Body.Close() }()
	err = readSmall(resp)
	end := time.Now()
	if err != nil {
		return f, nil, err
	}
	if !dialed || sent.IsZero() {
		return f, nil, errors.New("the foreign probe did not open a connection of its own")
	}
	f.TCP, f.HTTP = ct.tcp, end.Sub(sent)
	if ct.state != nil {
		f.TLS = ct.tls / time.Duration(rpm.TLSRoundTrips(ct.state.Version, ct.state.DidResume))
	}
	return f, ct.state, nil
}

// readSmall checks and reads a small-object response to its end.
func readSmall(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the small object answered HTTP status %d (want 200)", resp.StatusCode)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
		return fmt.Errorf("reading the small object: %w", err)
	}
	return nil
}

// lgc is one load-generating connection: its own transport, so its own
// TCP connection, carrying one endless transfer and the self probes.
type lgc struct {
	client *http.Client
	tr     *http.Transport
	ready  atomic.Bool // the transfer is running: self probes may use it
}

// stageRun is one direction's measurement in progress.
type stageRun struct {
	p     *responsivenessProbe
	dir   string
	ctx   context.Context
	st    *rpm.Stage
	conns *connTracker // the load-generating connections
	moved atomic.Int64 // payload bytes read (download) or handed to HTTP/2 (upload)

	mu       sync.Mutex
	lgcs     []*lgc // running
	peak     int
	failed   int
	firstErr error
	anyBytes bool
	foreign  []rpm.Foreign // completed since the last interval ended
	self     []time.Duration
	windows  []rpm.Probes // per interval, the last MAD

	pairs, probeErrs atomic.Int64
	probeEvery       atomic.Int64 // nanoseconds between pairs; 0 before saturation
	fatal            chan error
	wg               sync.WaitGroup
}

// runStage runs one direction for at most budget. hold, when set, runs
// once the stage has its figure, before the load stops: the concurrent
// mode keeps each direction's load on until the other is done too.
func (p *responsivenessProbe) runStage(ctx context.Context, dir string, budget time.Duration, hold func(context.Context)) (ResponsivenessStage, error) {
	out := ResponsivenessStage{Direction: dir, Confidence: rpm.ConfidenceNone.String(), StopReason: RPMStopError}
	st, err := rpm.NewStage(p.params, p.tlsCfg != nil)
	if err != nil {
		return out, err
	}
	start := time.Now()
	sctx, cancel := context.WithDeadline(ctx, start.Add(budget))
	defer cancel()
	s := &stageRun{p: p, dir: dir, ctx: sctx, st: st, conns: &connTracker{}, fatal: make(chan error, 1)}
	defer s.teardown(cancel)

	s.spawn(st.Connections())
	s.wg.Add(1)
	go s.probeLoop()

	tick := time.NewTicker(p.params.ID)
	defer tick.Stop()
	var last int64
	var runErr error
loop:
	for {
		select {
		case <-tick.C:
		case err := <-s.fatal:
			runErr = err
			break loop
		case <-sctx.Done():
			out.StopReason = RPMStopTimeLimit
			break loop
		}
		now := s.progress()
		iv := rpm.Interval{Bytes: max(0, now-last)}
		last = now
		s.mu.Lock()
		iv.Foreign, iv.Self = s.foreign, s.self
		s.foreign, s.self = nil, nil
		s.windows = append(s.windows, rpm.Probes{Foreign: iv.Foreign, Self: iv.Self, TLS: p.tlsCfg != nil})
		if n := len(s.windows) - p.params.MAD; n > 0 {
			s.windows = slices.Delete(s.windows, 0, n) // only the last MAD make the overall figure
		}
		s.mu.Unlock()
		status, err := st.End(iv)
		if err != nil {
			runErr = err
			break
		}
		p.logger.Debug("responsiveness interval", "direction", dir, "interval", status.Interval, "bytes", iv.Bytes,
			"goodput_bytes_per_second", status.Goodput, "saturated", status.Saturated, "rpm", status.RPM,
			"foreign", len(iv.Foreign), "self", len(iv.Self), "connections", s.running())
		if status.Saturated {
			if every, err := p.params.ProbeInterval(status.Goodput); err == nil {
				s.probeEvery.Store(int64(every))
			}
		}
		if status.Done {
			out.StopReason = RPMStopStable
			break
		}
		if time.Until(start.Add(budget)) < p.params.ID/2 {
			out.StopReason = RPMStopTimeLimit
			break
		}
		s.spawn(status.Connections)
	}
	if hold != nil {
		hold(sctx)
	}
	s.teardown(cancel)

	r := st.Result()
	out.Seconds = time.Since(start).Seconds()
	out.Intervals = r.Intervals
	out.GoodputBytesPerSecond = r.Goodput
	out.GoodputSaturated = r.SaturatedAt >= 0
	out.Confidence = r.Confidence.String()
	out.Stable = r.Confidence == rpm.ConfidenceHigh
	out.ProbePairs, out.ProbeErrors = int(s.pairs.Load()), int(s.probeErrs.Load())
	out.Connections, out.ConnectionsFailed = s.peak, s.failed
	if r.RPM > 0 {
		c := r.Components
		out.RPM, out.ForeignRPM, out.LoadedRPM, out.RTTMeanRPM = c.RPM(), c.ForeignRPM(), c.LoadedRPM(), c.RTTMeanRPM()
		out.TCPForeignSeconds, out.TLSForeignSeconds = c.TCPForeign.Seconds(), c.TLSForeign.Seconds()
		out.HTTPForeignSeconds, out.HTTPSelfSeconds = c.HTTPForeign.Seconds(), c.HTTPSelf.Seconds()
		out.ForeignSamples, out.SelfSamples = c.ForeignSamples, c.SelfSamples
		out.window.TLS = p.tlsCfg != nil
		for _, w := range s.windows {
			out.window.Add(w)
		}
	}
	return out, runErr
}

// progress is the goodput moved so far: bytes read for a download; for an
// upload the bytes the server acknowledged (capped by those written, so
// framing and TLS overhead do not count), where the kernel says.
func (s *stageRun) progress() int64 {
	moved := s.moved.Load()
	if s.dir == config.ThroughputUpload {
		if acked, ok := s.conns.acked(); ok {
			return min(acked, moved)
		}
	}
	return moved
}

func (s *stageRun) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lgcs)
}

// spawn starts load-generating connections until want run.
func (s *stageRun) spawn(want int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.lgcs) < want && s.ctx.Err() == nil {
		l := &lgc{}
		l.tr = s.p.newTransport(func(ctx context.Context) (net.Conn, error) {
			c, _, err := s.p.dialTest(ctx, s.conns)
			return c, err
		})
		l.client = &http.Client{Transport: l.tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		s.lgcs = append(s.lgcs, l)
		s.peak = max(s.peak, len(s.lgcs))
		s.wg.Add(1)
		go s.runLGC(l)
	}
}

func (s *stageRun) runLGC(l *lgc) {
	defer s.wg.Done()
	var err error
	if s.dir == config.ThroughputUpload {
		err = s.upload(l)
	} else {
		err = s.download(l)
	}
	s.mu.Lock()
	for i, x := range s.lgcs {
		if x == l {
			s.lgcs = append(s.lgcs[:i], s.lgcs[i+1:]...)
			break
		}
	}
	if err != nil && s.ctx.Err() == nil {
		s.failed++
		if s.firstErr == nil {
			s.firstErr = err
		}
		s.p.logger.Warn("load-generating connection failed; it is replaced at the next interval", "direction", s.dir, "err", err)
		// A test host that never carried a byte, or one that keeps
		// dropping connections, cannot be measured: stop the stage.
		if !s.anyBytes || s.failed > 2*s.p.params.MNP {
			select {
			case s.fatal <- fmt.Errorf("load-generating connection: %w", err):
			default:
			}
		}
	}
	s.mu.Unlock()
	l.tr.CloseIdleConnections()
}

// download GETs the large URL, reading every byte; again when a bounded
// server ends the body.
func (s *stageRun) download(l *lgc) error {
	buf := make([]byte, tpReadChunk)
	for s.ctx.Err() == nil {
		req, err := s.p.newRequest(s.ctx, http.MethodGet, s.p.urls.large.String(), nil)
		if err != nil {
			return err
		}
		resp, err := l.client.Do(req)
		if err != nil {
			return unwrapURLError(err)
		}
		if resp.StatusCode != http.StatusOK {
			_ = resp.Body.Close()
			return fmt.Errorf("the large object answered HTTP status %d (want 200)", resp.StatusCode)
		}
		l.ready.Store(true)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				s.moved.Add(int64(n))
				s.markBytes()
			}
			// Let the probes' goroutines run: a stream that always has data
			// would otherwise hold a CPU for its whole time slice, and on a
			// CPU-bound path the probes would time this process's
			// scheduler (measured in the lab: 50–360 ms "TCP handshakes"
			// whose kernel RTT was 0.05 ms) instead of the network.
			runtime.Gosched()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				_ = resp.Body.Close()
				return fmt.Errorf("reading the large object: %w", err)
			}
		}
		_ = resp.Body.Close()
	}
	return nil
}

func (s *stageRun) markBytes() {
	s.mu.Lock()
	s.anyBytes = true
	s.mu.Unlock()
}

// upload POSTs an endless body of random data; again when a bounded
// server answers.
func (s *stageRun) upload(l *lgc) error {
	for s.ctx.Err() == nil {
		body := yielding{&payloadReader{left: math.MaxInt64, moved: &s.moved, off: rand.IntN(len(randomPayload()))}}
		req, err := s.p.newRequest(s.ctx, http.MethodPost, s.p.urls.upload.String(), body)
		if err != nil {
			return err
		}
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/octet-stream")
		// The request is on the connection once its headers are written;
		// the answer only comes when the server ends the upload.
		trace := &httptrace.ClientTrace{WroteHeaders: func() { l.ready.Store(true); s.markBytes() }}
		resp, err := l.client.Do(req.WithContext(httptrace.WithClientTrace(s.ctx, trace)))
		if err != nil {
			return unwrapURLError(err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the upload URL answered HTTP status %d (want 200)", resp.StatusCode)
		}
	}
	return nil
}

// yielding is an upload body that yields the CPU after every read, for
// the reason download gives.
type yielding struct{ r io.Reader }

func (y yielding) Read(b []byte) (int, error) {
	n, err := y.r.Read(b)
	runtime.Gosched()
	return n, err
}

// probeLoop launches probe pairs once goodput has saturated (the draft
// saturates first, and sizes probing by the capacity it found), one every
// probeEvery, at most rpmMaxInFlight waiting at once.
func (s *stageRun) probeLoop() {
	defer s.wg.Done()
	inflight := make(chan struct{}, rpmMaxInFlight)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		wait := time.Duration(s.probeEvery.Load())
		if wait == 0 {
			wait = 50 * time.Millisecond // not saturated yet: look again soon
		}
		t.Reset(wait)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if s.probeEvery.Load() == 0 {
			continue
		}
		select {
		case inflight <- struct{}{}:
		default:
			continue // a dead path: do not pile up probes
		}
		s.pairs.Add(1)
		s.wg.Add(3)
		var done sync.WaitGroup
		done.Add(2)
		go func() {
			defer s.wg.Done()
			defer done.Done()
			f, _, err := s.p.foreignProbe(s.ctx)
			s.record(err, func() { s.foreign = append(s.foreign, f) })
		}()
		go func() {
			defer s.wg.Done()
			defer done.Done()
			d, err := s.selfProbe()
			s.record(err, func() { s.self = append(s.self, d) })
		}()
		go func() { defer s.wg.Done(); done.Wait(); <-inflight }()
	}
}

// record keeps a completed probe, or counts a failed one (not the ones
// the stage's end cut short).
func (s *stageRun) record(err error, keep func()) {
	if s.ctx.Err() != nil {
		return
	}
	if err != nil {
		s.probeErrs.Add(1)
		s.p.logger.Debug("probe failed", "direction", s.dir, "err", err)
		return
	}
	s.mu.Lock()
	keep()
	s.mu.Unlock()
}

// selfProbe GETs the small URL on a load-generating connection chosen at
// random, as one more HTTP/2 stream.
func (s *stageRun) selfProbe() (time.Duration, error) {
	s.mu.Lock()
	var ready []*lgc
	for _, l := range s.lgcs {
		if l.ready.Load() {
			ready = append(ready, l)
		}
	}
	s.mu.Unlock()
	if len(ready) == 0 {
		return 0, errors.New("no load-generating connection is running")
	}
	l := ready[rand.IntN(len(ready))]
	var sent time.Time
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { sent, reused = time.Now(), i.Reused }}
	req, err := s.p.newRequest(httptrace.WithClientTrace(s.ctx, trace), http.MethodGet, s.p.urls.small.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, unwrapURLError(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := readSmall(resp); err != nil {
		return 0, err
	}
	if !reused {
		// The transport opened a connection of its own (the loaded one
		// was gone or full): not a self probe.
		return 0, errors.New("the self probe did not share a load-generating connection")
	}
	return time.Since(sent), nil
}

// teardown ends the stage: every connection is reset (SO_LINGER 0), not
// closed, so the data in its send buffer does not go on loading the link
// into the next stage, and every goroutine is waited for. It may run
// twice.
func (s *stageRun) teardown(cancel context.CancelFunc) {
	cancel()
	s.conns.abortAll()
	s.conns.closeAll()
	s.wg.Wait()
	s.mu.Lock()
	for _, l := range s.lgcs {
		l.tr.CloseIdleConnections()
	}
	s.mu.Unlock()
}

// closeAll closes every connection still open.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	open := make([]*trackedConn, 0, len(t.conns))
	for _, c := range t.conns {
		if !c.closed {
			open = append(open, c)
		}
	}
	t.mu.Unlock()
	for _, c := range open {
		_ = c.Close()
	}
}
