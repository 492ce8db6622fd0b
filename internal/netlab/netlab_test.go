package netlab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/netlab"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// needTool skips (or, with CI=true, fails) when a ground-truth tool is missing.
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		msg := fmt.Sprintf("%s not installed (apt-get install %s)", tool, pkg)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func run(t *testing.T, n *netlab.Node, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := n.Run(ctx, name, args...) // ping exits 1 on any loss; callers parse
	return out
}

type pingStats struct {
	sent, received int
	min, avg, max  float64   // ms
	rtts           []float64 // ms, per reply
}

// median RTT in ms: robust against a few replies delayed by a busy machine.
func (s pingStats) median() float64 {
	if len(s.rtts) == 0 {
		return math.NaN()
	}
	r := slices.Sorted(slices.Values(s.rtts))
	return r[len(r)/2]
}

var (
	rePingCount = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	rePingRTT   = regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)/`)
	rePingTime  = regexp.MustCompile(`time=([\d.]+) ms`)
)

// ping runs iputils ping from the client (the test process's namespace).
func ping(t *testing.T, p *netlab.Path, args ...string) (pingStats, string) {
	t.Helper()
	out := run(t, p.Client, "ping", append([]string{"-n"}, args...)...)
	var s pingStats
	m := rePingCount.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("cannot parse ping output:\n%s", out)
	}
	s.sent, _ = strconv.Atoi(m[1])
	s.received, _ = strconv.Atoi(m[2])
	for _, m := range rePingTime.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		s.rtts = append(s.rtts, v)
	}
	if m := rePingRTT.FindStringSubmatch(out); m != nil {
		s.min, _ = strconv.ParseFloat(m[1], 64)
		s.avg, _ = strconv.ParseFloat(m[2], 64)
		s.max, _ = strconv.ParseFloat(m[3], 64)
	}
	return s, out
}

var reHop = regexp.MustCompile(`(?m)^\s*(\d+)\s+(\S+)`)

// traceroute returns the address (or "*") of each hop, in order.
func traceroute(t *testing.T, p *netlab.Path, args ...string) []string {
	t.Helper()
	out := run(t, p.Client, "traceroute", append([]string{"-n", "-q", "1", "-w", "1", "-m", "10"}, args...)...)
	var hops []string
	for _, m := range reHop.FindAllStringSubmatch(out, -1) {
		hops = append(hops, m[2])
	}
	if len(hops) == 0 {
		t.Fatalf("cannot parse traceroute output:\n%s", out)
	}
	return hops
}

func hopAddrs(hops []netlab.Hop, v6 bool) []string {
	var s []string
	for _, h := range hops {
		if v6 {
			s = append(s, h.IPv6.String())
		} else {
			s = append(s, h.IPv4.String())
		}
	}
	return s
}

// A chain of three routers (gw, isp1, isp2) and a host: traceroute sees four
// hops with exactly the lab's addresses, over IPv4 and IPv6; a silent router
// shows up as "*"; and the ping TTL trick agrees.
func TestPathHopsTraceroute(t *testing.T) {
	needTool(t, "traceroute", "traceroute")
	needTool(t, "ping", "iputils-ping")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 2, ISPHosts: []string{"resolver"}})
	remote := p.Host("remote")
	want := p.Hops(remote)
	if len(want) != 4 {
		t.Fatalf("Hops = %v, want 4 hops", want)
	}
	// The ISP's resolver hangs off isp1: gw, isp1, resolver.
	resolver := p.Host("resolver")
	if got, w := traceroute(t, p, resolver.IPv6().String()), hopAddrs(p.Hops(resolver), true); len(w) != 3 || !slices.Equal(got, w) {
		t.Errorf("traceroute to the ISP resolver: hops %v, want %v", got, w)
	}
	for _, v6 := range []bool{false, true} {
		dst, args := remote.IPv4().String(), []string{}
		if v6 {
			dst, args = remote.IPv6().String(), []string{"-6"}
		}
		got := traceroute(t, p, append(args, dst)...)
		if w := hopAddrs(want, v6); !slices.Equal(got, w) {
			t.Errorf("traceroute %s: hops %v, want %v", dst, got, w)
		}
	}

	// TTL trick: TTL 3 expires at the third router, TTL 4 reaches the host.
	_, out := ping(t, p, "-c", "1", "-W", "1", "-t", "3", remote.IPv4().String())
	if !strings.Contains(out, "From "+want[2].IPv4.String()) || !strings.Contains(out, "Time to live exceeded") {
		t.Errorf("ping -t 3: want time exceeded from %s, got:\n%s", want[2].IPv4, out)
	}
	if s, out := ping(t, p, "-c", "1", "-W", "1", "-t", "4", remote.IPv4().String()); s.received != 1 {
		t.Errorf("ping -t 4 did not reach the host:\n%s", out)
	}

	// A silent isp1 hides from traceroute in both families.
	rule := p.ISP[0].Silent()
	for _, v6 := range []bool{false, true} {
		dst, args := remote.IPv4().String(), []string{}
		if v6 {
			dst, args = remote.IPv6().String(), []string{"-6"}
		}
		w := hopAddrs(want, v6)
		w[1] = "*"
		if got := traceroute(t, p, append(args, dst)...); !slices.Equal(got, w) {
			t.Errorf("traceroute %s with silent isp1: hops %v, want %v", dst, got, w)
		}
	}
	if err := rule.Remove(); err != nil {
		t.Fatal(err)
	}
	if got, w := traceroute(t, p, remote.IPv4().String()), hopAddrs(want, false); !slices.Equal(got, w) {
		t.Errorf("traceroute after Remove: hops %v, want %v", got, w)
	}
}

// Loss injected with nftables numgen at 25 % on the access link (egress from
// the gateway, so only echo requests are dropped) is measured by ping within
// 4 binomial standard deviations.
func TestLoss(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	remote := p.Host("remote").IPv4().String()
	const n, ratio = 200, 0.25
	rule := p.Uplinks[0].A.Loss(ratio)
	s, out := ping(t, p, "-c", strconv.Itoa(n), "-i", "0.01", "-W", "0.3", remote)
	lost := s.sent - s.received
	mean, sigma := n*ratio, math.Sqrt(n*ratio*(1-ratio))
	t.Logf("loss %.2f injected: %d/%d lost (%.1f%%), expected %.0f ± %.1f (4σ = %.1f)",
		ratio, lost, s.sent, 100*float64(lost)/float64(s.sent), mean, sigma, 4*sigma)
	if s.sent != n || math.Abs(float64(lost)-mean) > 4*sigma {
		t.Errorf("lost %d of %d, want %.0f ± %.1f:\n%s", lost, s.sent, mean, 4*sigma, out)
	}
	// IPv6 is subject to the same rule.
	s6, _ := ping(t, p, "-6", "-c", strconv.Itoa(n), "-i", "0.01", "-W", "0.3", p.Host("remote").IPv6().String())
	lost6 := s6.sent - s6.received
	t.Logf("IPv6: %d/%d lost", lost6, s6.sent)
	if math.Abs(float64(lost6)-mean) > 4*sigma {
		t.Errorf("IPv6: lost %d of %d, want %.0f ± %.1f", lost6, s6.sent, mean, 4*sigma)
	}
	if err := rule.Remove(); err != nil {
		t.Fatal(err)
	}
	if s, out := ping(t, p, "-c", "50", "-i", "0.01", "-W", "1", remote); s.received != 50 {
		t.Errorf("loss after Remove:\n%s", out)
	}
	// Total loss (nft has no "< modulus" rule: it is a plain drop).
	all := p.Uplinks[0].A.Loss(1)
	if s, out := ping(t, p, "-c", "5", "-i", "0.01", "-W", "0.3", remote); s.received != 0 {
		t.Errorf("loss 1 let replies through:\n%s", out)
	}
	if err := all.Remove(); err != nil {
		t.Fatal(err)
	}
}

// A relay link's delay shows up in ping's RTT (ICMP) and in TCP connect time,
// and can be changed on the fly, asymmetrically. The relay never delivers
// early, so the minimum RTT is at least the injected one; the median may
// exceed it by at most tol.
func TestDelay(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	const oneWay = 25 * time.Millisecond // RTT +50 ms
	const tol = 5.0                      // ms of relay, scheduling and stack overhead allowed above the injected RTT
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1, Access: netlab.LinkOpts{Delay: oneWay}})
	remote := p.Host("remote")
	check := func(name string, wantMs float64, args ...string) {
		t.Helper()
		s, out := ping(t, p, append([]string{"-c", "20", "-i", "0.02", "-W", "2"}, args...)...)
		t.Logf("%s: want RTT %.0f ms, ping min/median/max = %.2f/%.2f/%.2f ms", name, wantMs, s.min, s.median(), s.max)
		if s.received != s.sent || s.min < wantMs || s.median() > wantMs+tol {
			t.Errorf("%s: RTT min/median %.2f/%.2f ms, want within [%.0f, %.0f]:\n%s", name, s.min, s.median(), wantMs, wantMs+tol, out)
		}
	}
	check("IPv4", 50, remote.IPv4().String())
	check("IPv6", 50, "-6", remote.IPv6().String())

	// TCP: a handshake costs one RTT.
	l := remote.Listen("tcp", ":7")
	testserver.Serve(t, l, time.Second, func(net.Conn) {}) // a handshake, then close
	// The fastest of a few connects: one sample on a loaded machine carries
	// the scheduler's delay too (71.6 ms seen at load 5).
	rtt := time.Hour
	for range 5 {
		start := time.Now()
		c, err := net.DialTimeout("tcp", net.JoinHostPort(remote.IPv4().String(), "7"), 2*time.Second)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		rtt = min(rtt, took)
	}
	t.Logf("TCP connect (fastest of 5): %v", rtt)
	if ms := float64(rtt.Microseconds()) / 1000; ms < 50 || ms > 50+4*tol {
		t.Errorf("TCP connect took %v at best, want 50–%.0f ms", rtt, 50+4*tol)
	}

	p.Uplinks[0].SetDelays(40*time.Millisecond, 0)
	check("IPv4 after SetDelays(40ms, 0)", 40, remote.IPv4().String())

	// Jitter: 10 ms one-way in each direction spreads the RTT over
	// [50, 70) ms (the sum of two uniform draws), in order.
	p.Uplinks[0].SetDelay(oneWay)
	p.Uplinks[0].SetJitter(10 * time.Millisecond)
	s, out := ping(t, p, "-c", "20", "-i", "0.02", "-W", "2", remote.IPv4().String())
	t.Logf("jitter 10 ms: ping min/median/max = %.2f/%.2f/%.2f ms", s.min, s.median(), s.max)
	if s.received != s.sent || s.min < 50 || s.max > 70+tol || s.max-s.min < 5 {
		t.Errorf("with jitter: RTT min/max %.2f/%.2f ms, want within [50, %.0f] and spread ≥ 5 ms:\n%s", s.min, s.max, 70+tol, out)
	}
}

// MTU 1400 on the middle link: 1372-byte pings (1400-byte packets) pass with
// DF, 1373 bytes get "frag needed (mtu = 1400)" from isp1 — unless isp1
// black-holes PMTU, in which case they vanish silently. IPv6 gets
// packet-too-big.
func TestMTU(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 2, Core: netlab.LinkOpts{MTU: 1400}})
	remote := p.Host("remote")
	v4, v6 := remote.IPv4().String(), remote.IPv6().String()
	isp1 := p.Hops(remote)[1].IPv4.String()

	if s, out := ping(t, p, "-c", "1", "-W", "1", "-M", "do", "-s", "1372", v4); s.received != 1 {
		t.Errorf("1400-byte packet did not pass:\n%s", out)
	}
	// Black hole first (the client has not learnt the PMTU yet).
	rule := p.ISP[0].BlackholePMTU()
	s, out := ping(t, p, "-c", "2", "-W", "1", "-M", "do", "-s", "1373", v4)
	if s.received != 0 || strings.Contains(out, "mtu") {
		t.Errorf("black hole: want silent loss, got:\n%s", out)
	}
	rule.Remove()
	s, out = ping(t, p, "-c", "1", "-W", "1", "-M", "do", "-s", "1373", v4)
	if s.received != 0 || !strings.Contains(out, "From "+isp1) || !strings.Contains(out, "mtu = 1400") {
		t.Errorf("1401-byte packet: want frag needed (mtu = 1400) from %s, got:\n%s", isp1, out)
	}
	if s, out := ping(t, p, "-6", "-c", "1", "-W", "1", "-M", "do", "-s", "1352", v6); s.received != 1 {
		t.Errorf("IPv6 1400-byte packet did not pass:\n%s", out)
	}
	s, out = ping(t, p, "-6", "-c", "1", "-W", "1", "-M", "do", "-s", "1353", v6)
	if s.received != 0 || !strings.Contains(out, "mtu=1400") {
		t.Errorf("IPv6 1401-byte packet: want packet too big (mtu=1400), got:\n%s", out)
	}
}

// A tbf rate limit on the access link caps a TCP upload measured in Go, and
// its queue (latency 100 ms) shows up as bufferbloat in ping under load.
func TestRateLimit(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	const rate = 20e6 // bit/s
	const queue = 100 * time.Millisecond
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	remote := p.Host("remote")
	p.Uplinks[0].A.RateLimit(netlab.TBF{Rate: rate, Latency: queue})

	idle, _ := ping(t, p, "-c", "5", "-i", "0.05", remote.IPv4().String())

	// measure runs one saturating cubic flow for 2.5 s through the tbf,
	// with pings after the first second.
	measure := func(port string) (mbit float64, load pingStats) {
		l := remote.Listen("tcp", ":"+port)
		type sample struct {
			at time.Time
			n  int64
		}
		got := make(chan []sample, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer c.Close()
			// A fixed large receive window, so that the sender, not receive
			// autotuning (which sizes by the sub-millisecond idle RTT), decides
			// how full the tbf queue gets.
			c.(*net.TCPConn).SetReadBuffer(4 << 20)
			var samples []sample
			var total int64
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				total += int64(n)
				samples = append(samples, sample{time.Now(), total})
				if err != nil {
					got <- samples
					return
				}
			}
		}()
		// Cubic, not the host's default (often BBR, which avoids filling queues).
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, "cubic")
			})
			return errors.Join(err, serr)
		}}
		c, err := d.Dial("tcp", net.JoinHostPort(remote.IPv4().String(), port))
		if err != nil {
			t.Fatal(err)
		}
		stop := time.Now().Add(2500 * time.Millisecond)
		loaded := make(chan pingStats, 1)
		go func() {
			time.Sleep(time.Second) // let TCP fill the queue
			s, _ := ping(t, p, "-c", "10", "-i", "0.1", "-W", "2", remote.IPv4().String())
			loaded <- s
		}()
		buf := make([]byte, 64<<10)
		for time.Now().Before(stop) {
			if _, err := c.Write(buf); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		samples := <-got
		// Throughput over the steady state: from 0.5 s to the last byte.
		var a, b sample
		for _, s := range samples {
			if a.at.IsZero() && s.at.Sub(samples[0].at) >= 500*time.Millisecond {
				a = s
			}
			b = s
		}
		mbit = float64(b.n-a.n) * 8 / b.at.Sub(a.at).Seconds()
		load = <-loaded
		return mbit, load
	}
	// The flow's sender and receiver are this process: on a machine busy
	// with other tests (19 % of the rate was seen beside a benchmark) they
	// can fall short of the link, which says nothing of the tbf. A flow
	// below the bound is run again, three times at most; a tbf that is
	// wrong stays wrong.
	var mbit float64
	var load pingStats
	for try := range 3 {
		mbit, load = measure(strconv.Itoa(9000 + try))
		if mbit >= 0.85*rate {
			break
		}
		t.Logf("flow %d: %.2f Mbit/s, below 85%% of the rate; again", try+1, mbit/1e6)
	}
	t.Logf("tbf %.0f Mbit/s: TCP goodput %.2f Mbit/s (%.0f%% of rate); RTT idle %.2f ms, under load avg %.1f ms (max %.1f, tbf latency %v)",
		rate/1e6, mbit/1e6, 100*mbit/rate, idle.avg, load.avg, load.max, queue)
	// Goodput excludes Ethernet/IP/TCP headers (≈ 4.5 % at MTU 1500).
	if mbit < 0.85*rate || mbit > 1.02*rate {
		t.Errorf("goodput %.2f Mbit/s, want 85–102%% of %.0f Mbit/s", mbit/1e6, rate/1e6)
	}
	if idle.avg > 5 {
		t.Errorf("idle RTT %.2f ms, want < 5 ms", idle.avg)
	}
	// The queue bounds the added delay at the tbf latency (+ a 10 %
	// margin for the burst, and 25 ms for the forwarding softirqs of a
	// busy host: 117 ms was seen with four test packages at once); a
	// saturating cubic flow keeps it well above idle (how full depends on
	// where in its sawtooth the pings land, so only a quarter of the
	// latency is required). A queue twice as deep would show 200 ms.
	if hi := 1.1*ms(queue) + 25; load.avg < 0.25*ms(queue) || load.max > hi {
		t.Errorf("RTT under load %.1f ms (max %.1f), want avg ≥ %.0f and max ≤ %.0f ms", load.avg, load.max, 0.25*ms(queue), hi)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Services started from Go inside a namespace, and the ways to kill them.
func TestServices(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1, Hosts: []string{"www", "dns"}})
	www, dns := p.Host("www"), p.Host("dns")

	l := www.Listen("tcp", ":80")
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from www") }))
	url := "http://" + net.JoinHostPort(www.IPv4().String(), "80") + "/"
	url6 := "http://" + net.JoinHostPort(www.IPv6().String(), "80") + "/"
	client := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(u string) error {
		resp, err := client.Get(u)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "hello from www" {
			return fmt.Errorf("body %q", b)
		}
		return nil
	}
	for _, u := range []string{url, url6} {
		if err := get(u); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}

	// UDP echo server (stands in for a DNS server) via ListenPacket.
	pc := dns.ListenPacket("udp", ":53")
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	udp := func() error {
		c, err := net.Dial("udp", net.JoinHostPort(dns.IPv4().String(), "53"))
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Write([]byte("q")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 10))
		return err
	}
	if err := udp(); err != nil {
		t.Fatalf("UDP echo: %v", err)
	}

	// Reject: refused at once. Block: times out.
	r := www.Reject("tcp", 80)
	if err := get(url); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("with Reject: err %v, want connection refused", err)
	}
	r.Remove()
	r = www.Block("tcp", 80)
	if err := get(url); err == nil || !isTimeout(err) {
		t.Errorf("with Block: err %v, want timeout", err)
	}
	r.Remove()
	r = dns.Reject("udp", 53)
	if err := udp(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("UDP with Reject: err %v, want connection refused", err)
	}
	r.Remove()
	if err := get(url); err != nil {
		t.Errorf("after Remove: %v", err)
	}

	// DropICMPEcho on the ISP router: ping dies, TCP still works.
	r = p.ISP[0].DropICMPEcho()
	if s, out := ping(t, p, "-c", "2", "-i", "0.2", "-W", "1", www.IPv4().String()); s.received != 0 {
		t.Errorf("ping through DropICMPEcho router answered:\n%s", out)
	}
	if s, _ := ping(t, p, "-6", "-c", "1", "-W", "1", www.IPv6().String()); s.received != 0 {
		t.Errorf("IPv6 ping through DropICMPEcho router answered")
	}
	if err := get(url); err != nil {
		t.Errorf("HTTP with ICMP echo dropped: %v", err)
	}
	r.Remove()

	// Closing the listener kills the service: connection refused.
	l.Close()
	if err := get(url); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after Close: err %v, want connection refused", err)
	}

	// Do: code runs inside the namespace.
	var inside []string
	if err := www.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			inside = append(inside, i.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inside, []string{"lo", "to-isp1"}) {
		t.Errorf("interfaces seen by Do in www: %v", inside)
	}

	// Start/Kill: a process inside a namespace.
	proc := dns.Start("sh", "-c", "ip -br addr show dev to-isp1; exec sleep 60")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !strings.Contains(proc.Output(), dns.IPv4().String()); {
		time.Sleep(20 * time.Millisecond)
	}
	proc.Kill()
	if err := proc.Wait(); err == nil || !strings.Contains(proc.Output(), dns.IPv4().String()) {
		t.Errorf("proc: wait %v, output %q", err, proc.Output())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A cut access link isolates the ISP while the LAN still works; Up and
// AutoRoute restore the path. Fault localisation tests build on this.
func TestLinkDown(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	remote, gw := p.Host("remote").IPv4().String(), p.Gateway.IPv4().String()
	p.Uplinks[0].Down()
	if s, out := ping(t, p, "-c", "1", "-W", "1", gw); s.received != 1 {
		t.Errorf("gateway unreachable with access link down:\n%s", out)
	}
	if s, out := ping(t, p, "-c", "1", "-W", "1", remote); s.received != 0 || !strings.Contains(out, "Unreachable") {
		t.Errorf("remote: want unreachable from the gateway, got:\n%s", out)
	}
	p.Uplinks[0].Up()
	p.AutoRoute()
	if s, out := ping(t, p, "-c", "1", "-W", "1", remote); s.received != 1 {
		t.Errorf("remote unreachable after Up:\n%s", out)
	}
}

// A host whose own link is down, or that lost its routes, gets "network is
// unreachable" at once, as a real host does (the lab's throw routes), one
// whose routes refuse gets their errno, and
// nothing falls back to the host's default route: the client guard never
// sees a packet. Restoring brings everything back.
func TestClientUnreachable(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	remote, gw := p.Host("remote").IPv4(), p.Gateway.EndTo(p.Client).IPv4
	send := func(dst netip.Addr) error {
		c, err := net.Dial("udp4", netip.AddrPortFrom(dst, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}
	guard := func() string {
		out, _ := exec.Command("nft", "list", "chain", "inet", fmt.Sprintf("netlab_%d", p.Slot()), "guard").CombinedOutput()
		return string(out)
	}
	check := func(what string, dst netip.Addr, want error) {
		t.Helper()
		if err := send(dst); !errors.Is(err, want) { // errors.Is(nil, nil) holds
			t.Errorf("%s: sending to %s: %v, want %v", what, dst, err, want)
		}
	}

	restore := p.RemoveClientRoutes()
	check("routes removed", gw, nil)
	check("routes removed", remote, syscall.ENETUNREACH)
	restore()
	check("routes restored", remote, nil)

	for kind, want := range map[string]error{"unreachable": syscall.EHOSTUNREACH, "prohibit": syscall.EACCES, "blackhole": syscall.EINVAL} {
		restore := p.RefuseClientRoutes(kind)
		check(kind+" routes", gw, nil)
		check(kind+" routes", remote, want)
		restore()
		check(kind+" routes restored", remote, nil)
	}

	p.LAN.On(p.Client).Down()
	check("link down", gw, syscall.ENETUNREACH)
	check("link down", remote, syscall.ENETUNREACH)
	p.LAN.On(p.Client).Up()
	check("link up", remote, nil)
	if s, out := ping(t, p, "-c", "1", "-W", "1", remote.String()); s.received != 1 {
		t.Errorf("remote unreachable after Up:\n%s", out)
	}
	if g := guard(); regexp.MustCompile(`packets [1-9]\d* bytes \d+ drop comment "netlab client guard"`).MatchString(g) {
		t.Errorf("a packet reached the client guard (it would have left by the default route):\n%s", g)
	}
}

// A hand-built topology: two paths to the host (gw–a–h and gw–b1–b2–h);
// AutoRoute takes the shorter one.
func TestAutoRouteShortestPath(t *testing.T) {
	needTool(t, "traceroute", "traceroute")
	lab := netlab.New(t)
	gw, a, b1, b2, h := lab.Node("gw"), lab.Node("a"), lab.Node("b1"), lab.Node("b2"), lab.Node("h")
	lab.Attach(gw, netlab.LinkOpts{})
	lab.Link(gw, b1, netlab.LinkOpts{})
	lab.Link(b1, b2, netlab.LinkOpts{})
	hb := lab.Link(b2, h, netlab.LinkOpts{Edge: true})
	lab.Link(gw, a, netlab.LinkOpts{})
	lab.Link(a, h, netlab.LinkOpts{Edge: true})
	lab.AutoRoute()
	p := &netlab.Path{Lab: lab, Client: lab.Client()}
	// h's address on the b2–h link is still reached through a.
	got := traceroute(t, p, hb.B.IPv4.String())
	want := []string{gw.EndTo(lab.Client()).IPv4.String(), a.EndTo(gw).IPv4.String(), hb.B.IPv4.String()}
	if !slices.Equal(got, want) {
		t.Errorf("traceroute: %v, want %v (via a)", got, want)
	}
	// b2 itself is reached through b1.
	got = traceroute(t, p, hb.A.IPv4.String())
	want = []string{gw.EndTo(lab.Client()).IPv4.String(), b1.EndTo(gw).IPv4.String(), hb.A.IPv4.String()}
	if !slices.Equal(got, want) {
		t.Errorf("traceroute: %v, want %v (via b1)", got, want)
	}
}

// Two labs alive at the same time (in one process here; across test
// binaries the same flock applies) get distinct slots and prefixes, and
// both work concurrently.
func TestConcurrentLabs(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	p1 := netlab.NewPath(t, netlab.PathOpts{})
	p2 := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	if p1.Slot() == p2.Slot() {
		t.Fatalf("both labs got slot %d", p1.Slot())
	}
	for _, a := range p1.Prefixes() {
		for _, b := range p2.Prefixes() {
			if a.Overlaps(b) {
				t.Errorf("prefixes overlap: %s and %s", a, b)
			}
		}
	}
	var wg sync.WaitGroup
	outs := make([]pingStats, 2)
	for i, p := range []*netlab.Path{p1, p2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := p.Client.Command(context.Background(), "ping", "-n", "-c", "20", "-i", "0.01", "-W", "1", p.Host("remote").IPv4().String())
			out, _ := cmd.CombinedOutput()
			if m := rePingCount.FindStringSubmatch(string(out)); m != nil {
				outs[i].sent, _ = strconv.Atoi(m[1])
				outs[i].received, _ = strconv.Atoi(m[2])
			}
		}()
	}
	wg.Wait()
	for i, s := range outs {
		if s.sent != 20 || s.received != 20 {
			t.Errorf("lab %d: %d/%d answered", i+1, s.received, s.sent)
		}
	}
}

// Teardown removes namespaces, host interfaces and host routes.
func TestCleanup(t *testing.T) {
	var nsNames []string
	var hostIf string
	var prefixes []netip.Prefix
	var table string
	t.Run("lab", func(t *testing.T) {
		p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1, Access: netlab.LinkOpts{Delay: time.Millisecond}})
		p.LAN.B.Loss(0.01) // creates the host nft table
		for _, n := range p.Nodes() {
			nsNames = append(nsNames, n.Namespace())
		}
		hostIf = p.LAN.B.Name
		prefixes = p.Prefixes()
		table = fmt.Sprintf("netlab_%d", p.Slot())
	})
	if len(nsNames) == 0 {
		t.Skip("inner lab skipped")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, n := range nsNames {
		if strings.Contains(string(out), n) {
			t.Errorf("namespace %s left behind", n)
		}
	}
	if _, err := net.InterfaceByName(hostIf); err == nil {
		t.Errorf("host interface %s left behind", hostIf)
	}
	routes, _ := exec.Command("ip", "-4", "route").Output()
	routes6, _ := exec.Command("ip", "-6", "route").Output()
	for _, pf := range prefixes {
		if strings.Contains(string(routes)+string(routes6), pf.String()) {
			t.Errorf("host route %s left behind", pf)
		}
	}
	// (A lab in another test binary may have reused the slot by now; then
	// the table is legitimately there again.)
	if err := exec.Command("nft", "list", "table", "inet", table).Run(); err == nil {
		t.Logf("nft table %s exists (slot reused by another lab?)", table)
	}
}

// Without root, New skips — or fails when CI=true. Checked by re-running
// this test binary as nobody.
func TestNewWithoutRoot(t *testing.T) {
	if os.Getenv("NETLAB_CHILD") == "1" {
		netlab.New(t)
		t.Fatal("New returned without root")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	dir, err := os.MkdirTemp("", "netlab-child")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "netlab.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(bin, "-test.run=^TestNewWithoutRoot$", "-test.v")
		cmd.Dir = dir
		cmd.Env = []string{"NETLAB_CHILD=1", "CI=" + ci, "PATH=" + os.Getenv("PATH")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		switch {
		case ci == "" && (err != nil || !strings.Contains(string(out), "--- SKIP") || !strings.Contains(string(out), "needs root")):
			t.Errorf("CI unset: want skip, got %v:\n%s", err, out)
		case ci == "true" && (err == nil || !strings.Contains(string(out), "--- FAIL") || !strings.Contains(string(out), "CI=true")):
			t.Errorf("CI=true: want failure, got %v:\n%s", err, out)
		}
	}
}

// The guard drops packets for addresses outside the lab's slot even when a
// node has a route for them (the route here points at another lab node, so
// nothing could leave the lab even if the guard failed).
func TestGuard(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	outside := netip.MustParsePrefix("198.51.100.1/32") // slot 0: never a lab's
	p.Gateway.Route(outside, p.Uplinks[0].B.IPv4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := p.Gateway.Run(ctx, "ping", "-n", "-c", "1", "-W", "0.3", outside.Addr().String())
	if err == nil {
		t.Fatalf("ping outside the slot succeeded:\n%s", out)
	}
	rules := p.Gateway.MustRun("nft", "list", "chain", "inet", "netlab", "postrouting")
	if !regexp.MustCompile(`packets [1-9]\d* bytes \d+ drop comment "netlab guard"`).MatchString(rules) {
		t.Errorf("guard counter did not count the packet:\n%s\nping: %s", rules, out)
	}
}

// The client guard drops packets for the lab's address space that would
// leave the host by a non-lab interface. The address here is routed into a
// throw-away veth whose other end sits in a namespace that forwards nothing,
// so even a broken guard could not send anything off the machine.
func TestClientGuard(t *testing.T) {
	needTool(t, "ping", "iputils-ping")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	edge := p.Prefixes()[1]
	// The last address of the slot's edge range: no small lab's link uses it.
	b := edge.Addr().As4()
	b[3] += byte(1<<(32-edge.Bits()) - 2)
	stray := netip.AddrFrom4(b)
	sink, ns := fmt.Sprintf("nlabtest%d", p.Slot()), fmt.Sprintf("nlabtest%d-sink", p.Slot())
	_ = exec.Command("ip", "link", "del", sink).Run()
	_ = exec.Command("ip", "netns", "del", ns).Run()
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", sink).Run()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", ns},
		{"link", "add", sink, "type", "veth", "peer", "name", "sink0", "netns", ns},
		{"link", "set", sink, "up"},
		{"route", "add", stray.String() + "/32", "dev", sink},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	out, err := exec.Command("ping", "-n", "-c", "1", "-W", "0.3", stray.String()).CombinedOutput()
	if err == nil {
		t.Fatalf("ping to %s went out by %s:\n%s", stray, sink, out)
	}
	rules, _ := exec.Command("nft", "list", "chain", "inet", fmt.Sprintf("netlab_%d", p.Slot()), "guard").CombinedOutput()
	if !regexp.MustCompile(`packets [1-9]\d* bytes \d+ drop comment "netlab client guard"`).Match(rules) {
		t.Errorf("client guard did not drop the packet:\n%s\nping: %s", rules, out)
	}
}
