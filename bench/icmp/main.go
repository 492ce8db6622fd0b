// Command icmp benchmarks the icmp prober at scale, side by side with fping
// and smokeping_prober on the same targets in the same run: N concurrent
// probes of P echo requests, I apart, to N distinct loopback targets
// (127.20.x.y), through /probe of a real exporter process (HTTP, metrics
// encoding: what Prometheus scraping N ping targets does) and in process
// (prober.Run). Each round runs every tool once, one after the other, so
// they see the same machine load; rounds alternate the order.
//
// Per tool and round it prints: echoes sent, lost, probes that lost
// everything ("dead" targets that in fact answered everything), the mean
// RTT reported, fping's mean RTT in the same round, CPU time per echo (the
// measured process only: the exporter, fping, smokeping_prober; for the
// in-process row the bench process), peak RSS and its growth per probe,
// and the engine's own counters (receive-queue drops, late and foreign
// replies) from the exporter's /metrics.
//
//	go run ./bench/icmp -probes 1000 -packets 10 -interval 10ms -exporter ./isp-checker
//
// bench/icmp/run.sh builds the exporter and runs both shapes of the issue
// (burst: 1,000 and 2,000 probes 10 ms apart; fleet: 10,000 probes 1 s
// apart) in both socket modes. Needs root (raw sockets; datagram sockets in
// a namespace whose ping_group_range admits the exporter's user).
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof" // the floor's profiles (-pprof)
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

type options struct {
	probes       int
	packets      int
	interval     time.Duration
	rounds       int
	socket       string
	replyTimeout time.Duration
	timeout      time.Duration
	paths        []string // probe, inprocess
	tools        []string // fping, smokeping
	exporter     string
	exporterUser string
	fping        string
	smokeping    string
	label        string
	pprofDir     string
	pprofSeconds int
}

func main() {
	var o options
	var paths, tools string
	flag.IntVar(&o.probes, "probes", 1000, "concurrent probes (distinct targets)")
	flag.IntVar(&o.packets, "packets", 10, "packets per probe")
	flag.DurationVar(&o.interval, "interval", 10*time.Millisecond, "interval between a probe's packets")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds (every tool runs once per round)")
	flag.StringVar(&o.socket, "socket", "privileged", "icmp socket of isp-checker: privileged or unprivileged")
	flag.DurationVar(&o.replyTimeout, "reply-timeout", time.Second, "reply_timeout of the probes (fping -t)")
	flag.DurationVar(&o.timeout, "timeout", 0, "probe timeout (default: the packets' time plus reply timeout plus 5s)")
	flag.StringVar(&paths, "paths", "probe,inprocess", "isp-checker paths: probe (a real exporter's /probe), inprocess (prober.Run), floor (a trivial net/http server whose handler waits as long as a probe: what net/http alone costs)")
	flag.StringVar(&tools, "tools", "fping,smokeping", "peers to run side by side: fping, smokeping")
	flag.StringVar(&o.exporter, "exporter", "", "isp-checker binary for the probe path; several as label=path,label=path (e.g. to compare two builds)")
	flag.StringVar(&o.exporterUser, "exporter-user", "", "run the exporter (and smokeping_prober) as this user, e.g. nobody (datagram sockets, no capabilities)")
	flag.StringVar(&o.fping, "fping", "fping", "fping binary")
	flag.StringVar(&o.smokeping, "smokeping", "prometheus-smokeping-prober", "smokeping_prober binary")
	flag.StringVar(&o.label, "label", "isp-checker", "name of the isp-checker rows")
	flag.StringVar(&o.pprofDir, "pprof", "", "save profiles of the exporter (a -tags benchpprof build) and the floor here, and print their runtime memory figures")
	flag.IntVar(&o.pprofSeconds, "pprof-seconds", 10, "length of the CPU profile taken from the first round on (-pprof)")
	floorAddr := flag.String("floor-child", "", "internal: serve the net/http floor on this address")
	floorWait := flag.Duration("floor-wait", 0, "internal: how long the floor's handler waits")
	floorPprof := flag.String("floor-pprof", "", "internal: the floor's profiling address")
	header := flag.Bool("header", true, "print the header")
	child := flag.Bool("inprocess-child", false, "internal: run the in-process rows for a parent")
	flag.Parse()
	o.paths, o.tools = split(paths), split(tools)
	if *floorAddr != "" {
		if *floorPprof != "" {
			go func() { log.Print(http.ListenAndServe(*floorPprof, nil)) }() //nolint:gosec // loopback, a bench
		}
		serveFloor(*floorAddr, *floorWait)
		return
	}
	if o.timeout == 0 {
		o.timeout = time.Duration(o.packets-1)*o.interval + o.replyTimeout + 5*time.Second
	}
	if slices.Contains(o.paths, "probe") && o.exporter == "" {
		log.Fatal("-exporter is needed for the probe path") //nolint:gocritic // nothing to clean up yet
	}
	if slices.Contains(o.paths, "probe") && o.packets < 2 {
		// A one-echo module renders blackbox's series alone: no packet counts to read.
		log.Fatal("-packets must be at least 2 for the probe path")
	}
	targets := loopbackTargets(o.probes)
	if *child {
		serveInProcess(o, targets)
		return
	}
	if *header {
		fmt.Printf("== icmp: %d concurrent probes × %d packets %v apart to distinct 127.20.x.y, %s sockets, %d rounds; %d cores, load %s\n",
			o.probes, o.packets, o.interval, o.socket, o.rounds, runtime.NumCPU(), loadAvg())
		printHeader()
	}

	runners, stop, err := setUp(o, targets)
	defer stop()
	if err != nil {
		log.Print(err)
		return
	}

	var waits []func()
	for _, r := range runners {
		if x, ok := r.(*exporter); ok {
			waits = append(waits, x.cpuProfile(o.pprofSeconds))
		}
	}
	totals := make([]row, len(runners))
	for round := range o.rounds {
		order := make([]int, len(runners))
		for i := range order {
			order[i] = i
		}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		rows := make([]row, len(runners))
		for _, i := range order {
			rows[i] = runners[i].run()
			time.Sleep(300 * time.Millisecond) // let stragglers and timers settle
		}
		ref := fpingMean(rows)
		for i := range rows {
			rows[i].fpingRTT = ref
			rows[i].print(fmt.Sprintf("round %d", round+1))
			totals[i].add(rows[i])
		}
	}
	if o.rounds > 1 {
		fmt.Println("-- all rounds")
		for i := range totals {
			totals[i].print("total")
		}
	}
	for _, w := range waits {
		w()
	}
	fmt.Printf("-- load after: %s\n", loadAvg())
}

// setUp starts every runner; stop stops those that were started.
func setUp(o options, targets []string) (runners []runner, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	for _, p := range o.paths {
		switch p {
		case "probe":
			for _, spec := range split(o.exporter) {
				xo := o
				if label, path, ok := strings.Cut(spec, "="); ok {
					xo.label, xo.exporter = label, path
				}
				x, err := startExporter(xo, targets)
				if err != nil {
					return nil, stop, fmt.Errorf("exporter %s: %w", xo.exporter, err)
				}
				stops = append(stops, x.stop)
				runners = append(runners, x)
			}
		case "floor":
			x, err := startFloor(o, targets)
			if err != nil {
				return nil, stop, fmt.Errorf("floor: %w", err)
			}
			stops = append(stops, x.stop)
			runners = append(runners, x)
		case "inprocess":
			c, err := startInProcessChild(o, os.Args[1:])
			if err != nil {
				return nil, stop, err
			}
			stops = append(stops, c.stop)
			runners = append(runners, c)
		default:
			return nil, stop, fmt.Errorf("unknown path %q", p)
		}
	}
	for _, t := range o.tools {
		switch t {
		case "fping":
			f, err := newFping(o, targets)
			if err != nil {
				fmt.Printf("%-26s %v\n", "fping", err)
				continue
			}
			stops = append(stops, func() { _ = os.RemoveAll(f.dir) })
			runners = append(runners, f)
		case "smokeping":
			s, err := newSmokeping(o, targets)
			if err != nil {
				fmt.Printf("%-26s %v\n", "smokeping_prober", err)
				continue
			}
			stops = append(stops, s.cleanup)
			runners = append(runners, s)
		default:
			return nil, stop, fmt.Errorf("unknown tool %q", t)
		}
	}
	return runners, stop, nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// loopbackTargets returns n distinct loopback addresses, 127.20.x.y.
func loopbackTargets(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("127.%d.%d.%d", 20+i/(250*256), (i/250)%256, 1+i%250)
	}
	return out
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// runner runs one round of one tool.
type runner interface{ run() row }

// row is what one tool measured in one round (or all of them).
type row struct {
	tool, path, socket string
	rounds             int
	probes             int
	sent, received     int
	dead               int     // probes with replies to none of their echoes
	rttSum             float64 // seconds, over received
	fpingRTT           float64 // fping's mean in the same round (seconds; 0: none)
	fpingRTTs          float64 // sum over rounds, for the total
	fpingRounds        int
	cpu                time.Duration
	user, sys          time.Duration // coarse (ticks), for the kernel's share
	wall               time.Duration
	rssBase, rssPeak   int64 // bytes
	planned            int   // echoes a probe of the floor stands for (no echoes sent)
	drops, late, frgn  int64 // engine counters (exporter only; -1: not known)
	errors             string
}

func fpingMean(rows []row) float64 {
	for _, r := range rows {
		if strings.HasPrefix(r.tool, "fping") && r.received > 0 {
			return r.rttSum / float64(r.received)
		}
	}
	return 0
}

func (r *row) add(x row) {
	r.tool, r.path, r.socket = x.tool, x.path, x.socket
	r.rounds++
	r.probes = x.probes
	r.sent += x.sent
	r.planned += x.planned
	r.received += x.received
	r.dead += x.dead
	r.rttSum += x.rttSum
	if x.fpingRTT > 0 {
		r.fpingRTTs += x.fpingRTT
		r.fpingRounds++
		r.fpingRTT = r.fpingRTTs / float64(r.fpingRounds)
	}
	r.cpu += x.cpu
	r.user += x.user
	r.sys += x.sys
	r.wall += x.wall
	if r.rssBase == 0 || x.rssBase < r.rssBase {
		r.rssBase = x.rssBase
	}
	r.rssPeak = max(r.rssPeak, x.rssPeak)
	if x.drops < 0 {
		r.drops, r.late, r.frgn = -1, -1, -1
	} else if r.drops >= 0 {
		r.drops += x.drops
		r.late += x.late
		r.frgn += x.frgn
	}
	if x.errors != "" {
		r.errors = x.errors
	}
}

func printHeader() {
	fmt.Printf("%-8s %-26s %-9s %-13s %8s %6s %5s %10s %10s %9s %5s %11s %9s %9s %8s %s\n",
		"round", "tool", "path", "socket", "echoes", "lost", "dead", "mean RTT", "fping RTT", "cpu/echo", "sys",
		"peak RSS", "kB/probe", "wall", "drops", "late/foreign")
}

func (r *row) print(round string) {
	mean := "-"
	if r.received > 0 {
		mean = fmtDur(r.rttSum / float64(r.received))
	}
	ref := "-"
	if r.fpingRTT > 0 {
		ref = fmtDur(r.fpingRTT)
	}
	perEcho := "-"
	if r.sent > 0 {
		perEcho = fmt.Sprintf("%.1fµs", float64(r.cpu.Nanoseconds())/1e3/float64(r.sent))
	} else if r.planned > 0 {
		perEcho = fmt.Sprintf("(%.1fµs)", float64(r.cpu.Nanoseconds())/1e3/float64(r.planned))
	}
	perProbe := "-"
	if r.probes > 0 && r.rssPeak > 0 {
		perProbe = fmt.Sprintf("%.1f", float64(r.rssPeak-r.rssBase)/1024/float64(r.probes))
	}
	counters := "-"
	drops := "-"
	if r.drops >= 0 {
		drops = fmt.Sprint(r.drops)
		counters = fmt.Sprintf("%d/%d", r.late, r.frgn)
	}
	wall := r.wall
	if r.rounds > 0 {
		wall /= time.Duration(r.rounds)
	}
	sys := "-"
	if r.user+r.sys > 0 {
		sys = fmt.Sprintf("%.0f%%", 100*float64(r.sys)/float64(r.user+r.sys))
	}
	fmt.Printf("%-8s %-26s %-9s %-13s %8d %6d %5d %10s %10s %9s %5s %11s %9s %9s %8s %s",
		round, r.tool, r.path, r.socket, r.sent, r.sent-r.received, r.dead, mean, ref, perEcho, sys,
		fmt.Sprintf("%.1f MiB", float64(r.rssPeak)/(1<<20)), perProbe, wall.Round(time.Millisecond), drops, counters)
	if r.errors != "" {
		fmt.Printf("  (%s)", r.errors)
	}
	fmt.Println()
}

func fmtDur(seconds float64) string {
	return fmt.Sprintf("%.3fms", seconds*1e3)
}
