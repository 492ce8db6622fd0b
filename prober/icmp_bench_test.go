package prober

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkICMPConcurrent runs, per op, N concurrent 10-packet probes
// (interval 10ms) to N distinct loopback targets (every sixth ::1) and
// checks that each got only its own replies (it fails on a duplicate, a
// reply from another target or a shared identifier). Reported: the CPU time
// (user+system, of the whole process) per echo, echoes and lost replies per
// op, and — after the last op — goroutines and file descriptors left over
// (leaks). Run the binary in a namespace whose ping_group_range admits
// the user to measure unprivileged sockets (bench/icmp/run.sh does).
//
//	go test ./prober/ -run '^$' -bench BenchmarkICMPConcurrent -benchtime 5x
//
// bench/icmp/run.sh measures whole exporters at scale, side by side with
// fping and smokeping_prober.
func BenchmarkICMPConcurrent(b *testing.B) {
	icmpNeedSocket(b)
	for _, probes := range []int{100, 300, 1000} {
		b.Run(fmt.Sprintf("probes=%d", probes), func(b *testing.B) {
			const packets = 10
			targets := icmpConcurrentTargets(probes)
			m := icmpModule(b, 20*time.Second, fmt.Sprintf("packets: %d\ninterval: 10ms\nreply_timeout: 1s", packets))
			icmpRunConcurrent(b, targets[:10], m, nil) // warm up (first socket, goroutine stacks)
			time.Sleep(200 * time.Millisecond)
			goroutines, fds, ids := runtime.NumGoroutine(), icmpOpenFDs(), icmpIDs.inUseCount()
			cpu0 := icmpCPUTime()
			var mode string
			lost := 0
			b.ResetTimer()
			for range b.N {
				results := icmpRunConcurrent(b, targets, m, nil)
				lost += icmpCheckConcurrent(b, targets, results, packets)
				mode = results[0].SocketMode
			}
			b.StopTimer()
			cpu := icmpCPUTime() - cpu0
			echoes := float64(b.N * probes * packets)
			b.ReportMetric(float64(cpu.Microseconds())/echoes, "cpu-µs/echo")
			b.ReportMetric(float64(probes*packets), "echoes/op")
			b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
			// Leaks: the engine closes its sockets and stops its goroutines
			// when the last probe ends.
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) && (runtime.NumGoroutine() > goroutines || icmpOpenFDs() > fds) {
				time.Sleep(20 * time.Millisecond)
			}
			b.ReportMetric(float64(runtime.NumGoroutine()-goroutines), "leaked-goroutines")
			b.ReportMetric(float64(icmpOpenFDs()-fds), "leaked-fds")
			if n := icmpIDs.inUseCount(); n != ids {
				b.Errorf("%d echo identifiers still in use", n-ids)
			}
			b.Logf("socket mode %s", mode)
		})
	}
}

// icmpCPUTime is the process's user+system CPU time so far.
func icmpCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// icmpOpenFDs counts this process's open file descriptors.
func icmpOpenFDs() int {
	d, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(d)
}
