package speedtest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/isp-checker/isp-checker/internal/rpm"
)

// connStates counts the server's connections by state.
type connStates struct {
	opened, closed atomic.Int64
	mu             sync.Mutex
	conns          []net.Conn
}

func (c *connStates) track(nc net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		c.opened.Add(1)
		c.mu.Lock()
		c.conns = append(c.conns, nc)
		c.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		c.closed.Add(1)
	}
}

func (c *connStates) open() int64 { return c.opened.Load() - c.closed.Load() }

type rpmServer struct {
	*httptest.Server
	h     *Handler
	reg   *prometheus.Registry
	conns *connStates
}

// newRPMServer serves the endpoints as `serve --speedtest.enable` does:
// with Handler.ConnContext, over TLS with HTTP/2 when tls is set.
func newRPMServer(t *testing.T, o Options, useTLS bool) *rpmServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	h := New(o)
	mux := http.NewServeMux()
	for p, r := range h.Routes() {
		mux.Handle(p, r)
	}
	s := httptest.NewUnstartedServer(mux)
	cs := &connStates{}
	s.Config.ConnContext = h.ConnContext
	s.Config.ConnState = cs.track
	if useTLS {
		s.EnableHTTP2 = true
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return &rpmServer{Server: s, h: h, reg: reg, conns: cs}
}

// transport is a new client transport for s, with its own connections,
// as a load-generating connection or a foreign probe needs.
func (s *rpmServer) transport() *http.Transport {
	tr := &http.Transport{ForceAttemptHTTP2: true, DisableCompression: true}
	if s.TLS != nil {
		tr.TLSClientConfig = s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	return tr
}

func counterValue(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }

func rpmRequests(h *Handler, endpoint, result string) float64 {
	return counterValue(h.rpmRequests.WithLabelValues(endpoint, result))
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nqConfigDoc is what a client reads from /.well-known/nq, following the
// draft's rules: version 1, the three URLs each once, one host.
func fetchNQ(t *testing.T, c *http.Client, configURL string) (small, large, upload string, raw map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, configURL, nil)
	req.Header.Set("Accept-Encoding", "gzip") // as goresponsiveness asks; the answer must not be compressed
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("config: %d, Content-Type %q, Content-Encoding %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"), body)
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("config is not JSON: %v: %s", err, body)
	}
	var doc struct {
		Version int               `json:"version"`
		URLs    map[string]string `json:"urls"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != 1 {
		t.Fatalf("config version %d, want 1", doc.Version)
	}
	small, large, upload = doc.URLs["small_download_url"], doc.URLs["large_download_url"], doc.URLs["upload_url"]
	var host string
	for _, s := range []string{small, large, upload} {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("config URL %q is not an http(s) URL", s)
		}
		if host != "" && u.Host != host {
			t.Fatalf("config URLs on different hosts (%s, %s): the draft makes a client ignore the document", host, u.Host)
		}
		host = u.Host
	}
	return small, large, upload, raw
}

func TestWellKnown(t *testing.T) {
	s := newRPMServer(t, Options{}, true)
	small, large, upload, raw := fetchNQ(t, s.Client(), s.URL+WellKnownPath)
	if small != s.URL+RPMSmallPath || large != s.URL+RPMLargePath || upload != s.URL+RPMUploadPath {
		t.Errorf("URLs %s %s %s, want %s under the server's own %s", small, large, upload, RPMSmallPath, s.URL)
	}
	// Both name sets over https: the older ones are all goresponsiveness reads.
	urls := raw["urls"].(map[string]any)
	keys := make([]string, 0, len(urls))
	for k := range urls {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"https_upload_url", "large_download_url", "large_https_download_url", "small_download_url", "small_https_download_url", "upload_url"}
	if !slices.Equal(keys, want) {
		t.Errorf("url names %v, want %v", keys, want)
	}
	if urls["small_https_download_url"] != small || urls["large_https_download_url"] != large || urls["https_upload_url"] != upload {
		t.Errorf("the older names point elsewhere: %v", urls)
	}
	if len(raw) != 2 {
		t.Errorf("document has %d top-level names, want version and urls only: %v", len(raw), raw)
	}
	if rpmRequests(s.h, EndpointConfig, ResultSuccess) != 1 {
		t.Error("config request not counted")
	}

	// Plain HTTP: http URLs, and no names that promise https.
	p := newRPMServer(t, Options{}, false)
	small, _, _, raw = fetchNQ(t, p.Client(), p.URL+WellKnownPath)
	if !strings.HasPrefix(small, "http://") || len(raw["urls"].(map[string]any)) != 3 {
		t.Errorf("plain HTTP document: small %s, urls %v", small, raw["urls"])
	}

	// A public URL behind a proxy, with a path prefix.
	pub, err := ParsePublicURL("https://speed.example.net:8443/isp/")
	if err != nil {
		t.Fatal(err)
	}
	q := newRPMServer(t, Options{PublicURL: pub}, false)
	small, _, upload, _ = fetchNQ(t, q.Client(), q.URL+WellKnownPath)
	if small != "https://speed.example.net:8443/isp"+RPMSmallPath || upload != "https://speed.example.net:8443/isp"+RPMUploadPath {
		t.Errorf("with a public URL: %s, %s", small, upload)
	}

	resp, err := http.Post(p.URL+WellKnownPath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST config: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
}

func TestParsePublicURL(t *testing.T) {
	for _, bad := range []string{"speed.example.net", "ftp://speed.example.net", "https://", "https://h/?a=b", "https://u:p@h/", "https://h/#x", "%zz"} {
		if _, err := ParsePublicURL(bad); err == nil {
			t.Errorf("ParsePublicURL(%q) accepted", bad)
		}
	}
	u, err := ParsePublicURL("http://[2001:db8::1]:9799")
	if err != nil || u.String() != "http://[2001:db8::1]:9799" {
		t.Errorf("ParsePublicURL: %v, %v", u, err)
	}
}

func TestSmall(t *testing.T) {
	s := newRPMServer(t, Options{}, true)
	tr := s.transport()
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, s.URL+RPMSmallPath, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 1 || resp.ContentLength != 1 || resp.ProtoMajor != 2 {
		t.Errorf("small: %d, %d bytes (Content-Length %d), %s", resp.StatusCode, len(body), resp.ContentLength, resp.Proto)
	}
	if resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Date") != "" {
		t.Errorf("small headers %v: want octet-stream, no encoding, no Date", resp.Header)
	}
	resp, err = (&http.Client{Transport: tr}).Post(s.URL+RPMSmallPath, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST small: %d", resp.StatusCode)
	}
	if rpmRequests(s.h, EndpointSmall, ResultSuccess) != 1 || rpmRequests(s.h, EndpointSmall, ResultBadRequest) != 1 {
		t.Error("small requests not counted")
	}
}

// slowReader reads r in 16 KiB pieces, one every pause, so the test's
// transfers do not take a core each.
func drain(ctx context.Context, r io.Reader, pause time.Duration, n *atomic.Int64) error {
	buf := make([]byte, 16<<10)
	for {
		k, err := r.Read(buf)
		n.Add(int64(k))
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// pacedBody is an endless upload body, 16 KiB every pause.
type pacedBody struct {
	ctx   context.Context
	pause time.Duration
	first bool
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.first {
		select {
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		case <-time.After(b.pause):
		}
	}
	b.first = true
	n := min(len(p), 16<<10)
	clear(p[:n])
	return n, nil
}

// lgc is one load-generating connection: its own transport, one endless
// transfer, and the self probes multiplexed on it.
type lgc struct {
	tr     *http.Transport
	client *http.Client
	proto  atomic.Int32 // 2 once the transfer's connection negotiated h2
	moved  atomic.Int64
}

// foreignProbe is the draft's foreign probe: a GET of the small URL on a
// brand-new connection, timed in its three parts. Like goresponsiveness it
// never closes the transport: the server must let the connection go.
func foreignProbe(t *testing.T, tr *http.Transport, small string) (rpm.Foreign, bool) {
	var f rpm.Foreign
	var connStart, tlsStart, wrote time.Time
	var version uint16
	var resumed, reused bool
	trace := &httptrace.ClientTrace{
		ConnectStart: func(string, string) { connStart = time.Now() },
		ConnectDone:  func(string, string, error) { f.TCP = time.Since(connStart) },
		TLSHandshakeStart: func() {
			tlsStart = time.Now()
		},
		TLSHandshakeDone: func(cs tls.ConnectionState, _ error) {
			f.TLS = time.Since(tlsStart)
			version, resumed = cs.Version, cs.DidResume
		},
		GotConn:      func(i httptrace.GotConnInfo) { reused = i.Reused },
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote = time.Now() },
	}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, small, nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Errorf("foreign probe: %v", err)
		return f, false
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	f.HTTP = time.Since(wrote)
	f.TLS /= time.Duration(rpm.TLSRoundTrips(version, resumed))
	if reused || resp.ProtoMajor != 2 || n != 1 || f.TCP <= 0 || f.TLS <= 0 {
		t.Errorf("foreign probe: reused %v, %s, %d bytes, tcp %v tls %v", reused, resp.Proto, n, f.TCP, f.TLS)
		return f, false
	}
	return f, true
}

// selfProbe is the draft's self probe: a GET of the small URL multiplexed
// on a load-generating connection, which it must reuse.
func selfProbe(t *testing.T, l *lgc, small string) (time.Duration, bool) {
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, small, nil)
	req.Header.Set("Accept-Encoding", "identity")
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		t.Errorf("self probe: %v", err)
		return 0, false
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if !reused || n != 1 {
		t.Errorf("self probe: reused %v, %d bytes: it must ride on the load-generating connection", reused, n)
		return 0, false
	}
	return d, true
}

// A standard client's whole flow, as the draft describes it (and as
// goresponsiveness and networkQuality run it), against the server over
// TLS with HTTP/2: read the configuration, open 16 load-generating
// connections per direction at once (the parallel mode: 32 transfers),
// launch foreign and self probes among them, compute RPM from the probes,
// then stop everything. The server must negotiate h2 on every connection,
// keep every transfer running (no size cap, no 503 at 40 requests), answer
// every probe, let each foreign probe's connection go, and count it all.
func TestStandardClientFlow(t *testing.T) {
	const perDirection, pairs = 16, 40
	s := newRPMServer(t, Options{}, true)
	cfg := s.transport()
	defer cfg.CloseIdleConnections()
	small, large, upload, _ := fetchNQ(t, &http.Client{Transport: cfg}, s.URL+WellKnownPath)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var lgcs []*lgc
	errs := make(chan error, 2*perDirection)
	for i := range 2 * perDirection {
		l := &lgc{tr: s.transport()}
		l.client = &http.Client{Transport: l.tr}
		lgcs = append(lgcs, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req *http.Request
			if i%2 == 0 {
				req, _ = http.NewRequestWithContext(ctx, http.MethodGet, large, nil)
				req.Header.Set("Accept-Encoding", "identity")
			} else {
				// Like goresponsiveness: no Content-Type, no length.
				req, _ = http.NewRequestWithContext(ctx, http.MethodPost, upload, io.NopCloser(&pacedBody{ctx: ctx, pause: 5 * time.Millisecond}))
				req.ContentLength = -1
			}
			// The protocol ALPN chose on the transfer's connection (an
			// upload has no response until it ends).
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
				if tc, ok := i.Conn.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
					l.proto.Store(2)
				}
			}}))
			resp, err := l.client.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					errs <- err
				}
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Type") != "application/octet-stream" {
				errs <- errors.New("large: " + resp.Status + " " + resp.Header.Get("Content-Type"))
				return
			}
			if err := drain(ctx, resp.Body, 5*time.Millisecond, &l.moved); ctx.Err() == nil {
				errs <- err
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		for _, l := range lgcs {
			l.tr.CloseIdleConnections()
		}
	}()
	// Both kinds of transfer running on the server.
	waitFor(t, "32 load-generating transfers on the server", func() bool { return len(s.h.lgcSem) == 2*perDirection })

	var probes rpm.Probes
	probes.TLS = true
	var foreignTransports []*http.Transport
	for range pairs {
		tr := s.transport()
		foreignTransports = append(foreignTransports, tr)
		if f, ok := foreignProbe(t, tr, small); ok {
			probes.Foreign = append(probes.Foreign, f)
		}
		if d, ok := selfProbe(t, lgcs[rand.IntN(len(lgcs))], small); ok {
			probes.Self = append(probes.Self, d)
		}
	}
	defer func() {
		for _, tr := range foreignTransports {
			tr.CloseIdleConnections()
		}
	}()
	c, err := rpm.Aggregate(probes, rpm.Default().TMP)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loopback, 32 transfers: TM tcp_f %v, tls_f %v, http_f %v, http_l %v: %.0f RPM (drafts 02/03: %.0f)",
		c.TCPForeign, c.TLSForeign, c.HTTPForeign, c.HTTPSelf, c.RPM(), c.RTTMeanRPM())
	if c.ForeignSamples != pairs || c.SelfSamples != pairs || !(c.RPM() > 0) {
		t.Errorf("%d foreign and %d self samples, %v RPM; want %d each and a figure", c.ForeignSamples, c.SelfSamples, c.RPM(), pairs)
	}

	// Every foreign probe's connection goes away on its own (GOAWAY),
	// though the client keeps its transport: only the 32 load-generating
	// connections and the config one may stay.
	waitFor(t, "the foreign probes' connections to close", func() bool { return s.conns.open() <= 2*perDirection+1 })
	if got := s.conns.opened.Load(); got < 2*perDirection+pairs+1 {
		t.Errorf("%d connections opened, want one per transfer, per foreign probe and the config's (%d)", got, 2*perDirection+pairs+1)
	}
	for i, l := range lgcs {
		if l.proto.Load() != 2 {
			t.Errorf("load-generating connection %d: HTTP/%d, want HTTP/2", i, l.proto.Load())
		}
	}
	select {
	case err := <-errs:
		t.Fatalf("a transfer failed while the test ran: %v", err)
	default:
	}
	if got := rpmRequests(s.h, EndpointSmall, ResultSuccess); got != 2*pairs {
		t.Errorf("%g small requests served, want %d", got, 2*pairs)
	}

	cancel()
	wg.Wait()
	// The client stopping is the normal end of every transfer.
	waitFor(t, "every transfer to end as aborted", func() bool {
		return rpmRequests(s.h, EndpointLarge, ResultAborted) == perDirection && rpmRequests(s.h, EndpointUpload, ResultAborted) == perDirection
	})
	for _, ep := range []string{EndpointLarge, EndpointUpload} {
		for _, r := range []string{ResultBusy, ResultTimeLimit, ResultBadRequest, ResultSuccess} {
			if got := rpmRequests(s.h, ep, r); got != 0 {
				t.Errorf("%s requests with result %s: %g, want 0", ep, r, got)
			}
		}
	}
	var down, up int64
	for i, l := range lgcs {
		if i%2 == 0 {
			down += l.moved.Load()
		}
	}
	served := counterValue(s.h.bytes.WithLabelValues("download"))
	received := counterValue(s.h.bytes.WithLabelValues("upload"))
	up = int64(received)
	if down == 0 || served < float64(down) || up == 0 {
		t.Errorf("client read %d bytes, server sent %g; server received %d", down, served, up)
	}
	if len(s.h.lgcSem) != 0 {
		t.Errorf("%d load-generating slots still held", len(s.h.lgcSem))
	}
}

// A transfer slot limit of 1: the second transfer gets 503 at once, while
// probes and the configuration are still answered.
func TestRPMBusy(t *testing.T) {
	s := newRPMServer(t, Options{RPMMaxConcurrent: 1}, true)
	tr := s.transport()
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+RPMLargePath, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, p := range []string{RPMLargePath, RPMUploadPath} {
		var r *http.Response
		if p == RPMUploadPath {
			r, err = c.Post(s.URL+p, "application/octet-stream", strings.NewReader("x"))
		} else {
			r, err = c.Get(s.URL + p)
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "1 load-generating transfers running") {
			t.Errorf("%s while busy: %d %q", p, r.StatusCode, body)
		}
	}
	for _, p := range []string{RPMSmallPath, WellKnownPath} {
		r, err := c.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("%s while the transfers are busy: %d, want 200", p, r.StatusCode)
		}
	}
	if rpmRequests(s.h, EndpointLarge, ResultBusy) != 1 || rpmRequests(s.h, EndpointUpload, ResultBusy) != 1 {
		t.Error("busy refusals not counted")
	}
	// The throughput endpoints have their own limit, untouched.
	if len(s.h.sem) != 0 {
		t.Error("a responsiveness transfer took a throughput slot")
	}
	cancel()
}

// RPMMaxDuration ends a download cleanly and answers an upload with what
// arrived; a client that stops reading is cut off by the deadline.
func TestRPMTimeLimit(t *testing.T) {
	const limit = 300 * time.Millisecond
	s := newRPMServer(t, Options{RPMMaxDuration: limit}, true)
	tr := s.transport()
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}

	start := time.Now()
	resp, err := c.Get(s.URL + RPMLargePath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || time.Since(start) < limit || n == 0 || resp.ContentLength != -1 {
		t.Errorf("large download: %d bytes in %v (Content-Length %d), err %v; want a clean end after %v", n, time.Since(start), resp.ContentLength, err, limit)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+RPMUploadPath, io.NopCloser(&pacedBody{ctx: ctx, pause: time.Millisecond}))
	req.ContentLength = -1
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res UploadResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || res.Bytes == 0 || res.Seconds < limit.Seconds() {
		t.Errorf("upload past the limit: %d %+v, err %v", resp.StatusCode, res, err)
	}
	cancel()

	// A client that stops reading: the write deadline (the limit plus
	// half of it here) ends the transfer.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	req, _ = http.NewRequestWithContext(ctx2, http.MethodGet, s.URL+RPMLargePath, nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, "three transfers ended by the time limit", func() bool {
		return rpmRequests(s.h, EndpointLarge, ResultTimeLimit) == 2 && rpmRequests(s.h, EndpointUpload, ResultTimeLimit) == 1
	})
	cancel2()
}

func TestRPMBadMethods(t *testing.T) {
	s := newRPMServer(t, Options{}, false)
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPost, RPMLargePath, "GET, HEAD"},
		{http.MethodGet, RPMUploadPath, "POST, PUT"},
		{http.MethodDelete, RPMSmallPath, "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, nil)
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if rpmRequests(s.h, EndpointLarge, ResultBadRequest) != 1 || rpmRequests(s.h, EndpointUpload, ResultBadRequest) != 1 {
		t.Error("bad requests not counted")
	}
	resp, err := s.Client().Head(s.URL + RPMLargePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("HEAD large: %d %v", resp.StatusCode, resp.Header)
	}
	s.Client().CloseIdleConnections()
}
