// Command icmp benchmarks the icmp prober against fping: N concurrent
// multi-packet probes to N distinct loopback targets (127.20.x.y), CPU time
// per echo (user+system, from getrusage), wall time, loss, and whether every
// probe got exactly its own replies; then fping with the same targets,
// count and per-target interval. It prints one line per tool.
//
//	go run ./bench/icmp -probes 300 -packets 10 -interval 10ms -rounds 3
//
// Run it as root (raw sockets), or in a network namespace whose
// net.ipv4.ping_group_range admits the user (unprivileged sockets);
// bench/icmp/run.sh does both.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
)

func main() {
	probes := flag.Int("probes", 300, "concurrent probes (distinct targets)")
	packets := flag.Int("packets", 10, "packets per probe")
	interval := flag.Duration("interval", 10*time.Millisecond, "interval between a probe's packets")
	rounds := flag.Int("rounds", 3, "rounds of concurrent probes")
	socket := flag.String("socket", "auto", "icmp socket: auto, privileged or unprivileged")
	fping := flag.String("fping", "fping", "fping binary (empty: skip)")
	replyTimeout := flag.Duration("reply-timeout", time.Second, "reply_timeout of the probes (so a lost reply does not hold a round until its timeout)")
	header := flag.Bool("header", true, "print the header line")
	verbose := flag.Bool("v", false, "log the probes' warnings to stderr")
	flag.Parse()

	targets := make([]string, *probes)
	for i := range targets {
		targets[i] = fmt.Sprintf("127.20.%d.%d", i/250, 1+i%250)
	}
	if *header {
		fmt.Printf("== icmp: %d concurrent probes × %d packets at %v to distinct 127.20.x.y, %d rounds, %d cores\n",
			*probes, *packets, *interval, *rounds, runtime.NumCPU())
		fmt.Printf("%-22s %-13s %8s %6s %11s %12s %10s  %s\n", "tool", "socket", "echoes", "lost", "wall/round", "cpu-µs/echo", "mean RTT", "check")
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	benchProber(targets, *packets, *interval, *replyTimeout, *rounds, *socket, logger)
	if *fping != "" {
		benchFping(*fping, targets, *packets, *interval, *rounds)
	}
}

func benchProber(targets []string, packets int, interval, replyTimeout time.Duration, rounds int, socket string, logger *slog.Logger) {
	m := config.Module{Prober: "icmp", Timeout: 30 * time.Second, ICMP: config.DefaultICMPProbe()}
	m.ICMP.Packets, m.ICMP.Interval, m.ICMP.Socket, m.ICMP.ReplyTimeout = packets, interval, socket, replyTimeout
	run := func(targets []string) []*prober.ICMPResult {
		out := make([]*prober.ICMPResult, len(targets))
		ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
		defer cancel()
		var wg sync.WaitGroup
		for i, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i], _ = prober.Run(ctx, prober.Request{Target: t, Module: m, Logger: logger.With("target", t)}).(*prober.ICMPResult)
			}()
		}
		wg.Wait()
		return out
	}
	run(targets[:min(10, len(targets))]) // warm up
	time.Sleep(200 * time.Millisecond)
	goroutines, fds := runtime.NumGoroutine(), openFDs()

	var sent, received, dups, foreign, failed, idClash int
	var rttSum float64
	var mode string
	cpu0, start := cpuTime(syscall.RUSAGE_SELF), time.Now()
	for range rounds {
		ids := map[int]bool{}
		for _, r := range run(targets) {
			if r == nil {
				failed++
				continue
			}
			mode = r.SocketMode
			sent += r.PacketsSent
			received += r.PacketsReceived
			dups += r.Duplicates
			foreign += r.ForeignReplies
			rttSum += r.RTTMeanSeconds * float64(r.PacketsReceived)
			if !r.Success {
				failed++
				if failed <= 3 {
					log.Printf("probe %s failed: %s", r.Target, r.Error)
				}
			}
			if r.EchoID != 0 {
				if ids[r.EchoID] {
					idClash++
				}
				ids[r.EchoID] = true
			}
		}
	}
	wall := time.Since(start)
	cpu := cpuTime(syscall.RUSAGE_SELF) - cpu0

	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && (runtime.NumGoroutine() > goroutines || openFDs() > fds) {
		time.Sleep(20 * time.Millisecond)
	}
	check := fmt.Sprintf("own replies only: %v (dup %d, foreign %d, id clashes %d, failed %d); leaked goroutines %d, fds %d",
		dups == 0 && foreign == 0 && idClash == 0 && received <= sent, dups, foreign, idClash, failed,
		runtime.NumGoroutine()-goroutines, openFDs()-fds)
	fmt.Printf("%-22s %-13s %8d %6d %11s %12.1f %10s  %s\n", "isp-checker (pro-bing)", mode, sent, sent-received,
		(wall / time.Duration(rounds)).Round(time.Millisecond), float64(cpu.Microseconds())/float64(max(sent, 1)),
		meanRTT(rttSum, received), check)
}

// benchFping runs fping once per round with the same targets, count and
// per-target period; -i 0 lets it send as fast as it can between targets.
func benchFping(bin string, targets []string, packets int, interval time.Duration, rounds int) {
	path, err := exec.LookPath(bin)
	if err != nil {
		fmt.Printf("%-22s not installed (apt-get install fping)\n", "fping")
		return
	}
	version, _ := exec.Command(path, "-v").CombinedOutput()
	name := "fping " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(version)), path+": Version"))
	if f := strings.Fields(string(version)); len(f) > 0 {
		name = "fping " + f[len(f)-1]
	}
	var sent, received int
	var rttSum float64
	var cpu, wall time.Duration
	for range rounds {
		args := []string{"-q", "-C", strconv.Itoa(packets), "-p", strconv.Itoa(int(interval.Milliseconds())),
			"-i", "0", "-t", "1000", "-r", "0"}
		cmd := exec.Command(path, append(args, targets...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		_ = cmd.Run() // exits 1 when a target lost packets
		wall += time.Since(start)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			_, rtts, ok := strings.Cut(sc.Text(), " : ")
			if !ok {
				continue
			}
			for _, f := range strings.Fields(rtts) {
				sent++
				if ms, err := strconv.ParseFloat(f, 64); err == nil {
					received++
					rttSum += ms / 1000
				}
			}
		}
	}
	fmt.Printf("%-22s %-13s %8d %6d %11s %12.1f %10s  %s\n", name, "raw (1 socket)", sent, sent-received,
		(wall / time.Duration(rounds)).Round(time.Millisecond), float64(cpu.Microseconds())/float64(max(sent, 1)),
		meanRTT(rttSum, received), "child getrusage")
}

func meanRTT(sum float64, n int) string {
	if n == 0 {
		return "-"
	}
	return (time.Duration(sum / float64(n) * float64(time.Second))).Round(time.Microsecond).String()
}

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func openFDs() int {
	d, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(d)
}
