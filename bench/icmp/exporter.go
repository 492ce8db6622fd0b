package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// exporter is an isp-checker process probed through /probe, as Prometheus
// scrapes it: one request per target, all at once, on kept-alive
// connections (a warm-up round opens them).
type exporter struct {
	o       options
	targets []string
	cmd     *exec.Cmd
	dir     string
	addr    string
	client  *http.Client // the probes' connections
	// admin asks for /-/ready and /metrics on connections of its own, as
	// Prometheus scrapes the exporter in a job apart from its probes, so
	// a probe never reuses a connection net/http served /metrics on.
	admin   *http.Client
	rssBase int64
	// floor: the process is the net/http floor (floor.go), not an
	// exporter; its answers carry no echoes.
	floor bool
	// pprof is the address of the exporter's profiling listener (a
	// -tags benchpprof build), when -pprof asked for profiles.
	pprof string
	ms0   memStats // the runtime's figures before the warm-up, as rssBase (-pprof)
	// The Parker's counters at the last engineCounters.
	parked, read int64
	// dialed counts the requests that went on a new connection.
	dialed atomic.Int64
	rounds int
}

func startExporter(o options, targets []string) (*exporter, error) {
	dir, err := os.MkdirTemp("", "icmpbench-")
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755)
	x := &exporter{o: o, targets: targets, dir: dir}
	cfg := fmt.Sprintf(`modules:
  bench:
    prober: icmp
    timeout: %s
    icmp:
      preferred_ip_protocol: ip4
      packets: %d
      interval: %s
      reply_timeout: %s
      socket: %s
  warm:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      socket: %s
`, o.timeout, o.packets, o.interval, o.replyTimeout, o.socket, o.socket)
	if err := os.WriteFile(filepath.Join(dir, "bench.yml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if x.addr, err = freeAddr(); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "exporter.log"))
	if err != nil {
		return nil, err
	}
	x.cmd = exec.Command(o.exporter, "--config.file", filepath.Join(dir, "bench.yml"),
		"--web.listen-address", x.addr, "--probes.max-concurrent=0", "--log.level=warn")
	if o.pprofDir != "" {
		if x.pprof, err = freeAddr(); err != nil {
			return nil, err
		}
		x.cmd.Env = append(os.Environ(), "ISP_CHECKER_PPROF_ADDR="+x.pprof)
	}
	return x.start(logf)
}

// startFloor starts the net/http floor (floor.go) in place of an exporter.
func startFloor(o options, targets []string) (*exporter, error) {
	dir, err := os.MkdirTemp("", "icmpbench-")
	if err != nil {
		return nil, err
	}
	o.label = "net/http floor"
	x := &exporter{o: o, targets: targets, dir: dir, floor: true}
	if x.addr, err = freeAddr(); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "floor.log"))
	if err != nil {
		return nil, err
	}
	x.cmd = exec.Command(os.Args[0], "-floor-child", x.addr, "-floor-wait", (time.Duration(o.packets-1) * o.interval).String())
	if o.pprofDir != "" {
		if x.pprof, err = freeAddr(); err != nil {
			return nil, err
		}
		x.cmd.Args = append(x.cmd.Args, "-floor-pprof", x.pprof)
	}
	return x.start(logf)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

func (x *exporter) start(logf *os.File) (*exporter, error) {
	o := x.o
	x.cmd.Stdout, x.cmd.Stderr = logf, logf
	if o.exporterUser != "" {
		cred, err := credential(o.exporterUser)
		if err != nil {
			return nil, err
		}
		x.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := x.cmd.Start(); err != nil {
		return nil, err
	}
	x.client = &http.Client{Transport: &http.Transport{
		MaxIdleConns: 0, MaxIdleConnsPerHost: len(x.targets) + 10,
		DialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
	}}
	x.admin = &http.Client{Transport: &http.Transport{}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := x.admin.Get("http://" + x.addr + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			x.stop()
			return nil, fmt.Errorf("not ready: %w (log in %s)", err, logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	x.rssBase, _ = memOf(x.cmd.Process.Pid)
	if x.pprof != "" {
		x.ms0, _ = x.memStats()
	}
	// Warm up: one single-echo probe per target opens the connections
	// (Prometheus keeps them alive between scrapes).
	x.round("warm")
	x.dialed.Store(0)
	return x, nil
}

func credential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (x *exporter) stop() {
	if x.cmd != nil && x.cmd.Process != nil {
		_ = x.cmd.Process.Signal(syscall.SIGTERM)
		_ = x.cmd.Wait()
	}
	_ = os.RemoveAll(x.dir)
}

// scrapeAccept is Prometheus 3's Accept header for its default scrape
// protocols.
const scrapeAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"

// probeMetrics is what one /probe answer said.
type probeMetrics struct {
	success        bool
	sent, received int
	rttMean        float64
	err            error
}

func (x *exporter) probe(module, target string) probeMetrics {
	ctx, cancel := context.WithTimeout(context.Background(), x.o.timeout+30*time.Second)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		if !ci.Reused {
			x.dialed.Add(1)
		}
	}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+x.addr+"/probe?module="+module+"&target="+target, nil)
	// What Prometheus sends (the client adds Accept-Encoding: gzip, as
	// Prometheus does, and gunzips the answer).
	req.Header.Set("Accept", scrapeAccept)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(x.o.timeout.Seconds()+0.5, 'f', -1, 64))
	resp, err := x.client.Do(req)
	if err != nil {
		return probeMetrics{err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return probeMetrics{err: fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	var m probeMetrics
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "probe_success":
			m.success = v == 1
		case "probe_icmp_packets_sent":
			m.sent = int(v)
		case "probe_icmp_packets_received":
			m.received = int(v)
		case "probe_icmp_rtt_mean_seconds":
			m.rttMean = v
		}
	}
	return m
}

func (x *exporter) round(module string) []probeMetrics {
	out := make([]probeMetrics, len(x.targets))
	var wg sync.WaitGroup
	for i, t := range x.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = x.probe(module, t)
		}()
	}
	wg.Wait()
	return out
}

// engineCounters sums the exporter's isp_checker_icmp_* counters (and
// keeps its Parker's in x.parked, x.read).
func (x *exporter) engineCounters() (drops, late, foreign int64) {
	resp, err := x.admin.Get("http://" + x.addr + "/metrics")
	if err != nil {
		return -1, -1, -1
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "isp_checker_icmp_") && !strings.HasPrefix(line, "isp_checker_parked_") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		switch name {
		case "isp_checker_parked_probes_total":
			x.parked = int64(v)
		case "isp_checker_parked_requests_read_total":
			x.read = int64(v)
		case "isp_checker_icmp_receive_queue_drops_total":
			drops += int64(v)
			found = true
		case "isp_checker_icmp_echo_replies_late_total":
			late += int64(v)
		case "isp_checker_icmp_echo_replies_foreign_total":
			foreign += int64(v)
		}
	}
	if !found {
		return -1, -1, -1 // an exporter without the engine
	}
	return drops, late, foreign
}

func (x *exporter) run() row {
	pid := x.cmd.Process.Pid
	d0, l0, f0 := x.engineCounters()
	// What the connections cost, open and idle, before the round's probes:
	// the warm-up's peak, kept from the OS or not.
	if rss, _ := memOf(pid); rss > 0 {
		fmt.Printf("-- %s before the round: RSS %.1f MiB, %.1f kB per connection over the process before warm-up\n",
			x.o.label, float64(rss)/(1<<20), float64(rss-x.rssBase)/1024/float64(len(x.targets)))
	}
	resetPeak(pid)
	u0, s0 := userSysOf(pid)
	cpu0, start := cpuOf(pid), time.Now()
	snap := x.snapshotMidway()
	res := x.round("bench")
	r := row{tool: x.o.label, path: "/probe", socket: x.o.socket, probes: len(x.targets),
		wall: time.Since(start), cpu: cpuOf(pid) - cpu0, rssBase: x.rssBase}
	u1, s1 := userSysOf(pid)
	r.user, r.sys = u1-u0, s1-s0
	_, r.rssPeak = memOf(pid)
	snap()
	if x.floor {
		r.socket, r.planned = "-", len(x.targets)*x.o.packets
		for _, m := range res {
			if m.err != nil {
				r.errors = m.err.Error()
			}
		}
		return r
	}
	failed := 0
	for _, m := range res {
		if m.err != nil {
			failed++
			if r.errors == "" {
				r.errors = m.err.Error()
			}
			continue
		}
		r.sent += m.sent
		r.received += m.received
		r.rttSum += m.rttMean * float64(m.received)
		if m.received == 0 {
			r.dead++
		}
	}
	if failed > 0 {
		r.errors = fmt.Sprintf("%d requests failed: %s", failed, r.errors)
	}
	parked0, read0 := x.parked, x.read
	d1, l1, f1 := x.engineCounters()
	if d0 >= 0 {
		// Requests on kept-alive connections: those the Parker read itself,
		// the others net/http did.
		fmt.Printf("-- %s round: %d of %d requests on a new connection; %d parked, %d of them read by the Parker itself\n",
			x.o.label, x.dialed.Swap(0), len(x.targets), x.parked-parked0, x.read-read0)
	}
	if d0 < 0 || d1 < 0 {
		r.drops, r.late, r.frgn = -1, -1, -1
	} else {
		r.drops, r.late, r.frgn = d1-d0, l1-l0, f1-f0
	}
	return r
}
