package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fping runs fping once per round on the same targets with the same count,
// per-target period and timeout; -i 0 lets it send as fast as it can
// between targets. It always uses a raw socket: fping 5.1's datagram mode
// drops every reply here, because the kernel rewrites the identifier and
// fping checks it.
type fping struct {
	o       options
	bin     string
	name    string
	dir     string
	file    string
	targets []string
	rssBase int64
}

func newFping(o options, targets []string) (*fping, error) {
	bin, err := exec.LookPath(o.fping)
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install fping)")
	}
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	name := "fping"
	if f := strings.Fields(string(out)); len(f) > 0 {
		name += " " + f[len(f)-1]
	}
	dir, err := os.MkdirTemp("", "icmpbench-fping-")
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "targets")
	if err := os.WriteFile(file, []byte(strings.Join(targets, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	f := &fping{o: o, bin: bin, name: name, dir: dir, file: file, targets: targets}
	// Its footprint with one target, for the per-target growth.
	one := filepath.Join(dir, "one")
	if err := os.WriteFile(one, []byte(targets[0]+"\n"), 0o644); err == nil {
		cmd := exec.Command(bin, "-q", "-C", "3", "-p", "100", "-f", one)
		if cmd.Start() == nil {
			f.rssBase = peakWhileRunning(cmd.Process.Pid)
			_ = cmd.Wait()
		}
	}
	return f, nil
}

// peakWhileRunning polls pid's peak RSS until it exits. (The rusage of a
// child started by this process would report this process's RSS: Go starts
// children with vfork, and exec keeps the larger high-water mark.)
func peakWhileRunning(pid int) int64 {
	var peak int64
	for {
		_, hwm := memOf(pid)
		if hwm == 0 {
			return peak
		}
		peak = max(peak, hwm)
		time.Sleep(5 * time.Millisecond)
	}
}

// fpingSeqs is how many requests one fping 5.1 keeps track of at once
// (65535 sequence numbers, each held for count × period): the fleet shape
// needs more, so its targets are split over several fping processes that
// run at once, and their CPU and memory are added up.
const fpingSeqs = 60000

func (f *fping) run() row {
	chunks := (len(f.targets)*f.o.packets + fpingSeqs - 1) / fpingSeqs
	r := row{tool: f.name, path: "-", socket: "privileged", probes: len(f.targets), rssBase: f.rssBase * int64(chunks), drops: -1}
	if chunks > 1 {
		r.tool += fmt.Sprintf(" ×%d", chunks)
	}
	per := (len(f.targets) + chunks - 1) / chunks
	results := make([]fpingResult, chunks)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range chunks {
		file := f.file
		if chunks > 1 {
			file = fmt.Sprintf("%s.%d", f.file, c)
			part := f.targets[c*per : min((c+1)*per, len(f.targets))]
			if err := os.WriteFile(file, []byte(strings.Join(part, "\n")+"\n"), 0o644); err != nil {
				results[c].err = err
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[c] = f.runOne(file)
		}()
	}
	wg.Wait()
	r.wall = time.Since(start)
	for _, res := range results {
		if res.err != nil {
			r.errors = res.err.Error()
			continue
		}
		r.cpu += res.cpu
		r.user += res.user
		r.sys += res.sys
		r.rssPeak += res.peak
		f.parse(res.out, &r)
	}
	return r
}

type fpingResult struct {
	out            string
	cpu, user, sys time.Duration
	peak           int64
	err            error
}

func (f *fping) runOne(file string) (res fpingResult) {
	args := []string{"-q", "-C", strconv.Itoa(f.o.packets), "-p", strconv.Itoa(int(f.o.interval.Milliseconds())),
		"-i", "0", "-t", strconv.Itoa(int(f.o.replyTimeout.Milliseconds())), "-r", "0", "-f", file}
	cmd := exec.Command(f.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if res.err = cmd.Start(); res.err != nil {
		return res
	}
	res.peak = peakWhileRunning(cmd.Process.Pid)
	_ = cmd.Wait() // exits 1 when a target lost packets
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.user, res.sys = time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
		res.cpu = res.user + res.sys
	}
	res.out = out.String()
	return res
}

// parse adds fping -C -q output ("target : rtt rtt - rtt", ms) to r.
func (f *fping) parse(out string, r *row) {
	sent := r.sent
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		_, rtts, ok := strings.Cut(sc.Text(), " : ")
		if !ok {
			continue
		}
		got := 0
		for _, v := range strings.Fields(rtts) {
			r.sent++
			if ms, err := strconv.ParseFloat(v, 64); err == nil {
				got++
				r.rttSum += ms / 1000
			}
		}
		r.received += got
		if got == 0 {
			r.dead++
		}
	}
	if r.sent == sent {
		r.errors = strings.TrimSpace(out)
	}
}
