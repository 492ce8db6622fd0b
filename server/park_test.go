package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/samples"
)

const parkConfig = `
modules:
  ping:
    prober: icmp
    timeout: 10s
    icmp:
      preferred_ip_protocol: ip4
      packets: 3
      interval: 300ms
  ping1:
    prober: icmp
    timeout: 10s
    icmp:
      preferred_ip_protocol: ip4
  long:
    prober: icmp
    timeout: 20s
    icmp:
      preferred_ip_protocol: ip4
      packets: 10
      interval: 1s
  tcping:
    prober: icmp
    timeout: 2s
    icmp:
      protocol: tcp
      port: 9
`

func needRawICMP(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this test needs root (raw ICMP sockets)")
		}
		t.Skip("needs root for raw ICMP sockets")
	}
}

// parkedServer serves /probe as the exporter does, with a Parker (which
// serves srv's handed-back connections itself).
func parkedServer(t *testing.T, idle time.Duration) (addr string, srv *http.Server, p *Parker) {
	t.Helper()
	return parkedServerWith(t, idle, ProbeOptions{})
}

// parkedServerWith is parkedServer with the /probe handler's options o.
func parkedServerWith(t *testing.T, idle time.Duration, o ProbeOptions) (addr string, srv *http.Server, p *Parker) {
	t.Helper()
	return parkedServerReading(t, idle, o, true)
}

// parkedServerReading is parkedServerWith, whose Parker reads its idle
// connections' next requests (Parker.ReadRequests, as the exporter's
// without a web config file) or hands every one back to net/http.
func parkedServerReading(t *testing.T, idle time.Duration, o ProbeOptions, readNext bool) (addr string, srv *http.Server, p *Parker) {
	t.Helper()
	srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}
	p = NewParker(srv, nil)
	LimitAdmission(srv, 8, AdmissionHold) // as the exporter: hand-backs pass the gate
	if readNext {
		p.ReadRequests()
	}
	o.Parker = p
	h := loadedProbeHandler(t, parkConfig, o)
	// As exporter-toolkit's http_server_config.headers: set before /probe.
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "deny")
		h.ServeHTTP(w, r)
	})
	return serveParked(t, srv, p), srv, p
}

// serveParked serves srv on a loopback port through p's listener (as the
// exporter: with ReadRequests, the Parker reads first requests too) until
// the test ends, then shuts both down; it returns the address.
func serveParked(t *testing.T, srv *http.Server, p *Parker) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(p.Listener(l)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Parker.Shutdown: %v", err)
		}
	})
	return l.Addr().String()
}

// parseMetrics flattens a /probe answer (samples.OfText).
func parseMetrics(t *testing.T, body string) map[string]float64 {
	t.Helper()
	m, err := samples.OfText(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return m
}

// serverConnGoroutines counts net/http's connection goroutines in this
// process: what a waiting probe held before parking.
func serverConnGoroutines() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "net/http.(*conn).serve(")
}

// 200 concurrent icmp probes to 200 loopback addresses wait holding no
// connection goroutine, each gets every reply of its own target, and a
// second round goes over the same, kept-alive connections (the idle ones
// were watched by the Parker, then handed back to net/http).
func TestParkedProbes(t *testing.T) {
	for _, readNext := range []bool{true, false} {
		t.Run(fmt.Sprintf("readNext=%v", readNext), func(t *testing.T) { testParkedProbes(t, readNext) })
	}
}

// testParkedProbes is TestParkedProbes with a Parker that reads the next
// requests itself (readNext) or hands each back to net/http.
func testParkedProbes(t *testing.T, readNext bool) {
	needRawICMP(t)
	addr, _, p := parkedServerReading(t, time.Minute, ProbeOptions{}, readNext)
	const n = 200
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	defer client.CloseIdleConnections()
	round := func(name string) (reused int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := []string{}
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				target := fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var got bool
				ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { got = ci.Reused }})
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/probe?module=ping&target="+target, nil)
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				m := parseMetrics(t, string(body))
				mu.Lock()
				defer mu.Unlock()
				if got {
					reused++
				}
				if resp.StatusCode != 200 || m["probe_success"] != 1 || m["probe_icmp_packets_received"] != 3 || m["probe_icmp_packets_sent"] != 3 {
					errs = append(errs, fmt.Sprintf("%s: %s success %v sent %v received %v", target, resp.Status,
						m["probe_success"], m["probe_icmp_packets_sent"], m["probe_icmp_packets_received"]))
				}
			}()
		}
		// Midway through the probes' 600 ms: every request is parked.
		time.Sleep(400 * time.Millisecond)
		if g := serverConnGoroutines(); g > n/10 {
			t.Errorf("%s: %d of %d waiting probes hold a net/http connection goroutine", name, g, n)
		}
		wg.Wait()
		for _, e := range errs[:min(len(errs), 5)] {
			t.Errorf("%s: %s", name, e)
		}
		return reused
	}
	round("first")
	// The first round's requests came on new connections (Parker.Listener).
	if read := p.readTotal.Load(); readNext && read < n*9/10 || !readNext && read != 0 {
		t.Errorf("the Parker read %d of the first round's %d requests itself (ReadRequests: %v)", read, n, readNext)
	}
	if reused := round("second"); reused < n*9/10 {
		t.Errorf("second round reused %d of %d connections", reused, n)
	}
	// The second round's requests came on idle connections: the Parker
	// read them itself, or net/http did.
	if read := p.readTotal.Load(); readNext && read < 2*n*9/10 || !readNext && read != 0 {
		t.Errorf("the Parker read %d of the two rounds' %d requests itself (ReadRequests: %v)", read, 2*n, readNext)
	}
	// An idle connection handed back serves any request, here a refusal.
	resp, err := client.Get("http://" + addr + "/probe?module=nope&target=127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown module on a kept connection: %s", resp.Status)
	}
}

// rawConn is one client connection, written and read by hand.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) response(t *testing.T) (*http.Response, map[string]float64) {
	t.Helper()
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, parseMetrics(t, string(body))
}

// Pipelined requests on one connection are answered in order (the bytes
// net/http read past the first are given back), and Connection: close
// closes the connection after its answer.
func TestParkedPipelineAndClose(t *testing.T) {
	needRawICMP(t)
	addr, _, _ := parkedServer(t, time.Minute)
	c := dialRaw(t, addr)
	get := func(module, target, extra string) string {
		return "GET /probe?module=" + module + "&target=" + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n"
	}
	if _, err := io.WriteString(c, get("ping1", "127.0.0.7", "")+get("ping1", "127.0.0.8", "")+get("tcping", "127.0.0.9", "")+get("ping1", "127.0.0.10", "Connection: close\r\n")); err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{1, 1, 0, 1} {
		resp, m := c.response(t)
		if resp.Header.Get("X-Frame-Options") != "deny" {
			t.Errorf("answer %d lost the header set before the handler: %v", i, resp.Header)
		}
		if resp.StatusCode != 200 || m["probe_success"] != want {
			t.Errorf("answer %d: %s, probe_success %v, want %v", i, resp.Status, m["probe_success"], want)
		}
		if resp.Close != (i == 3) {
			t.Errorf("answer %d: Connection: close is %v", i, resp.Close)
		}
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close the connection is still open (%v)", err)
	}

	// HTTP/1.0 without keep-alive closes too.
	c = dialRaw(t, addr)
	_, _ = io.WriteString(c, "GET /probe?module=ping1&target=127.0.0.11 HTTP/1.0\r\n\r\n")
	if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_success"] != 1 {
		t.Errorf("HTTP/1.0: %s, probe_success %v", resp.Status, m["probe_success"])
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after an HTTP/1.0 answer the connection is still open (%v)", err)
	}
}

// An idle connection the Parker watches is closed after the server's idle
// timeout, as net/http closes its own.
func TestParkedIdleTimeout(t *testing.T) {
	needRawICMP(t)
	addr, _, _ := parkedServer(t, 500*time.Millisecond)
	c := dialRaw(t, addr)
	_, _ = io.WriteString(c, "GET /probe?module=ping1&target=127.0.0.12 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_success"] != 1 {
		t.Fatalf("%s, probe_success %v", resp.Status, m["probe_success"])
	}
	start := time.Now()
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the idle connection was closed after %s; the idle timeout is 500ms", d)
	}
}

// firstServer serves probes through the Parker's listener, without the
// admission gate (so without TCP_DEFER_ACCEPT: a new connection is
// accepted at once), with a header timeout of hdr.
func firstServer(t *testing.T, hdr time.Duration) (addr string, p *Parker) {
	t.Helper()
	srv := &http.Server{ReadHeaderTimeout: hdr, IdleTimeout: time.Hour}
	p = NewParker(srv, nil)
	p.ReadRequests()
	srv.Handler = loadedProbeHandler(t, parkConfig, ProbeOptions{Parker: p})
	return serveParked(t, srv, p), p
}

// A new connection that sends nothing waits in the Parker's watch
// (Parker.Listener), not in net/http, and is closed after the server's
// ReadHeaderTimeout, not its (longer) idle timeout.
func TestParkedSilentNewConnection(t *testing.T) {
	addr, p := firstServer(t, 500*time.Millisecond)
	start := time.Now()
	c := dialRaw(t, addr)
	waitFor(t, "the Parker does not watch the new connection", func() bool { return p.idle.count() == 1 })
	if g := serverConnGoroutines(); g != 0 {
		t.Errorf("a silent new connection holds %d net/http connection goroutines", g)
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("silent connection: %v, want EOF", err)
	}
	// The idle poller checks its timeouts once a second.
	if d := time.Since(start); d < 450*time.Millisecond || d > 5*time.Second {
		t.Errorf("the silent connection was closed after %s; the header timeout is 500ms", d)
	}
}

// A new connection whose first bytes come late, and are not a whole head,
// goes to net/http with the time it waited in the Parker's watch counted
// against the header timeout: it is closed about when net/http alone would
// have closed it, not a header timeout after its first bytes.
func TestParkedSlowFirstHeadKeepsHeaderTimeout(t *testing.T) {
	addr, _ := firstServer(t, time.Second)
	start := time.Now()
	c := dialRaw(t, addr)
	time.Sleep(600 * time.Millisecond)
	if _, err := io.WriteString(c, "GET /pro"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Parker did not hand the part of a head to net/http", func() bool { return serverConnGoroutines() == 1 })
	_, err := io.ReadAll(c.r) // net/http answers nothing to a header timeout: it closes
	if err != nil {
		t.Fatalf("reading until the close: %v", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("a head begun 600 ms after the connect was cut %s after it; the header timeout is 1s", d)
	}
}

// Shutdown answers a parked probe still waiting, with Connection: close,
// before it returns.
func TestParkedShutdown(t *testing.T) {
	needRawICMP(t)
	addr, srv, p := parkedServer(t, time.Minute)
	c := dialRaw(t, addr)
	_, _ = io.WriteString(c, "GET /probe?module=ping&target=127.0.0.13 HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond) // parked: the probe takes 600 ms
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Parker.Shutdown: %v", err)
	}
	resp, m := c.response(t)
	if resp.StatusCode != 200 || m["probe_success"] != 1 || m["probe_icmp_packets_received"] != 3 {
		t.Errorf("%s, probe_success %v, received %v", resp.Status, m["probe_success"], m["probe_icmp_packets_received"])
	}
	if !resp.Close {
		t.Error("the answer during shutdown has no Connection: close")
	}
}

// A GET's body is never taken for the next request (net/http discards
// it): such a request is not parked.
func TestParkedGETBodyIsNotARequest(t *testing.T) {
	needRawICMP(t)
	addr, _, _ := parkedServer(t, time.Minute)
	c := dialRaw(t, addr)
	inner := "GET /probe?module=nope&target=127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n"
	_, _ = fmt.Fprintf(c, "GET /probe?module=ping1&target=127.0.0.14 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(inner), inner)
	if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_success"] != 1 {
		t.Fatalf("%s, probe_success %v", resp.Status, m["probe_success"])
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if resp, err := http.ReadResponse(c.r, nil); err == nil {
		t.Errorf("the body was served as a request: %s", resp.Status)
	}
}

// Clients that pipeline probes and never read their answers hold up no
// one else's answer, though they outnumber the Parker's workers.
func TestParkedSlowReadersBlockNoOne(t *testing.T) {
	needRawICMP(t)
	addr, _, p := parkedServer(t, time.Minute)
	var req strings.Builder
	for range 4000 { // 12 MB of answers: more than loopback's socket buffers hold
		req.WriteString("GET /probe?module=ping1&target=127.0.0.15 HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	for range runtime.GOMAXPROCS(0) + 1 {
		c := dialRaw(t, addr)
		_ = c.Conn.(*net.TCPConn).SetReadBuffer(4096)
		if _, err := io.WriteString(c, req.String()); err != nil {
			t.Fatal(err)
		}
	}
	// Until their answers filled their sockets: no probe is parked for
	// 600 ms.
	for last, still, deadline := uint64(0), 0, time.Now().Add(30*time.Second); still < 3 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		if n := p.parkedTotal.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	c := dialRaw(t, addr)
	start := time.Now()
	_, _ = io.WriteString(c, "GET /probe?module=ping1&target=127.0.0.16 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_success"] != 1 {
		t.Fatalf("%s, probe_success %v", resp.Status, m["probe_success"])
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a probe beside clients that do not read was answered after %s", d)
	}
}

// A connection handed back with a pipelined request in front goes back to
// the idle watch once its pipeline is drained, unwrapped.
func TestParkedPipelineThenIdle(t *testing.T) {
	needRawICMP(t)
	addr, _, p := parkedServer(t, time.Minute)
	c := dialRaw(t, addr)
	get := "GET /probe?module=ping1&target=127.0.0.17 HTTP/1.1\r\nHost: x\r\n\r\n"
	for round := range 3 {
		_, _ = io.WriteString(c, get+get+get)
		for range 3 {
			if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_success"] != 1 {
				t.Fatalf("round %d: %s, probe_success %v", round, resp.Status, m["probe_success"])
			}
		}
	}
	waitFor(t, "after its pipeline the connection is not watched idle (or net/http still holds it)", func() bool {
		return p.idle.count() == 1 && serverConnGoroutines() == 0
	})
	var hc *headConn
	p.idle.mu.Lock()
	for _, ic := range p.idle.conns {
		hc, _ = ic.conn.(*headConn)
	}
	p.idle.mu.Unlock()
	if hc != nil {
		t.Error("the idle connection is still wrapped")
	}
}

// waitFor polls cond for up to 5 s; it says how long cond took.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// A client that closes its connection while its probe is parked ends the
// probe at once, as net/http ends a request's context, so its
// --probes.max-concurrent slot is free for the next; a client that only
// half-closed still reads the answer. A pipelined request is no hang-up.
func TestParkedHangup(t *testing.T) {
	needRawICMP(t)
	addr, _, p := parkedServerWith(t, time.Minute, ProbeOptions{MaxConcurrent: 1})
	long := "GET /probe?module=long&target=127.0.0.40 HTTP/1.1\r\nHost: x\r\n\r\n"

	c := dialRaw(t, addr)
	_, _ = io.WriteString(c, long)
	waitFor(t, "the probe is not parked", func() bool { return p.probing.Load() == 1 })
	_ = c.Close()
	if d := waitFor(t, "the probe of a client that left still runs", func() bool { return p.probing.Load() == 0 }); d > 2*time.Second {
		t.Errorf("the probe ended %s after its client left; it would run 9 s more", d)
	}
	// Its slot is free: the next probe is not refused.
	c = dialRaw(t, addr)
	_, _ = io.WriteString(c, "GET /probe?module=ping1&target=127.0.0.41 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_success"] != 1 {
		t.Fatalf("after a hang-up: %s, probe_success %v", resp.Status, m["probe_success"])
	}

	// Half-closed: the probe is cut short, and its answer still arrives.
	// (A client reads its answer a moment before the probe gives its slot
	// back.)
	waitFor(t, "the last probe's slot is not free", func() bool { return p.probing.Load() == 0 })
	c = dialRaw(t, addr)
	_, _ = io.WriteString(c, long)
	waitFor(t, "the probe is not parked", func() bool { return p.probing.Load() == 1 })
	start := time.Now()
	_ = c.Conn.(*net.TCPConn).CloseWrite()
	resp, m := c.response(t)
	if d := time.Since(start); d > 2*time.Second || !resp.Close || m["probe_icmp_packets_sent"] >= 10 {
		t.Errorf("half-closed: answered after %s, Connection: close %v, %v of 10 packets sent", d, resp.Close, m["probe_icmp_packets_sent"])
	}

	// A pipelined request while the probe waits does not end it.
	waitFor(t, "the half-closed probe's slot is not free", func() bool { return p.probing.Load() == 0 })
	c = dialRaw(t, addr)
	_, _ = io.WriteString(c, "GET /probe?module=ping&target=127.0.0.42 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitFor(t, "the probe is not parked", func() bool { return p.probing.Load() == 1 })
	_, _ = io.WriteString(c, "GET /probe?module=ping1&target=127.0.0.43 HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_icmp_packets_received"] != 3 {
		t.Errorf("with a pipelined request behind it: %s, %v of 3 replies", resp.Status, m["probe_icmp_packets_received"])
	}
	if resp, m := c.response(t); resp.StatusCode != 200 || m["probe_success"] != 1 {
		t.Errorf("the pipelined request: %s, probe_success %v", resp.Status, m["probe_success"])
	}
}

// Parked answers share one copy of the headers set before /probe while
// they are the same, and never the caller's own map.
func TestLastHeader(t *testing.T) {
	var l lastHeader
	if l.of(http.Header{}) != nil {
		t.Error("an empty header is not nil")
	}
	h := http.Header{"X-Frame-Options": {"deny"}}
	a := l.of(h)
	h.Set("X-Frame-Options", "changed")
	if a.Get("X-Frame-Options") != "deny" {
		t.Error("the kept header is the caller's map")
	}
	b := l.of(http.Header{"X-Frame-Options": {"changed"}})
	c := l.of(http.Header{"X-Frame-Options": {"changed"}})
	if b.Get("X-Frame-Options") != "changed" || fmt.Sprintf("%p", b) != fmt.Sprintf("%p", c) {
		t.Errorf("equal headers are not shared: %v %v", b, c)
	}
	if d := l.of(http.Header{"X-Frame-Options": {"changed"}, "X-Other": {"1"}}); d.Get("X-Other") != "1" {
		t.Errorf("a different header was answered with the kept one: %v", d)
	}
}

// plainServer serves /probe through net/http alone (no Parker): the
// ground truth the parked path is to match.
func plainServer(t *testing.T) string {
	t.Helper()
	return plainServerWith(t, ProbeOptions{})
}

// A client that pipelines a second request and then half-closes its side
// (shutdown(SHUT_WR)) gets both answers, from net/http alone as from the
// Parker: a next request ends the hang-up watch.
func TestParkedHalfCloseAfterPipelined(t *testing.T) {
	needRawICMP(t)
	req1 := "GET /probe?module=ping&target=127.0.0.50 HTTP/1.1\r\nHost: x\r\n\r\n"
	req2 := "GET /probe?module=ping1&target=127.0.0.51 HTTP/1.1\r\nHost: x\r\n\r\n"
	type run struct{ parked, together bool }
	sent := map[run]float64{} // the first answer's packets sent
	for _, parked := range []bool{false, true} {
		for _, together := range []bool{false, true} {
			name := map[bool]string{false: "net/http", true: "parked"}[parked] +
				map[bool]string{false: "/pipelined-while-waiting", true: "/pipelined-in-one-write"}[together]
			t.Run(name, func(t *testing.T) {
				var addr string
				var p *Parker
				if parked {
					addr, _, p = parkedServer(t, time.Minute)
				} else {
					addr = plainServer(t)
				}
				c := dialRaw(t, addr)
				if together {
					_, _ = io.WriteString(c, req1+req2)
				} else {
					_, _ = io.WriteString(c, req1)
				}
				if parked {
					waitFor(t, "the probe is not parked", func() bool { return p.probing.Load() == 1 })
				} else {
					time.Sleep(100 * time.Millisecond)
				}
				if !together {
					_, _ = io.WriteString(c, req2)
					time.Sleep(50 * time.Millisecond)
				}
				_ = c.Conn.(*net.TCPConn).CloseWrite()
				for i := range 2 {
					resp, err := http.ReadResponse(c.r, nil)
					if err != nil {
						t.Fatalf("answer %d of 2: %v", i+1, err)
					}
					body, _ := io.ReadAll(resp.Body)
					m := parseMetrics(t, string(body))
					t.Logf("answer %d: %s close=%v sent=%v received=%v", i+1, resp.Status, resp.Close,
						m["probe_icmp_packets_sent"], m["probe_icmp_packets_received"])
					if i == 0 {
						sent[run{parked, together}] = m["probe_icmp_packets_sent"]
					}
				}
			})
		}
	}
	// The first probe ran as it did through net/http: whole when the next
	// request came while it waited, cut short by the half-close when the
	// next request had been read with it.
	for _, together := range []bool{false, true} {
		if a, b := sent[run{false, together}], sent[run{true, together}]; a != b {
			t.Errorf("together=%v: the first probe sent %v packets through net/http, %v parked", together, a, b)
		}
	}
}

// A connection stays in the epoll set after its watch is dropped; after Close the kernel must have taken it out, so a
// new socket that gets the same fd number is ADDed afresh (MOD: ENOENT),
// and a stale registration kept alive by a dup reports only its old key,
// which the loop ignores (the new connection is not handed back).
func TestParkedEpollAfterCloseAndDup(t *testing.T) {
	srv := &http.Server{}
	p := NewParker(srv, nil)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	}()
	ip := p.idle
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	pair := func() (server, client net.Conn) {
		cl, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sv, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return sv, cl
	}
	fdOf := func(c net.Conn) (fd int) {
		raw, _ := c.(syscall.Conn).SyscallConn()
		_ = raw.Control(func(f uintptr) { fd = int(f) })
		return fd
	}
	for _, dup := range []bool{false, true} {
		a, ac := pair()
		fdA := fdOf(a)
		// A hang-up watch, then its drop (as answer does), leaving the
		// registration armed in the epoll set.
		pk := &parked{conn: a}
		if !ip.watch(a, pk, 0, false) {
			t.Fatal("watch failed")
		}
		ip.unwatchHangup(pk)
		var f interface{ Close() error }
		if dup {
			f, err = a.(*net.TCPConn).File()
			if err != nil {
				t.Fatal(err)
			}
		}
		_ = a.Close()
		// A new socket on the same fd number.
		var b, bc net.Conn
		var keep []net.Conn
		for range 20 {
			b, bc = pair()
			if fdOf(bc) == fdA {
				b, bc = bc, b
			}
			if fdOf(b) == fdA {
				break
			}
			keep = append(keep, b, bc)
			b = nil
		}
		if b == nil {
			if f != nil {
				_ = f.Close()
			}
			t.Skipf("fd %d was not reused", fdA)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT}
		err := unix.EpollCtl(ip.epfd, unix.EPOLL_CTL_MOD, fdA, &ev)
		t.Logf("dup=%v: MOD of the reused fd %d: %v", dup, fdA, err)
		if !errors.Is(err, unix.ENOENT) {
			t.Errorf("dup=%v: the closed connection's registration matched the new socket: MOD gave %v", dup, err)
		}
		if ok := ip.add(b); !ok {
			t.Fatal("add of the new connection failed")
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", ip.epfd))
		entries := strings.Count(string(info), fmt.Sprintf("tfd: %8d", fdA))
		t.Logf("dup=%v: epoll entries at fd %d: %d", dup, fdA, entries)
		if want := map[bool]int{false: 1, true: 2}[dup]; entries != want {
			t.Errorf("dup=%v: %d epoll entries at fd %d, want %d:\n%s", dup, entries, fdA, want, info)
		}
		// The old connection's peer hangs up: only the stale (dup) entry
		// can report it, at the old key.
		_ = ac.Close()
		time.Sleep(100 * time.Millisecond)
		if n := ip.count(); n != 1 {
			t.Errorf("dup=%v: the new idle connection was not kept watched (idle %d): a stale event reached it", dup, n)
		}
		if f != nil {
			_ = f.Close()
		}
		_ = bc.Close()
		time.Sleep(50 * time.Millisecond)
		for _, c := range keep {
			_ = c.Close()
		}
	}
}

// After Shutdown closed the idle connections, the idle gauge says none.
func TestParkedIdleCountAfterShutdown(t *testing.T) {
	p := NewParker(&http.Server{}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	cl, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Close() }()
	sv, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if !p.idle.add(sv) {
		t.Fatal("add failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.idle.count(); n != 0 {
		t.Errorf("after Shutdown closed every idle connection, count() = %d", n)
	}
}

// plainServerWith is plainServer with the /probe handler's options o.
func plainServerWith(t *testing.T, o ProbeOptions) string {
	t.Helper()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	srv.Handler = loadedProbeHandler(t, parkConfig, o)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return l.Addr().String()
}

// A client that sends a probe request and a pipelined next one in one
// write, then closes its connection: net/http's background read sees the
// close (it reads the socket, not bufio's buffer, where the next request
// sits) and ends the request's context, so the probe's
// --probes.max-concurrent slot is free at once; so does the Parker's watch.
func TestParkedPipelinedThenClose(t *testing.T) {
	needRawICMP(t)
	long := "GET /probe?module=long&target=127.0.0.60 HTTP/1.1\r\nHost: x\r\n\r\n"
	next := "GET /probe?module=ping1&target=127.0.0.61 HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, parked := range []bool{false, true} {
		name := map[bool]string{false: "net/http", true: "parked"}[parked]
		t.Run(name, func(t *testing.T) {
			var addr string
			if parked {
				var p *Parker
				addr, _, p = parkedServerWith(t, time.Minute, ProbeOptions{MaxConcurrent: 1})
				c := dialRaw(t, addr)
				_, _ = io.WriteString(c, long+next)
				waitFor(t, "the probe is not parked", func() bool { return p.probing.Load() == 1 })
				_ = c.Close()
			} else {
				addr = plainServerWith(t, ProbeOptions{MaxConcurrent: 1})
				c := dialRaw(t, addr)
				_, _ = io.WriteString(c, long+next)
				time.Sleep(300 * time.Millisecond)
				_ = c.Close()
			}
			time.Sleep(1500 * time.Millisecond)
			c := dialRaw(t, addr)
			_, _ = io.WriteString(c, "GET /probe?module=ping1&target=127.0.0.62 HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(c.r, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			t.Logf("%s: a new probe 1.5 s after the client left: %s %.60q", name, resp.Status, body)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: 1.5 s after its client closed, the first probe still holds the only --probes.max-concurrent slot: %s", name, resp.Status)
			}
		})
	}
}

// The same client, half-closing instead: both cut the first probe short
// and answer both requests.
func TestParkedPipelinedThenHalfClose(t *testing.T) {
	needRawICMP(t)
	long := "GET /probe?module=long&target=127.0.0.63 HTTP/1.1\r\nHost: x\r\n\r\n"
	next := "GET /probe?module=ping1&target=127.0.0.64 HTTP/1.1\r\nHost: x\r\n\r\n"
	sent := map[bool]float64{}
	took := map[bool]time.Duration{}
	for _, parked := range []bool{false, true} {
		name := map[bool]string{false: "net/http", true: "parked"}[parked]
		t.Run(name, func(t *testing.T) {
			var c *rawConn
			if parked {
				addr, _, p := parkedServerWith(t, time.Minute, ProbeOptions{})
				c = dialRaw(t, addr)
				_, _ = io.WriteString(c, long+next)
				waitFor(t, "the probe is not parked", func() bool { return p.probing.Load() == 1 })
			} else {
				c = dialRaw(t, plainServerWith(t, ProbeOptions{}))
				_, _ = io.WriteString(c, long+next)
				time.Sleep(300 * time.Millisecond)
			}
			start := time.Now()
			_ = c.Conn.(*net.TCPConn).CloseWrite()
			_, m := c.response(t)
			took[parked] = time.Since(start)
			sent[parked] = m["probe_icmp_packets_sent"]
			_, _ = c.response(t)
		})
	}
	t.Logf("first answer after the half-close: net/http %v (%v packets sent), parked %v (%v packets sent)", took[false], sent[false], took[true], sent[true])
	if took[true] > took[false]+2*time.Second {
		t.Errorf("the Parker answered the first probe %v after the half-close, net/http %v (%v vs %v of 10 packets sent)", took[true], took[false], sent[true], sent[false])
	}
}
