package server

import (
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/probers"
)

// BenchmarkProbeICMPStack is the goroutine stack a /probe of the icmp
// prober holds while it waits for its echoes: n probes at once, each on a
// goroutine of its own (as net/http serves each connection on one), with
// the stacks in use read half way through their wait. The runtime grows a
// stack by doubling it and shrinks it only when a collection finds it
// three quarters unused, so what the deepest call of the probe path needs
// is what every concurrent probe keeps: 8, 16 or 32 kB. Run it with
// GODEBUG=adaptivestackstart=0 so goroutines start at the minimum, not at
// the average of those before. The handler is called under frames as
// large as net/http's own (conn.serve and the mux, about 1.3 kB); net/http's
// background reader of each request comes on top; bench/icmp measures
// whole exporters.
func BenchmarkProbeICMPStack(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for a raw ICMP socket")
	}
	c, err := config.Load([]byte("modules:\n  icmp:\n    prober: icmp\n    timeout: 5s\n    icmp:\n      preferred_ip_protocol: ip4\n      socket: privileged\n      packets: 3\n      interval: 100ms\n"), "")
	if err != nil {
		b.Fatal(err)
	}
	holder := config.NewHolder("", nil)
	holder.Set(c)
	h := NewProbeHandler(ProbeOptions{Config: holder, Probers: probers.All(), History: NewHistory(100), Metrics: NewSelfMetrics(prometheus.NewRegistry())})
	const n = 200
	var perProbe float64
	for range b.N {
		var before, during runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := httptest.NewRecorder()
				underNetHTTPFrames(func() {
					h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/probe?module=icmp&target=127.0.0.1", nil))
				})
				if rec.Code != http.StatusOK {
					b.Error(rec.Code)
				}
			}()
		}
		time.Sleep(150 * time.Millisecond) // between the second and the third echo
		runtime.ReadMemStats(&during)
		wg.Wait()
		perProbe = float64(during.StackInuse-before.StackInuse) / n
	}
	b.ReportMetric(perProbe, "stack-B/probe")
}

// netHTTPFrames is about what net/http's frames under a handler take:
// (*conn).serve's 1,112 bytes, the mux's, return addresses.
const netHTTPFrames = 1400

// underNetHTTPFrames calls f under a frame of netHTTPFrames bytes.
//
//go:noinline
func underNetHTTPFrames(f func()) {
	var pad [netHTTPFrames]byte
	pad[0] = byte(len(os.Args))
	f()
	runtime.KeepAlive(&pad)
}
