//go:build linux

package prober

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/netlab"
	"github.com/isp-checker/isp-checker/speedtest"
)

// The throughput prober against ground truth built in the lab:
//
//	client ── gw ══ isp1 ── remote (speedtest endpoints)
//	(probe)      ^ access link, shaped with tc tbf to 20 Mbit/s
//
// tbf sits on the egress of the router interface facing the data's
// receiver: isp1→gw for a download, gw→isp1 for an upload. Its queue is
// either deep (latency 400ms: bufferbloat) or shallow (latency 5ms).
//
// Expected rate: tbf counts every byte of the Ethernet frame it sends
// (14-byte header; no preamble or FCS on a veth), so a full-size TCP
// segment carries 1448 payload bytes (MTU 1500 − 20 IPv4 − 32 TCP with
// timestamps) per 1514 bytes of tbf tokens: goodput = 20e6/8 · 1448/1514 ≈
// 2.39e6 B/s, 4.4% under the nominal 2.5e6. The test allows ±15% around
// 2.5e6 (2.125e6–2.875e6), as the issue states it, and logs the deviation
// from the expected 2.39e6.
//
// Expected latency: with the queue full, a packet waits about the tbf
// latency (400 ms) behind the bulk data; a TCP SYN-ACK (download) or SYN
// (upload) of a latency sample waits in the same queue. With the 5 ms
// queue it waits at most ~5 ms plus the bucket (3200 B ≈ 1.3 ms).
const (
	labRate          = 20e6 // bit/s
	labNominalBps    = labRate / 8
	labGoodputBps    = labNominalBps * 1448 / 1514
	labRateTolerance = 0.15
	// labBurst is the token bucket: two full frames, 1.3 ms at 20 Mbit/s
	// (netlab's default, 10 ms of rate, would add 10 ms to the queue bound).
	labBurst = 3200
)

// labServer serves the speedtest endpoints on remote:8080. Its sockets use
// cubic, the loss-based congestion control most servers and systems use,
// which keeps a deep queue full (the lab's namespaces default to the
// host's, which may be BBR: BBR paces at the bottleneck rate and keeps the
// queue short, hiding most of the bufferbloat the test is about).
func labServer(t *testing.T, p *netlab.Path) string {
	t.Helper()
	remote := p.Host("remote")
	var l net.Listener
	err := remote.Do(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return setCongestionControl(c, "cubic") }}
		l, err = lc.Listen(context.Background(), "tcp", ":8080")
		return err
	})
	if err != nil {
		t.Fatalf("listen in remote: %v", err)
	}
	h := speedtest.New(speedtest.Options{MaxBytes: 1 << 30})
	mux := http.NewServeMux()
	for path, r := range h.Routes() {
		mux.Handle(path, r)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + net.JoinHostPort(remote.IPv4().String(), "8080")
}

func labModule(dir string) config.ThroughputProbe {
	o := config.DefaultThroughputProbe()
	o.Direction = dir
	o.Duration = 4 * time.Second
	o.RampUp = time.Second
	o.Connections = 4
	o.IdleLatencySamples = 10
	o.LatencyInterval = 100 * time.Millisecond
	// The probe is the sender of an upload: cubic, like the server.
	o.CongestionControl = "cubic"
	return o
}

func TestThroughputLab(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	base := labServer(t, p)
	access := p.Uplinks[0] // A: gw, B: isp1

	tests := []struct {
		name    string
		dir     string
		queue   time.Duration
		latency string // latency_protocol
		deep    bool
	}{
		{"download/deep-queue", config.ThroughputDownload, 400 * time.Millisecond, config.LatencyProtocolTCP, true},
		{"download/shallow-queue", config.ThroughputDownload, 5 * time.Millisecond, config.LatencyProtocolTCP, false},
		{"upload/deep-queue", config.ThroughputUpload, 400 * time.Millisecond, config.LatencyProtocolTCP, true},
		{"upload/shallow-queue", config.ThroughputUpload, 5 * time.Millisecond, config.LatencyProtocolTCP, false},
		{"download/deep-queue/icmp", config.ThroughputDownload, 400 * time.Millisecond, config.LatencyProtocolICMP, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.latency == config.LatencyProtocolICMP {
				if _, _, err := icmpSocketMode(config.ICMPSocketAuto, false); err != nil {
					t.Skipf("no ICMP socket: %v", err)
				}
			}
			shaped := access.B // isp1 → gw: toward the client
			target := base + speedtest.DownloadPath
			if tc.dir == config.ThroughputUpload {
				shaped = access.A // gw → isp1: toward the server
				target = base + speedtest.UploadPath
			}
			shaped.RateLimit(netlab.TBF{Rate: labRate, Burst: labBurst, Latency: tc.queue})
			defer func() {
				shaped.ClearRateLimit()
				time.Sleep(200 * time.Millisecond) // let anything queued elsewhere drain
			}()
			o := labModule(tc.dir)
			o.LatencyProtocol = tc.latency
			res := runTP(t, target, o, 15*time.Second)
			if !res.Success {
				t.Fatalf("probe failed: %s", res.Error)
			}
			increase := res.LatencyLoadedSeconds - res.LatencyIdleSeconds
			t.Logf("%s, tbf %g Mbit/s latency %s: rate %.4g B/s (%+.1f%% of nominal %.4g, %+.1f%% of expected goodput %.4g) over %.2fs; "+
				"bytes %d; latency idle %.2f ms (%d samples), loaded %.1f ms (%d samples, %d lost), increase %.1f ms; %.0f RPM",
				tc.name, labRate/1e6, tc.queue, res.BytesPerSecond, 100*(res.BytesPerSecond/labNominalBps-1), labNominalBps,
				100*(res.BytesPerSecond/labGoodputBps-1), labGoodputBps, res.RateWindowSeconds, res.Bytes,
				1e3*res.LatencyIdleSeconds, res.LatencyIdleSamples, 1e3*res.LatencyLoadedSeconds, res.LatencyLoadedSamples,
				res.LatencyLoadedLost, 1e3*increase, res.ResponsivenessRPM)

			if lo, hi := labNominalBps*(1-labRateTolerance), labNominalBps*(1+labRateTolerance); res.BytesPerSecond < lo || res.BytesPerSecond > hi {
				t.Errorf("rate %.4g B/s, want %.4g ± %.0f%% (%.4g–%.4g)", res.BytesPerSecond, labNominalBps, 100*labRateTolerance, lo, hi)
			}
			if res.LatencyIdleSeconds > 0.005 {
				t.Errorf("idle latency %.2f ms, want < 5 ms on an unloaded lab path", 1e3*res.LatencyIdleSeconds)
			}
			if res.LatencyLoadedSamples < 10 {
				t.Errorf("%d loaded latency samples, want ≥ 10 (3 s at 100 ms)", res.LatencyLoadedSamples)
			}
			if tc.deep {
				// A 400 ms queue that TCP keeps full: the issue asks for
				// "tens of milliseconds or more"; expect most of 400 ms.
				if increase < 0.1 {
					t.Errorf("loaded latency %.1f ms is only %.1f ms above idle with a 400 ms queue; want ≥ 100 ms",
						1e3*res.LatencyLoadedSeconds, 1e3*increase)
				}
				if res.LatencyLoadedSeconds > 0.6 {
					t.Errorf("loaded latency %.1f ms is beyond the 400 ms queue's bound (+ margin)", 1e3*res.LatencyLoadedSeconds)
				}
			} else if increase > 0.015 {
				t.Errorf("loaded latency %.1f ms is %.1f ms above idle with a 5 ms queue; want < 15 ms",
					1e3*res.LatencyLoadedSeconds, 1e3*increase)
			}
		})
	}
}

// Two exporters measure the path between them: the probe reaches the far
// end's speed-test endpoints through the lab, and the far end counts what
// it served.
func TestThroughputLabSpeedtestCounters(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	p.Uplinks[0].B.RateLimit(netlab.TBF{Rate: labRate, Latency: 50 * time.Millisecond})
	remote := p.Host("remote")
	l := remote.Listen("tcp", ":8080")
	reg := newTPRegistry()
	h := speedtest.New(speedtest.Options{MaxBytes: 1 << 20, Registerer: reg})
	mux := http.NewServeMux()
	for path, r := range h.Routes() {
		mux.Handle(path, r)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	defer func() { _ = srv.Close(); <-done }()

	o := labModule(config.ThroughputDownload)
	o.Duration = 2 * time.Second
	o.RampUp = 500 * time.Millisecond
	o.IdleLatencySamples = 3
	target := "http://" + net.JoinHostPort(remote.IPv4().String(), "8080") + speedtest.DownloadPath + "?bytes=" + strconv.Itoa(256<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := Run(ctx, ProbeThroughput, Request{Target: target, Module: new(tpModule(o)), Logger: tpLogger(t)}).(*ThroughputResult)
	if !res.Success {
		t.Fatalf("probe failed: %s", res.Error)
	}
	served := reg.value(t, "isp_checker_speedtest_bytes_total", "download")
	t.Logf("probe read %d bytes in %d requests; the far end sent %g", res.Bytes, res.Requests, served)
	// The far end sent what the probe read, plus what was in flight or
	// queued when the probe stopped (the 50 ms queue and socket buffers).
	if served < float64(res.Bytes) || served > float64(res.Bytes)+4<<20 {
		t.Errorf("far end sent %g bytes, probe read %d", served, res.Bytes)
	}
	if res.Requests <= o.Connections {
		t.Errorf("%d requests: 256 KiB bodies over 2 s at 20 Mbit/s need several per connection", res.Requests)
	}
}
