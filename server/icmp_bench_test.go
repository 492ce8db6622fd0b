package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/internal/icmpecho"
)

// BenchmarkProbeICMP is one /probe?module=icmp of 127.0.0.1 with a single
// echo, from request to exposition, as Prometheus would scrape it (its
// Accept header, gzip accepted): the per-probe cost of the handler, the
// prober and the echo engine, without the HTTP connection. Another probe
// keeps the engine open meanwhile, as one scraping many targets does (a
// lone probe also pays for opening and closing the engine's socket).
// bench/icmp measures whole exporters at scale.
func BenchmarkProbeICMP(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for a raw ICMP socket")
	}
	h := loadedProbeHandler(b, "modules:\n  icmp:\n    prober: icmp\n    timeout: 5s\n    icmp:\n      preferred_ip_protocol: ip4\n      socket: privileged\n",
		ProbeOptions{History: NewHistory(100), Metrics: NewSelfMetrics(prometheus.NewRegistry())})
	keeper, err := icmpecho.Start(icmpecho.Request{Dst: netip.MustParseAddr("127.0.0.1"), Mode: icmpecho.Privileged,
		Packets: 2, Interval: time.Hour, Size: 28})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); keeper.Wait(ctx) }()
	const accept = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
	b.ReportAllocs()
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	// Many probes at once, as many targets are scraped: a lone probe
	// mostly waits (the receive loop reads every millisecond).
	b.SetParallelism(100)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/probe?module=icmp&target=127.0.0.1", nil)
			r.Header.Set("Accept", accept)
			r.Header.Set("Accept-Encoding", "gzip")
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				b.Error(rec.Code)
				return
			}
		}
	})
	// Wall time per op says little (probes overlap); the CPU time per
	// probe is the cost.
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
