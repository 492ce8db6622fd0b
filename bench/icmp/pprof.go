package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// With -pprof DIR the bench profiles the exporter (a build with -tags
// benchpprof, which serves net/http/pprof on a listener of its own) and the
// floor: in every round, half way through the probes' wait, it saves the
// heap and goroutine profiles and prints the Go runtime's memory figures
// per concurrent probe (runtime.MemStats, read through /debug/pprof/heap;
// the live heap after the collection the heap profile asks for),
// against the same figures before the warm-up (as the peak RSS column); over the first -pprof-seconds
// of the rounds it takes a CPU profile.

// memStats is what the midway line prints.
type memStats struct {
	goroutines                          int
	stackInuse, heapInuse, heapSys, sys int64
	heapAlloc                           int64
	totalAlloc, mallocs, numGC          int64
}

func (x *exporter) memStats() (memStats, error) {
	var m memStats
	resp, err := http.Get("http://" + x.pprof + "/debug/pprof/heap?debug=1")
	if err != nil {
		return m, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, " / ") // "Stack = inuse / sys"
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "Stack":
			m.stackInuse = n
		case "TotalAlloc":
			m.totalAlloc = n
		case "Mallocs":
			m.mallocs = n
		case "NumGC":
			m.numGC = n
		case "HeapInuse":
			m.heapInuse = n
		case "HeapAlloc":
			m.heapAlloc = n
		case "HeapSys":
			m.heapSys = n
		case "Sys":
			m.sys = n
		}
	}
	resp2, err := http.Get("http://" + x.pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return m, err
	}
	defer func() { _ = resp2.Body.Close() }()
	first, _ := bufio.NewReader(resp2.Body).ReadString('\n')
	_, _ = fmt.Sscanf(first, "goroutine profile: total %d", &m.goroutines)
	return m, sc.Err()
}

func (x *exporter) save(path, name string) error {
	resp, err := http.Get("http://" + x.pprof + path)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	f, err := os.Create(filepath.Join(x.o.pprofDir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// snapshotMidway, with -pprof, saves the profiles half way through the
// probes' wait; the func it returns waits for them and prints the line.
func (x *exporter) snapshotMidway() func() {
	if x.pprof == "" {
		return func() {}
	}
	x.rounds++
	tag := fmt.Sprintf("%s-%d", strings.ReplaceAll(x.o.label, "/", "_"), x.rounds)
	var wg sync.WaitGroup
	var m, live memStats
	before, err := x.memStats()
	if err != nil {
		return func() { fmt.Printf("-- %s: %v\n", x.o.label, err) }
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Duration(x.o.packets-1) * x.o.interval / 2)
		if m, err = x.memStats(); err != nil {
			return
		}
		// gc=1: the profile, and the figures read after it, are of the
		// live heap (this collection perturbs the round's peak RSS).
		_ = x.save("/debug/pprof/heap?gc=1", tag+".heap.pb.gz")
		live, _ = x.memStats()
		_ = x.save("/debug/pprof/goroutine", tag+".goroutine.pb.gz")
	}()
	return func() {
		wg.Wait()
		if err != nil {
			fmt.Printf("-- %s midway: %v\n", x.o.label, err)
			return
		}
		n := float64(len(x.targets))
		b := x.ms0
		after, _ := x.memStats()
		fmt.Printf("-- %s midway, per probe over the process before warm-up: %.2f goroutines, stack %.1f kB, heap in use %.1f kB (live %.1f kB), heap from the OS %.1f kB, Go runtime total %.1f kB\n",
			x.o.label, float64(m.goroutines-b.goroutines)/n, float64(m.stackInuse-b.stackInuse)/1024/n,
			float64(m.heapInuse-b.heapInuse)/1024/n, float64(live.heapAlloc-b.heapAlloc)/1024/n,
			float64(m.heapSys-b.heapSys)/1024/n, float64(m.sys-b.sys)/1024/n)
		fmt.Printf("-- %s round: %.1f kB allocated and %.0f allocations per probe, %d GCs\n", x.o.label,
			float64(after.totalAlloc-before.totalAlloc)/1024/n, float64(after.mallocs-before.mallocs)/n, after.numGC-before.numGC)
	}
}

// cpuProfile takes a CPU profile of the next seconds; the func it returns
// waits for it.
func (x *exporter) cpuProfile(seconds int) func() {
	if x.pprof == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		name := strings.ReplaceAll(x.o.label, "/", "_") + ".cpu.pb.gz"
		if err := x.save(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), name); err != nil {
			fmt.Printf("-- %s cpu profile: %v\n", x.o.label, err)
		}
	}()
	return func() { <-done }
}
