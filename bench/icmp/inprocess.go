package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/icmpecho"
	"github.com/isp-checker/isp-checker/prober"
)

// inProcess runs the probes with prober.Run: the prober and the engine
// without HTTP and metrics encoding. It runs in a child process of its own
// (this program with -inprocess-child), so its CPU time and peak RSS are its
// own, not the HTTP client's of the /probe rows.
type inProcess struct {
	o       options
	targets []string
	m       config.Module
	rssBase int64
}

func newInProcess(o options, targets []string) *inProcess {
	m := config.NewModule("icmp")
	m.Timeout = o.timeout
	m.ICMP.IPProtocol = "ip4"
	m.ICMP.Packets, m.ICMP.Interval, m.ICMP.Socket, m.ICMP.ReplyTimeout = o.packets, o.interval, o.socket, o.replyTimeout
	p := &inProcess{o: o, targets: targets, m: m}
	p.rssBase, _ = memOf(os.Getpid())
	w := m
	w.ICMP.Packets = 1
	p.probeAll(w) // warm up (goroutine stacks, the first socket)
	return p
}

func (p *inProcess) probeAll(m config.Module) []*prober.ICMPResult {
	out := make([]*prober.ICMPResult, len(p.targets))
	ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	var wg sync.WaitGroup
	for i, t := range p.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], _ = prober.Run(ctx, prober.ProbeICMP, prober.Request{Target: t, Module: &m, Logger: logger}).(*prober.ICMPResult)
		}()
	}
	wg.Wait()
	return out
}

func (p *inProcess) run() row {
	pid := os.Getpid()
	resetPeak(pid)
	c0 := icmpecho.Stats(4, icmpecho.Mode(p.o.socket))
	u0, s0 := userSysOf(pid)
	cpu0, start := cpuOf(pid), time.Now()
	res := p.probeAll(p.m)
	r := row{tool: p.o.label, path: "inprocess", socket: p.o.socket, probes: len(p.targets),
		wall: time.Since(start), cpu: cpuOf(pid) - cpu0, rssBase: p.rssBase}
	u1, s1 := userSysOf(pid)
	r.user, r.sys = u1-u0, s1-s0
	_, r.rssPeak = memOf(pid)
	c1 := icmpecho.Stats(4, icmpecho.Mode(p.o.socket))
	r.drops, r.late, r.frgn = int64(c1.QueueDrops-c0.QueueDrops), int64(c1.Late-c0.Late), int64(c1.Foreign-c0.Foreign)
	for _, x := range res {
		if x == nil {
			r.errors = "a probe returned no ICMPResult"
			continue
		}
		r.sent += x.PacketsSent
		r.received += x.PacketsReceived
		r.rttSum += x.RTTMeanSeconds * float64(x.PacketsReceived)
		if x.PacketsReceived == 0 {
			r.dead++
			if r.errors == "" {
				r.errors = fmt.Sprintf("%s: %s", x.Target, x.Error)
			}
		}
	}
	return r
}

// inProcessChild is the parent's handle on the child that runs the
// in-process rows: it writes "run" lines to the child's stdin and reads one
// JSON row per line back.
type inProcessChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startInProcessChild(o options, args []string) (*inProcessChild, error) {
	cmd := exec.Command(os.Args[0], append([]string{"-inprocess-child"}, args...)...)
	cmd.Stderr = os.Stderr
	if o.exporterUser != "" {
		cred, err := credential(o.exporterUser)
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &inProcessChild{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if !c.out.Scan() { // "ready", once warmed up
		return nil, fmt.Errorf("in-process child did not start")
	}
	return c, nil
}

func (c *inProcessChild) run() row {
	if _, err := fmt.Fprintln(c.in, "run"); err != nil || !c.out.Scan() {
		return row{tool: "isp-checker", path: "inprocess", errors: fmt.Sprint("child: ", err, c.out.Err())}
	}
	var j jsonRow
	if err := json.Unmarshal(c.out.Bytes(), &j); err != nil {
		return row{tool: "isp-checker", path: "inprocess", errors: err.Error()}
	}
	return j.row()
}

func (c *inProcessChild) stop() {
	_ = c.in.Close()
	_ = c.cmd.Wait()
}

// serveInProcess is the child's side: warm up, say ready, run a round per
// line read.
func serveInProcess(o options, targets []string) {
	p := newInProcess(o, targets)
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		b, _ := json.Marshal(toJSON(p.run()))
		fmt.Println(string(b))
	}
}

// jsonRow carries a row from the child.
type jsonRow struct {
	Tool, Path, Socket, Errors string
	Probes, Sent, Received     int
	Dead                       int
	RTTSum                     float64
	CPU, Wall, User, Sys       time.Duration
	RSSBase, RSSPeak           int64
	Drops, Late, Foreign       int64
}

func toJSON(r row) jsonRow {
	return jsonRow{r.tool, r.path, r.socket, r.errors, r.probes, r.sent, r.received, r.dead, r.rttSum, r.cpu, r.wall, r.user, r.sys,
		r.rssBase, r.rssPeak, r.drops, r.late, r.frgn}
}

func (j jsonRow) row() row {
	return row{tool: j.Tool, path: j.Path, socket: j.Socket, errors: j.Errors, probes: j.Probes, sent: j.Sent,
		received: j.Received, dead: j.Dead, rttSum: j.RTTSum, cpu: j.CPU, wall: j.Wall, user: j.User, sys: j.Sys, rssBase: j.RSSBase,
		rssPeak: j.RSSPeak, drops: j.Drops, late: j.Late, frgn: j.Foreign}
}
