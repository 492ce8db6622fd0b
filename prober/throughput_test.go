package prober

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	pconfig "github.com/prometheus/common/config"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/speedtest"
)

// Loopback tests of the throughput prober: the far end is the speedtest
// package's handler, or a paced handler whose rate the test sets.

func tpLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tpLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tpLogWriter struct{ t *testing.T }

func (w tpLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// tpServer is a loopback HTTP server that counts the TCP connections it
// accepted.
type tpServer struct {
	*httptest.Server
	conns atomic.Int64
}

func startTPServer(t *testing.T, h http.Handler) *tpServer {
	t.Helper()
	s := &tpServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// speedtestServer serves the speedtest endpoints on loopback.
func speedtestServer(t *testing.T, o speedtest.Options) (*tpServer, *speedtest.Handler) {
	t.Helper()
	h := speedtest.New(o)
	mux := http.NewServeMux()
	for p, r := range h.Routes() {
		mux.Handle(p, r)
	}
	return startTPServer(t, mux), h
}

// pacedDownload sends an endless body at perConn bytes per second per
// connection (request).
func pacedDownload(perConn float64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		buf := make([]byte, 16<<10)
		start := time.Now()
		var sent int64
		for {
			if _, err := w.Write(buf); err != nil {
				return
			}
			sent += int64(len(buf))
			if d := time.Duration(float64(sent)/perConn*float64(time.Second)) - time.Since(start); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
		}
	}
}

// pacedUpload reads bodies at perConn bytes per second per request.
func pacedUpload(perConn float64, got *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 16<<10)
		start := time.Now()
		var n int64
		for {
			k, err := r.Body.Read(buf)
			n += int64(k)
			got.Add(int64(k))
			if err != nil {
				break
			}
			if d := time.Duration(float64(n)/perConn*float64(time.Second)) - time.Since(start); d > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
		}
		_, _ = io.WriteString(w, "ok")
	}
}

func tpModule(o config.ThroughputProbe) config.Module {
	return config.Module{Prober: "throughput", Throughput: o}
}

// fastTP is a short probe: 1.5 s transfer, 0.5 s ramp-up, 5 idle samples.
func fastTP() config.ThroughputProbe {
	o := config.DefaultThroughputProbe()
	o.Duration = 1500 * time.Millisecond
	o.RampUp = 500 * time.Millisecond
	o.Connections = 3
	o.IdleLatencySamples = 5
	o.LatencyInterval = 50 * time.Millisecond
	return o
}

func runTP(t *testing.T, target string, o config.ThroughputProbe, timeout time.Duration) *ThroughputResult {
	t.Helper()
	return runTPWith(t, Request{Target: target, Module: new(tpModule(o)), Logger: tpLogger(t)}, timeout)
}

func runTPWith(t *testing.T, req Request, timeout time.Duration) *ThroughputResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	res := Run(ctx, ProbeThroughput, req).(*ThroughputResult)
	if took := time.Since(start); took > timeout {
		t.Errorf("probe took %s, beyond its timeout %s", took, timeout)
	}
	return res
}

func TestThroughputDownloadRate(t *testing.T) {
	const perConn = 2e6 // bytes/s
	s := startTPServer(t, pacedDownload(perConn))
	o := fastTP()
	res := runTP(t, s.URL+"/file", o, 10*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	want := perConn * float64(o.Connections)
	t.Logf("rate %.3g B/s (want %.3g), bytes %d, transfer %.2fs, window %.2fs, idle %.3gs, loaded %.3gs, rpm %.0f",
		res.BytesPerSecond, want, res.Bytes, res.TransferSeconds, res.RateWindowSeconds, res.LatencyIdleSeconds, res.LatencyLoadedSeconds, res.ResponsivenessRPM)
	// A paced loopback sender is exact on average; the margin is for a
	// busy machine's timers.
	if res.BytesPerSecond < 0.75*want || res.BytesPerSecond > 1.25*want {
		t.Errorf("rate %.3g B/s, want %.3g ± 25%%", res.BytesPerSecond, want)
	}
	if res.Direction != "download" || res.StopReason != StopDuration || res.Connections != 3 {
		t.Errorf("direction %q, stop reason %q, connections %d", res.Direction, res.StopReason, res.Connections)
	}
	if res.ConnectionsOpened != 3 || s.conns.Load() < 3 {
		t.Errorf("connections opened %d, server saw %d TCP connections (the latency connects count too), want 3 transfer connections",
			res.ConnectionsOpened, s.conns.Load())
	}
	if res.TransferSeconds < 1.4 || res.TransferSeconds > 2 || res.RateWindowSeconds < 0.9 {
		t.Errorf("transfer %.2fs, rate window %.2fs; want 1.5s and ≥ 1s", res.TransferSeconds, res.RateWindowSeconds)
	}
	if res.LatencyIdleSamples != 5 || res.LatencyLoadedSamples < 5 || res.LatencyIdleSeconds <= 0 || res.LatencyLoadedSeconds <= 0 {
		t.Errorf("latency samples idle %d (%g s), loaded %d (%g s)", res.LatencyIdleSamples, res.LatencyIdleSeconds,
			res.LatencyLoadedSamples, res.LatencyLoadedSeconds)
	}
	if res.ResponsivenessRPM <= 0 || len(res.LatencyLoadedRTTsSeconds) != res.LatencyLoadedSamples {
		t.Errorf("rpm %g, %d loaded RTTs recorded", res.ResponsivenessRPM, len(res.LatencyLoadedRTTsSeconds))
	}
	if res.IPAddr != "127.0.0.1" || res.IPProtocol != 4 {
		t.Errorf("ip %q protocol %d", res.IPAddr, res.IPProtocol)
	}
}

func TestThroughputUploadRate(t *testing.T) {
	const perConn = 2e6
	var got atomic.Int64
	s := startTPServer(t, pacedUpload(perConn, &got))
	o := fastTP()
	o.Direction = config.ThroughputUpload
	o.Connections = 2
	res := runTP(t, s.URL+"/up", o, 10*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	want := perConn * float64(o.Connections)
	t.Logf("rate %.3g B/s (want %.3g), bytes %d (server read %d), window %.2fs", res.BytesPerSecond, want, res.Bytes, got.Load(), res.RateWindowSeconds)
	if res.BytesPerSecond < 0.75*want || res.BytesPerSecond > 1.25*want {
		t.Errorf("rate %.3g B/s, want %.3g ± 25%%", res.BytesPerSecond, want)
	}
	// Bytes are what the server's kernel acknowledged when the probe
	// stopped; the handler goes on reading what was in flight then, and
	// before that it lagged by its socket buffer.
	if res.Bytes < got.Load()-(1<<20) || res.Bytes > got.Load()+(8<<20) {
		t.Errorf("bytes %d, server read %d", res.Bytes, got.Load())
	}
	if res.Direction != "upload" || res.ConnectionsOpened != 2 {
		t.Errorf("direction %q, connections opened %d", res.Direction, res.ConnectionsOpened)
	}
}

func TestThroughputByteCap(t *testing.T) {
	for _, dir := range []string{config.ThroughputDownload, config.ThroughputUpload} {
		t.Run(dir, func(t *testing.T) {
			reg := newTPRegistry()
			s, _ := speedtestServer(t, speedtest.Options{MaxBytes: 10 << 20, Registerer: reg})
			path := speedtest.DownloadPath + "?bytes=1000000"
			if dir == config.ThroughputUpload {
				path = speedtest.UploadPath
			}
			o := fastTP()
			o.Direction = dir
			o.Duration = 5 * time.Second
			o.Connections = 4
			o.MaxBytes = units.Base2Bytes(3e6)
			start := time.Now()
			res := runTP(t, s.URL+path, o, 10*time.Second)
			if !res.Success {
				t.Fatalf("probe failed: %s", res.Error)
			}
			if res.Bytes != 3e6 || res.StopReason != StopMaxBytes {
				t.Errorf("bytes %d stop %q, want exactly 3000000 and max_bytes", res.Bytes, res.StopReason)
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("probe took %s: the cap should end a fast transfer early", took)
			}
			served := reg.value(t, "isp_checker_speedtest_bytes_total", dir)
			if dir == config.ThroughputUpload && served != 3e6 {
				t.Errorf("server received %g bytes, want 3e6", served)
			}
			if dir == config.ThroughputDownload && (served < 3e6 || served > 3e6+4*1e6) {
				t.Errorf("server sent %g bytes, want 3e6 plus at most the unread rest of 4 bodies", served)
			}
			if dir == config.ThroughputUpload && res.Requests != 4 {
				t.Errorf("%d upload requests, want 4 (3 MB shared by 4 connections)", res.Requests)
			}
		})
	}
}

func TestThroughputUploadRequestSize(t *testing.T) {
	var mu sync.Mutex
	var lengths []int64
	s := startTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		lengths = append(lengths, r.ContentLength)
		mu.Unlock()
		if n != r.ContentLength {
			t.Errorf("read %d of %d bytes", n, r.ContentLength)
		}
	}))
	o := fastTP()
	o.Direction = config.ThroughputUpload
	o.Connections = 1
	o.MaxBytes = 1 * units.MiB
	o.UploadRequestBytes = 256 * units.KiB
	o.Method = http.MethodPut
	res := runTP(t, s.URL, o, 10*time.Second)
	if !res.Success || res.Bytes != 1<<20 || res.Requests != 4 {
		t.Fatalf("success %v (%s), bytes %d, requests %d", res.Success, res.Error, res.Bytes, res.Requests)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range lengths {
		if l != 256<<10 {
			t.Errorf("request Content-Length %d, want %d", l, 256<<10)
		}
	}
}

func TestThroughputHTTPErrors(t *testing.T) {
	s, _ := speedtestServer(t, speedtest.Options{MaxBytes: 1 << 20})
	tests := []struct {
		name, path, dir, want string
	}{
		{"not found", "/nope", config.ThroughputDownload, "HTTP status 404"},
		{"bad bytes", speedtest.DownloadPath + "?bytes=zzz", config.ThroughputDownload, "HTTP status 400"},
		{"upload too large", speedtest.UploadPath, config.ThroughputUpload, "HTTP status 413"},
		{"upload to a download URL", speedtest.DownloadPath, config.ThroughputUpload, "HTTP status 405"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := fastTP()
			o.Direction = tc.dir
			o.LatencyProtocol = config.LatencyProtocolNone
			res := runTP(t, s.URL+tc.path, o, 5*time.Second)
			if res.Success || !strings.Contains(res.Error, tc.want) || res.StopReason != StopError {
				t.Errorf("success %v stop %q error %q, want an error with %q", res.Success, res.StopReason, res.Error, tc.want)
			}
		})
	}
	// A dead server: nothing listens on the port.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	res := runTP(t, "http://"+addr+"/", fastTP(), 5*time.Second)
	if res.Success || !strings.Contains(res.Error, "idle latency samples") || !strings.Contains(res.Error, "refused") {
		t.Errorf("dead server: success %v error %q", res.Success, res.Error)
	}
}

func TestThroughputBadTargets(t *testing.T) {
	for target, want := range map[string]string{
		"http://":        "could not parse target URL",
		"http://[::1":    "could not parse target URL",
		"http://a b.c/x": "could not parse target URL",
	} {
		res := runTP(t, target, fastTP(), 3*time.Second)
		if res.Success || !strings.Contains(res.Error, want) {
			t.Errorf("%q: error %q, want %q", target, res.Error, want)
		}
	}
	// A module built in code is checked by config, as a loaded one is.
	o := fastTP()
	o.Connections = 0
	o.Direction = "sideways"
	m := tpModule(o)
	if err := m.Check(); err == nil || !strings.Contains(err.Error(), `direction "sideways"`) {
		t.Errorf("bad module: %v", err)
	}
}

// A module loaded with ramp_up: 0s measures the rate over the whole
// transfer: the window starts at the first progress sample (every
// tpSampleEvery), not after a ramp-up.
func TestThroughputNoRampUp(t *testing.T) {
	const perConn = 2e6 // bytes/s
	s := startTPServer(t, pacedDownload(perConn))
	m := probeTestModule(t, "throughput", 0, "duration: 1500ms\nramp_up: 0s\nconnections: 2\nlatency_protocol: none")
	res := runTPWith(t, Request{Target: s.URL + "/file", Module: &m, Logger: tpLogger(t)}, 10*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	if res.RampUpSeconds != 0 {
		t.Errorf("ramp_up_seconds %g, want 0", res.RampUpSeconds)
	}
	// Two samples' time of slack for a busy machine's timers.
	if gap := res.TransferSeconds - res.RateWindowSeconds; gap < 0 || gap > 2*tpSampleEvery.Seconds() {
		t.Errorf("rate window %.3fs of a %.3fs transfer, want all but the first sample", res.RateWindowSeconds, res.TransferSeconds)
	}
	if want := perConn * 2; res.BytesPerSecond < 0.75*want || res.BytesPerSecond > 1.25*want {
		t.Errorf("rate %.3g B/s, want %.3g ± 25%%", res.BytesPerSecond, want)
	}
}

// Every connection goes through the target policy, redirects included.
func TestThroughputPolicy(t *testing.T) {
	s := startTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := net.SplitHostPort(r.Host)
		http.Redirect(w, r, "http://127.0.0.2:"+port+"/elsewhere", http.StatusFound)
	}))
	pol := config.DefaultTargetPolicy()
	pol.DenyNetworks = append(pol.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.2/32")})
	var denied atomic.Int64
	req := Request{Target: s.URL, Module: new(tpModule(fastTP())), Logger: tpLogger(t), Policy: NewPolicy(pol, func() { denied.Add(1) })}
	res := runTPWith(t, req, 5*time.Second)
	// Worded as every other denial (Common.FailDenied), though it came
	// during the transfer.
	if want := "Target refused by target_policy: "; res.Success || !strings.HasPrefix(res.Error, want) || denied.Load() == 0 {
		t.Errorf("redirect to a denied address: success %v, error %q (want it to start %q), %d denials", res.Success, res.Error, want, denied.Load())
	}
	if want := "address 127.0.0.2 is in denied network 127.0.0.2/32"; !strings.HasSuffix(res.Cause, want) {
		t.Errorf("redirect to a denied address: cause %q, want it to end %q", res.Cause, want)
	}

	pol.DenyNetworks = append(pol.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.1/32")})
	req.Policy = NewPolicy(pol, nil)
	res = runTPWith(t, req, 5*time.Second)
	if res.Success || !strings.HasPrefix(res.Error, "Target refused by target_policy: ") || res.TransferSeconds != 0 {
		t.Errorf("denied target: success %v, error %q", res.Success, res.Error)
	}
}

func TestThroughputFitsTimeout(t *testing.T) {
	s := startTPServer(t, pacedDownload(1e6))
	o := fastTP()
	o.Duration = 30 * time.Second
	res := runTP(t, s.URL, o, 3*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	if res.PlannedSeconds >= 3 || res.TransferSeconds > res.PlannedSeconds+0.2 || res.DurationSeconds >= 3 {
		t.Errorf("planned %.2fs, transfer %.2fs, probe %.2fs: want all within the 3s timeout",
			res.PlannedSeconds, res.TransferSeconds, res.DurationSeconds)
	}

	// Too short for the ramp-up and a steady window after the idle samples.
	o = fastTP()
	o.RampUp = time.Second
	res = runTP(t, s.URL, o, 1500*time.Millisecond)
	if res.Success || !strings.Contains(res.Error, "timeout leaves") {
		t.Errorf("short timeout: success %v, error %q", res.Success, res.Error)
	}
}

func TestThroughputNoLatency(t *testing.T) {
	s := startTPServer(t, pacedDownload(1e6))
	o := fastTP()
	o.LatencyProtocol = config.LatencyProtocolNone
	o.Connections = 1
	res := runTP(t, s.URL, o, 5*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	if res.LatencyIdleSamples+res.LatencyLoadedSamples+res.LatencyIdleLost+res.LatencyLoadedLost != 0 || res.ResponsivenessRPM != 0 {
		t.Errorf("latency measured with latency_protocol none: %+v", res)
	}
	if s.conns.Load() != 1 {
		t.Errorf("server saw %d connections, want 1", s.conns.Load())
	}
}

func TestThroughputLatencyPort(t *testing.T) {
	s := startTPServer(t, pacedDownload(1e6))
	other := startTPServer(t, http.NotFoundHandler())
	_, port, _ := net.SplitHostPort(other.Listener.Addr().String())
	o := fastTP()
	o.Connections = 1
	o.LatencyPort = mustAtoi(t, port)
	res := runTP(t, s.URL, o, 5*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	// The server may accept the last connects a moment after the probe saw
	// their handshake complete.
	answered := int64(res.LatencyIdleSamples + res.LatencyLoadedSamples)
	deadline := time.Now().Add(2 * time.Second)
	for other.conns.Load() < answered && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := other.conns.Load(); n != answered {
		t.Errorf("latency port saw %d connects, the probe answered %d samples", n, answered)
	}
	if s.conns.Load() != 1 {
		t.Errorf("transfer server saw %d connections, want 1", s.conns.Load())
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestThroughputICMPLatency(t *testing.T) {
	if _, _, err := icmpSocketMode(config.ICMPSocketAuto, false); err != nil {
		t.Skipf("no ICMP socket: %v", err)
	}
	s := startTPServer(t, pacedDownload(1e6))
	o := fastTP()
	o.Connections = 1
	o.LatencyProtocol = config.LatencyProtocolICMP
	res := runTP(t, s.URL, o, 5*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	if res.LatencyIdleSamples != 5 || res.LatencyLoadedSamples < 5 || res.LatencyLoadedLost > 2 {
		t.Errorf("icmp samples: idle %d, loaded %d (lost %d)", res.LatencyIdleSamples, res.LatencyLoadedSamples, res.LatencyLoadedLost)
	}
	if s.conns.Load() != 1 {
		t.Errorf("server saw %d connections: ICMP latency must not connect", s.conns.Load())
	}
}

// Only one throughput probe runs at a time: a second waits while its
// timeout allows a measurement after the first, and fails at once when not.
func TestThroughputConcurrencyLimit(t *testing.T) {
	if ThroughputConcurrency() != 1 {
		t.Fatalf("default limit %d, want 1", ThroughputConcurrency())
	}
	s := startTPServer(t, pacedDownload(1e6))
	o := fastTP()
	o.Connections = 1
	o.LatencyProtocol = config.LatencyProtocolNone
	o.Duration = 2 * time.Second

	first := make(chan *ThroughputResult, 1)
	go func() { first <- runTP(t, s.URL, o, 10*time.Second) }()
	waitFor(t, func() bool { return len(throughputSlots.ch) == 1 })

	short := o
	short.Duration = time.Second
	start := time.Now()
	res := runTP(t, s.URL, short, 1200*time.Millisecond)
	if res.Success || !strings.Contains(res.Error, "another throughput probe is running (at most 1 at a time") {
		t.Errorf("second probe: success %v, error %q", res.Success, res.Error)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a probe that cannot fit after the running one should fail at once, took %s", took)
	}

	res = runTP(t, s.URL, short, 6*time.Second)
	if !res.Success || res.WaitSeconds < 0.5 {
		t.Errorf("third probe: success %v (%s), waited %.2fs; want success after waiting for the first", res.Success, res.Error, res.WaitSeconds)
	}
	if r := <-first; !r.Success || r.WaitSeconds != 0 {
		t.Errorf("first probe: success %v (%s), waited %.2fs", r.Success, r.Error, r.WaitSeconds)
	}

	// With a limit of 2 they run side by side.
	SetThroughputConcurrency(2)
	defer SetThroughputConcurrency(DefaultThroughputConcurrency)
	var wg sync.WaitGroup
	results := make([]*ThroughputResult, 2)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = runTP(t, s.URL, short, 5*time.Second) }()
	}
	wg.Wait()
	for i, r := range results {
		if !r.Success || r.WaitSeconds != 0 {
			t.Errorf("limit 2, probe %d: success %v (%s), waited %.2fs", i, r.Success, r.Error, r.WaitSeconds)
		}
	}
	SetThroughputConcurrency(0)
	if ThroughputConcurrency() != 0 {
		t.Error("limit 0 should mean none")
	}
	if release, waited, err := acquireThroughputSlot(context.Background(), time.Now()); err != nil || waited != 0 {
		t.Errorf("no limit: %v", err)
	} else {
		release()
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestThroughputHostname(t *testing.T) {
	var hosts sync.Map
	s := startTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, true)
		if r.Header.Get("X-Test") != "yes" {
			http.Error(w, "missing header", http.StatusBadRequest)
			return
		}
		pacedDownload(1e6)(w, r)
	}))
	o := fastTP()
	o.Connections = 1
	o.LatencyProtocol = config.LatencyProtocolNone
	o.Headers = map[string]string{"X-Test": "yes"}
	req := Request{Target: s.URL, Module: new(tpModule(o)), Logger: tpLogger(t), Hostname: "speed.example"}
	res := runTPWith(t, req, 5*time.Second)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	if _, ok := hosts.Load("speed.example"); !ok {
		t.Errorf("Host header not set from hostname")
	}
}

func TestSteadyRate(t *testing.T) {
	// 1 MB/s after a slow first second.
	var s []progress
	for i := 0; i <= 40; i++ {
		at := time.Duration(i) * 100 * time.Millisecond
		b := int64(0)
		if at > time.Second {
			b = int64((at - time.Second).Seconds() * 1e6)
		}
		s = append(s, progress{at: at, bytes: b})
	}
	if r, w := steadyRate(s, time.Second); r < 0.999e6 || r > 1.001e6 || w != 3 {
		t.Errorf("steady rate %g over %gs, want 1e6 over 3s", r, w)
	}
	if r, w := steadyRate(s, 0); r != 3e6/4 || w != 4 {
		t.Errorf("whole rate %g over %gs", r, w)
	}
	// Too short a window after the ramp-up: the whole transfer.
	if r, w := steadyRate(s[:13], time.Second); w != 1.2 || r < 166666 || r > 166667 {
		t.Errorf("short transfer: %g over %gs", r, w)
	}
	if r, w := steadyRate(nil, 0); r != 0 || w != 0 {
		t.Error("no samples")
	}
}

func TestLatencyStatistics(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	if m := median(ms(5, 1, 3)); m != 3*time.Millisecond {
		t.Errorf("median %s", m)
	}
	if m := median(ms(4, 1, 3, 2)); m != 2500*time.Microsecond {
		t.Errorf("median %s", m)
	}
	if median(nil) != 0 || trimmedMean(nil, 0.95) != 0 {
		t.Error("empty")
	}
	// 20 samples: the slowest one (5%) is left out.
	s := ms(10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 1000)
	if m := trimmedMean(s, 0.95); m != 10*time.Millisecond {
		t.Errorf("trimmed mean %s", m)
	}
}

// tpRegistry gathers the speedtest counters.
type tpRegistry struct{ *prometheus.Registry }

func newTPRegistry() tpRegistry { return tpRegistry{prometheus.NewRegistry()} }

func (r tpRegistry) value(t *testing.T, name, direction string) float64 {
	t.Helper()
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{direction=%q}", name, direction)
	return 0
}

func TestThroughputResultJSON(t *testing.T) {
	res := &ThroughputResult{Direction: "download", Bytes: 10, TransferSeconds: 1}
	res.DurationSeconds = 2
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"duration_seconds":2`, `"transfer_seconds":1`, `"bytes":10`, `"bytes_per_second":0`, `"latency_idle_seconds":0`, `"responsiveness_rpm":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

func TestThroughputIPv6(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	s := &tpServer{Server: &httptest.Server{Listener: l, Config: &http.Server{Handler: pacedDownload(1e6)}}}
	s.Start()
	t.Cleanup(s.Close)
	o := fastTP()
	o.Connections = 1
	res := runTP(t, s.URL, o, 5*time.Second)
	if !res.Success || res.IPProtocol != 6 || res.IPAddr != "::1" || res.LatencyIdleSamples != 5 {
		t.Errorf("IPv6: success %v (%s), ip %q protocol %d, idle samples %d", res.Success, res.Error, res.IPAddr, res.IPProtocol, res.LatencyIdleSamples)
	}
}

// The transfer uses the module's HTTP client config: TLS and auth.
func TestThroughputHTTPClientConfig(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "probe" || p != "secret" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		pacedDownload(1e6)(w, r)
	})
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)

	o := fastTP()
	o.Connections = 2
	o.LatencyProtocol = config.LatencyProtocolNone
	res := runTP(t, s.URL, o, 5*time.Second)
	if res.Success || !strings.Contains(res.Error, "certificate") {
		t.Errorf("untrusted certificate: success %v, error %q", res.Success, res.Error)
	}
	o.HTTPClientConfig.TLSConfig.InsecureSkipVerify = true
	res = runTP(t, s.URL, o, 5*time.Second)
	if res.Success || !strings.Contains(res.Error, "HTTP status 401") {
		t.Errorf("no credentials: success %v, error %q", res.Success, res.Error)
	}
	o.HTTPClientConfig.BasicAuth = &pconfig.BasicAuth{Username: "probe", Password: "secret"}
	res = runTP(t, s.URL, o, 5*time.Second)
	if !res.Success || res.ConnectionsOpened != 2 {
		t.Errorf("TLS with credentials: success %v (%s), %d connections (HTTP/2 must not fold the streams into one)",
			res.Success, res.Error, res.ConnectionsOpened)
	}
}

// TestThroughputHTTP2: the response-head bound counts only the handshake and
// the headers, over HTTP/2 (whose read loop takes body frames before the
// round trip returns) as over HTTP/1.1 and plain HTTP: an unpaced 10 MB
// download from isp-checker's own speed-test server succeeds on each.
func TestThroughputHTTP2(t *testing.T) {
	h := speedtest.New(speedtest.Options{})
	mux := http.NewServeMux()
	for p, r := range h.Routes() {
		mux.Handle(p, r)
	}
	for _, tc := range []struct {
		name       string
		tls, h2    bool
		wantProtoc string
	}{
		{"h2", true, true, "HTTP/2.0"},
		{"https HTTP/1.1", true, false, "HTTP/1.1"},
		{"plain HTTP/1.1", false, false, "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var proto atomic.Value
			s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				proto.Store(r.Proto)
				mux.ServeHTTP(w, r)
			}))
			s.EnableHTTP2 = tc.h2
			if tc.tls {
				s.StartTLS()
			} else {
				s.Start()
			}
			t.Cleanup(s.Close)
			o := fastTP()
			o.Connections = 2
			o.LatencyProtocol = config.LatencyProtocolNone
			o.HTTPClientConfig.TLSConfig.InsecureSkipVerify = true
			res := runTP(t, s.URL+speedtest.DownloadPath+"?bytes=10000000", o, 10*time.Second)
			if !res.Success || res.BytesPerSecond <= 0 || proto.Load() != tc.wantProtoc {
				t.Errorf("%s: success %v (%s), %.0f B/s, protocol %v; want success over %s", tc.name, res.Success, res.Error, res.BytesPerSecond, proto.Load(), tc.wantProtoc)
			}
		})
	}
}
