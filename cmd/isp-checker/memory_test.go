package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// peakRSS reads a process's peak resident set (VmHWM) from /proc. On this
// project's machines (a Linux VM, not gVisor) VmHWM is the kernel's high
// water mark: checked by allocating 300 MiB, freeing it, and seeing VmHWM
// stay at 320 MiB while VmRSS fell to 13 MiB.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc status")
	return 0
}

// endlessBody serves an endless text body as fast as loopback takes it.
func endlessBody(t testing.TB) string {
	chunk := []byte(strings.Repeat("all work and no play makes jack a dull boy\n", 1500))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// endlessBodyProbes runs n concurrent /probe requests of a body-regexp
// module against an endless body on the exporter (a subprocess, so its
// peak RSS is its own) and returns the peak RSS and each probe's debug
// output.
func endlessBodyProbes(t testing.TB, n int, extra ...string) (int64, []string) {
	t.Helper()
	target := endlessBody(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte("modules:\n  body:\n    prober: http\n    timeout: 20s\n    http:\n      fail_if_body_not_matches_regexp: ['never (present)']\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(binary, append([]string{"--config.file=" + cfg, "--web.listen-address=" + addr, "--log.level=warn"}, extra...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(url + "/-/healthy"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("exporter did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url + "/probe?module=body&debug=true&target=" + target)
			if err != nil {
				outs[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			outs[i] = string(b)
		}()
	}
	wg.Wait()
	return peakRSS(t, cmd.Process.Pid), outs
}

// 20 concurrent body-regexp probes of an endless body keep the exporter's
// peak RSS under 256 MiB (without the memory budget and the body limit
// they take ~680 MiB, ~45 MiB a probe), and each fails with a clear
// reason: the body is too large to match, or the memory budget is spent.
func TestEndlessBodiesStayWithinMemory(t *testing.T) {
	peak, outs := endlessBodyProbes(t, 20)
	budget := 0
	for i, out := range outs {
		switch {
		case strings.Contains(out, "too large to match; set body_size_limit"):
		case strings.Contains(out, "Not enough memory to hold the response body for matching: memory budget exhausted"):
			budget++
		default:
			t.Errorf("probe %d: no clear reason:\n%.2000s", i, out)
		}
	}
	t.Logf("peak RSS %d MiB; %d of %d probes refused for the memory budget", peak>>20, budget, len(outs))
	if peak >= 256<<20 {
		t.Errorf("peak RSS %d MiB, want under 256 MiB", peak>>20)
	}
}

// BenchmarkEndlessBodyPeakRSS reports the exporter's peak RSS for 20 and
// 40 concurrent body-regexp probes of an endless body (make bench).
func BenchmarkEndlessBodyPeakRSS(b *testing.B) {
	for _, n := range []int{20, 40} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var peak int64
			for b.Loop() {
				p, _ := endlessBodyProbes(b, n)
				peak = max(peak, p)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		})
	}
}
