package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// smokeping is Debian's prometheus-smokeping-prober pinging every target
// continuously at the probes' interval (one pro-bing Pinger, so one socket,
// per target). A round is a window of the probes' length (at least 3 s)
// between two scrapes of its counters.
type smokeping struct {
	o       options
	bin     string
	name    string
	dir     string
	targets []string
	cmd     *exec.Cmd
	addr    string
	rssBase int64
	// failed is why it could not run at this size: later rounds report it
	// without waiting again.
	failed string
}

func newSmokeping(o options, targets []string) (*smokeping, error) {
	bin, err := exec.LookPath(o.smokeping)
	if err != nil {
		return nil, fmt.Errorf("not installed (apt-get install prometheus-smokeping-prober)")
	}
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	name := "smokeping_prober"
	if f := strings.Fields(string(out)); len(f) > 2 {
		name += " " + f[2]
	}
	dir, err := os.MkdirTemp("", "icmpbench-smokeping-")
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755)
	s := &smokeping{o: o, bin: bin, name: name, dir: dir, targets: targets}
	// Its idle footprint, for the per-target growth: one target.
	if base, err := s.start(targets[:1]); err == nil {
		time.Sleep(time.Second)
		s.rssBase, _ = memOf(base.Process.Pid)
		_ = base.Process.Kill()
		_ = base.Wait()
	}
	return s, nil
}

func (s *smokeping) start(targets []string) (*exec.Cmd, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.addr = l.Addr().String()
	_ = l.Close()
	cfg := filepath.Join(s.dir, "smokeping.yml")
	if err := os.WriteFile(cfg, []byte("targets: []\n"), 0o644); err != nil {
		return nil, err
	}
	args := []string{"--config.file=" + cfg, "--web.listen-address=" + s.addr, "--ping.interval=" + s.o.interval.String(), "--log.level=warn"}
	if s.o.socket == "privileged" {
		args = append(args, "--privileged")
	}
	cmd := exec.Command(s.bin, append(args, targets...)...)
	logf, err := os.Create(filepath.Join(s.dir, "smokeping.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if s.o.exporterUser != "" && s.o.socket != "privileged" {
		cred, err := credential(s.o.exporterUser)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// It serves /metrics once it has started a pinger per target.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := scrapeClient.Get("http://" + s.addr + "/metrics"); err == nil {
			_ = resp.Body.Close()
			return cmd, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	log, _ := os.ReadFile(logf.Name())
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	return nil, fmt.Errorf("smokeping_prober did not serve /metrics within 60s: %s", lines[len(lines)-1])
}

// scrape sums its request and response counters over all targets, and
// returns the responses per target.
// scrapeClient gives up on an overloaded smokeping_prober.
var scrapeClient = &http.Client{Timeout: 20 * time.Second}

func (s *smokeping) scrape() (requests, responses, rttSum float64, hosts int, err error) {
	resp, err := scrapeClient.Get("http://" + s.addr + "/metrics")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, _, _ := strings.Cut(line, "{")
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		switch name {
		case "smokeping_requests_total":
			requests += v
			hosts++
		case "smokeping_response_duration_seconds_count":
			responses += v
		case "smokeping_response_duration_seconds_sum":
			rttSum += v
		}
	}
	return requests, responses, rttSum, hosts, sc.Err()
}

// perTarget returns responses by host.
func (s *smokeping) perTarget() (map[string]float64, error) {
	resp, err := scrapeClient.Get("http://" + s.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "smokeping_response_duration_seconds_count{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `host="`)
		host, _, _ := strings.Cut(rest, `"`)
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		out[host] = v
	}
	return out, sc.Err()
}

// run starts smokeping_prober on every target, waits until it has pinged
// each once, measures a window and stops it: while it runs, its socket per
// target would make every other tool's ICMP packets cost more (the kernel
// offers each packet to every raw socket).
func (s *smokeping) run() row {
	r := row{tool: s.name, path: "-", socket: s.o.socket, probes: len(s.targets), drops: -1, rssBase: s.rssBase}
	if s.failed != "" {
		r.errors = s.failed
		return r
	}
	var err error
	if s.cmd, err = s.start(s.targets); err != nil {
		s.failed = err.Error()
		r.errors = s.failed
		return r
	}
	defer s.stop()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if req, _, _, hosts, err := s.scrape(); err == nil && hosts >= len(s.targets) && req >= float64(len(s.targets)) {
			break
		}
		if time.Now().After(deadline) || s.cmd.ProcessState != nil {
			s.failed = "did not ping every target within 60s"
			r.errors = s.failed
			return r
		}
		time.Sleep(500 * time.Millisecond)
	}
	pid := s.cmd.Process.Pid
	window := max(time.Duration(s.o.packets)*s.o.interval, 3*time.Second)
	req0, resp0, sum0, _, err := s.scrape()
	per0, err2 := s.perTarget()
	if err != nil || err2 != nil {
		r.errors = fmt.Sprint(err, err2)
		return r
	}
	resetPeak(pid)
	u0, s0 := userSysOf(pid)
	cpu0, start := cpuOf(pid), time.Now()
	time.Sleep(window)
	r.cpu, r.wall = cpuOf(pid)-cpu0, time.Since(start)
	u1, s1 := userSysOf(pid)
	r.user, r.sys = u1-u0, s1-s0
	_, r.rssPeak = memOf(pid)
	req1, resp1, sum1, _, err := s.scrape()
	per1, err2 := s.perTarget()
	if err != nil || err2 != nil {
		r.errors = fmt.Sprint(err, err2)
		return r
	}
	r.sent, r.received, r.rttSum = int(req1-req0), int(resp1-resp0), sum1-sum0
	for _, t := range s.targets {
		if per1[t]-per0[t] == 0 {
			r.dead++
		}
	}
	r.errors = fmt.Sprintf("continuous pinging over a %v window", window.Round(time.Millisecond))
	return r
}

func (s *smokeping) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *smokeping) cleanup() {
	s.stop()
	_ = os.RemoveAll(s.dir)
}
