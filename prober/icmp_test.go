package prober

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// icmpModule loads one icmp module from YAML (the options under icmp:), so
// tests go through the same defaults and checks as a config file.
func icmpModule(t testing.TB, timeout time.Duration, icmpYAML string) config.Module {
	t.Helper()
	return probeTestModule(t, "icmp", timeout, icmpYAML)
}

// testLogger logs the probe's lines into the test output.
func icmpTestLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// runICMPProbe runs the icmp prober as /probe would: through Run with a
// context that ends at the module's timeout.
func runICMPProbe(t testing.TB, target string, m config.Module, policy *Policy) (*ICMPResult, time.Duration) {
	t.Helper()
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	r := Run(ctx, ProbeICMP, Request{Target: target, Module: &m, ModuleName: "m", Policy: policy, Logger: icmpTestLogger(t)})
	took := time.Since(start)
	res, ok := r.(*ICMPResult)
	if !ok {
		t.Fatalf("result is %T (%+v), want *ICMPResult", r, r.Base())
	}
	if took >= timeout {
		t.Errorf("probe took %v, not inside its timeout %v", took, timeout)
	}
	return res, took
}

// needICMP skips the test when this process can open no ICMP socket (not
// root, no CAP_NET_RAW, ping_group_range closed), except under CI=true,
// where such a skip would hide every ICMP test.
func icmpNeedSocket(t testing.TB) {
	t.Helper()
	if _, _, err := icmpSocketMode(config.ICMPSocketAuto, false); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no ICMP socket available: %v", err)
		}
		t.Skipf("no ICMP socket available: %v", err)
	}
}

// checkClean asserts a probe that should have got every reply did.
func icmpCheckClean(t testing.TB, res *ICMPResult, packets int) {
	t.Helper()
	if !res.Success || res.Error != "" {
		t.Errorf("success=%v error=%q, want success", res.Success, res.Error)
	}
	if res.PacketsPlanned != packets || res.PacketsSent != packets || res.PacketsReceived != packets {
		t.Errorf("planned/sent/received = %d/%d/%d, want %d each", res.PacketsPlanned, res.PacketsSent, res.PacketsReceived, packets)
	}
	if res.LossRatio != 0 || res.Duplicates != 0 || res.ForeignReplies != 0 {
		t.Errorf("loss %v duplicates %d foreign %d, want 0", res.LossRatio, res.Duplicates, res.ForeignReplies)
	}
	if len(res.RTTsSeconds) != packets {
		t.Errorf("%d RTTs recorded, want %d", len(res.RTTsSeconds), packets)
	}
	icmpCheckStats(t, res)
}

// checkStatsSane checks the RTT statistics against each other and against
// the recorded RTTs, recomputed here the slow way.
func icmpCheckStats(t testing.TB, res *ICMPResult) {
	t.Helper()
	r := res.RTTsSeconds
	if len(r) == 0 {
		return
	}
	lo, hi, sum := r[0], r[0], 0.0
	for _, v := range r {
		lo, hi, sum = math.Min(lo, v), math.Max(hi, v), sum+v
		if v <= 0 || v > 1 {
			t.Errorf("RTT %v s out of (0, 1s]", v)
		}
	}
	mean := sum / float64(len(r))
	var ss, jit float64
	for i, v := range r {
		ss += (v - mean) * (v - mean)
		if i > 0 {
			jit += math.Abs(v - r[i-1])
		}
	}
	std := math.Sqrt(ss / float64(len(r)))
	if len(r) > 1 {
		jit /= float64(len(r) - 1)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9+1e-9*math.Abs(b) }
	if !near(res.RTTMinSeconds, lo) || !near(res.RTTMaxSeconds, hi) || !near(res.RTTMeanSeconds, mean) ||
		!near(res.RTTStddevSeconds, std) || !near(res.JitterSeconds, jit) {
		t.Errorf("stats min/max/mean/stddev/jitter = %v/%v/%v/%v/%v, recomputed %v/%v/%v/%v/%v",
			res.RTTMinSeconds, res.RTTMaxSeconds, res.RTTMeanSeconds, res.RTTStddevSeconds, res.JitterSeconds, lo, hi, mean, std, jit)
	}
	if res.RTTMinSeconds > res.RTTMeanSeconds || res.RTTMeanSeconds > res.RTTMaxSeconds {
		t.Errorf("min %v <= mean %v <= max %v does not hold", res.RTTMinSeconds, res.RTTMeanSeconds, res.RTTMaxSeconds)
	}
}

// A blackbox_exporter icmp module (none of the new options) sends exactly
// one echo request and succeeds on its reply, with blackbox's phases and the
// reply's hop limit (64 from the local kernel).
func TestICMPBlackboxModule(t *testing.T) {
	icmpNeedSocket(t)
	for _, tc := range []struct{ target, proto string }{{"127.0.0.1", "ip4"}, {"::1", "ip6"}} {
		t.Run(tc.proto, func(t *testing.T) {
			m := icmpModule(t, 5*time.Second, "preferred_ip_protocol: "+tc.proto)
			res, took := runICMPProbe(t, tc.target, m, nil)
			icmpCheckClean(t, res, 1)
			if res.SocketMode == "" || res.Protocol != "icmp" {
				t.Errorf("socket mode %q protocol %q", res.SocketMode, res.Protocol)
			}
			if res.HopLimit == nil || *res.HopLimit != 64 {
				t.Errorf("hop limit %v, want 64", res.HopLimit)
			}
			if res.SetupSeconds <= 0 || res.RTTMeanSeconds <= 0 {
				t.Errorf("setup %v rtt %v, want both > 0", res.SetupSeconds, res.RTTMeanSeconds)
			}
			if took > time.Second {
				t.Errorf("one loopback echo took %v", took)
			}
		})
	}
}

// blackbox's preferred_ip_protocol picks the family of a name's addresses,
// and source_ip_address binds the socket.
func TestICMPNameAndSource(t *testing.T) {
	icmpNeedSocket(t)
	addrs, err := net.LookupHost("localhost")
	if err != nil || len(addrs) == 0 {
		t.Skipf("localhost does not resolve: %v", err)
	}
	res, _ := runICMPProbe(t, "localhost", icmpModule(t, 2*time.Second, "preferred_ip_protocol: ip4"), nil)
	if !res.Success || res.IPAddr != "127.0.0.1" || res.IPProtocol != 4 {
		t.Errorf("localhost ip4: success %v addr %q protocol %d error %q", res.Success, res.IPAddr, res.IPProtocol, res.Error)
	}
	res, _ = runICMPProbe(t, "127.0.0.1", icmpModule(t, 2*time.Second, "source_ip_address: 127.0.0.2"), nil)
	if !res.Success {
		t.Errorf("source 127.0.0.2: %s", res.Error)
	}
	res, _ = runICMPProbe(t, "127.0.0.1", icmpModule(t, 2*time.Second, "source_ip_address: 198.51.100.1"), nil)
	if res.Success || !strings.Contains(res.Error, "assign requested address") {
		t.Errorf("source not on this host: success %v error %q", res.Success, res.Error)
	}
}

// 20 packets to 127.0.0.1 and ::1: no loss, sane statistics, and the run
// takes about 19 intervals.
func TestICMPLoopbackMultiPacket(t *testing.T) {
	icmpNeedSocket(t)
	for _, target := range []string{"127.0.0.1", "::1"} {
		t.Run(target, func(t *testing.T) {
			m := icmpModule(t, 5*time.Second, "packets: 20\ninterval: 10ms")
			res, took := runICMPProbe(t, target, m, nil)
			icmpCheckClean(t, res, 20)
			if took < 190*time.Millisecond || took > 3*time.Second {
				t.Errorf("20 packets at 10ms took %v, want about 190ms", took)
			}
			t.Logf("%s: rtt min/mean/max/stddev %v/%v/%v/%v jitter %v mode %s id %d", target,
				icmpSeconds(res.RTTMinSeconds), icmpSeconds(res.RTTMeanSeconds), icmpSeconds(res.RTTMaxSeconds),
				icmpSeconds(res.RTTStddevSeconds), icmpSeconds(res.JitterSeconds), res.SocketMode, res.EchoID)
		})
	}
}

// Every socket mode the module can ask for either works or fails with the
// command that fixes it; auto picks one that works and the result says
// which.
func TestICMPSocketModes(t *testing.T) {
	icmpNeedSocket(t)
	for _, ipv6 := range []bool{false, true} {
		target := map[bool]string{false: "127.0.0.1", true: "::1"}[ipv6]
		t.Run(target, func(t *testing.T) {
			uerr := icmpTrySocket(false, ipv6)
			perr := icmpTrySocket(true, ipv6)
			t.Logf("this system: datagram ICMP %v, raw ICMP %v", icmpErrString(uerr), icmpErrString(perr))
			auto, _ := runICMPProbe(t, target, icmpModule(t, 2*time.Second, ""), nil)
			want := ICMPSocketUnprivileged
			if uerr != nil {
				want = ICMPSocketPrivileged
			}
			if !auto.Success || auto.SocketMode != want {
				t.Errorf("auto: success %v mode %q, want %q", auto.Success, auto.SocketMode, want)
			}
			for mode, err := range map[string]error{config.ICMPSocketPrivileged: perr, config.ICMPSocketUnprivileged: uerr} {
				res, _ := runICMPProbe(t, target, icmpModule(t, 2*time.Second, "socket: "+mode), nil)
				switch {
				case err == nil && (!res.Success || res.SocketMode != mode):
					t.Errorf("socket: %s: success %v mode %q error %q", mode, res.Success, res.SocketMode, res.Error)
				case err != nil && res.Success:
					t.Errorf("socket: %s succeeded although the socket cannot be opened", mode)
				case err != nil:
					fix := map[string]string{
						config.ICMPSocketPrivileged:   "setcap cap_net_raw+ep",
						config.ICMPSocketUnprivileged: `sysctl -w net.ipv4.ping_group_range="0 2147483647"`,
					}[mode]
					if !strings.Contains(res.Error, fix) || res.PacketsSent != 0 {
						t.Errorf("socket: %s: error %q (sent %d), want the fix %q", mode, res.Error, res.PacketsSent, fix)
					}
					t.Logf("socket: %s: %s", mode, res.Error)
				}
			}
		})
	}
}

func icmpErrString(err error) string {
	if err == nil {
		return "allowed"
	}
	return "refused (" + err.Error() + ")"
}

// With neither socket allowed (an unprivileged user, ping_group_range
// closed) the probe fails and names both fixes. The test binary re-runs
// itself as nobody to get there.
func TestICMPNoSocketAllowed(t *testing.T) {
	if os.Getenv("ISP_CHECKER_ICMP_CHILD") == "1" {
		res, _ := runICMPProbe(t, "127.0.0.1", icmpModule(t, 2*time.Second, ""), nil)
		fmt.Printf("RESULT success=%v error=%s\n", res.Success, res.Error)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	if b, _ := os.ReadFile(icmpPingGroupRangeFile); strings.TrimSpace(strings.Join(strings.Fields(string(b)), " ")) != "1 0" {
		t.Skipf("ping_group_range is %q: nobody may open datagram ICMP sockets here", strings.TrimSpace(string(b)))
	}
	dir, err := os.MkdirTemp("", "icmp-child")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := dir + "/prober.test"
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestICMPNoSocketAllowed$", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"ISP_CHECKER_ICMP_CHILD=1", "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = icmpNobody()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"RESULT success=false", "no ICMP socket is allowed", "setcap cap_net_raw+ep",
		`net.ipv4.ping_group_range (now "1 0")`, `sysctl -w net.ipv4.ping_group_range="0 2147483647"`, "protocol: tcp"} {
		if !strings.Contains(s, want) {
			t.Errorf("child output lacks %q:\n%s", want, s)
		}
	}
}

// An echo to a loopback address whose echo requests nftables drops: every
// packet is lost, the probe fails with loss ratio 1 and ends inside its
// timeout (at its stop margin, not at the deadline).
func TestICMPAllLostEndsInsideTimeout(t *testing.T) {
	icmpNeedSocket(t)
	addr := icmpDropEchoTo(t)
	const timeout = 1500 * time.Millisecond
	m := icmpModule(t, timeout, "packets: 5\ninterval: 20ms")
	res, took := runICMPProbe(t, addr.String(), m, nil)
	t.Logf("all lost: took %v of %v: %s", took, timeout, res.Error)
	if res.Success || res.PacketsSent != 5 || res.PacketsReceived != 0 || res.LossRatio != 1 {
		t.Errorf("success %v sent %d received %d loss %v, want failure, 5, 0, 1", res.Success, res.PacketsSent, res.PacketsReceived, res.LossRatio)
	}
	if !strings.Contains(res.Error, "no reply to any of 5 echo requests") {
		t.Errorf("error %q", res.Error)
	}
	if took < timeout-config.ICMPStopMargin(timeout)-100*time.Millisecond {
		t.Errorf("gave up after %v, before its stop time", took)
	}
	// reply_timeout ends a lossy probe early.
	m = icmpModule(t, timeout, "packets: 5\ninterval: 20ms\nreply_timeout: 200ms")
	res, took = runICMPProbe(t, addr.String(), m, nil)
	if res.LossRatio != 1 || took > 900*time.Millisecond {
		t.Errorf("reply_timeout 200ms: loss %v took %v, want 1 and about 280ms", res.LossRatio, took)
	}
}

// icmpDropEchoTo returns a loopback address (127.10.x.y, unique to this test
// process) whose ICMP echo requests are dropped by an nftables table of this
// test's own, removed when the test ends. It skips without nft or root.
func icmpDropEchoTo(t testing.TB) netip.Addr {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: needs root and nft")
		}
		t.Skip("needs root and nft")
	}
	pid := os.Getpid()
	addr := netip.AddrFrom4([4]byte{127, 10, byte(pid >> 8), byte(pid)})
	table := fmt.Sprintf("isp_checker_icmp_test_%d", pid)
	rules := fmt.Sprintf(`table ip %s {
		chain input {
			type filter hook input priority 0; policy accept;
			ip daddr %s icmp type echo-request drop
		}
	}`, table, addr)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("nft", "delete", "table", "ip", table).CombinedOutput(); err != nil {
			t.Errorf("removing nft table %s: %v\n%s", table, err, out)
		}
	})
	return addr
}

// More packets than fit in the timeout: the probe sends what fits, keeps
// time for the last reply and ends inside the timeout.
func TestICMPPacketsFitTimeout(t *testing.T) {
	icmpNeedSocket(t)
	const timeout = time.Second
	// Such a module fails to load (config's CheckTimeout); the same happens
	// when a short scrape timeout, not the module's, is the limit.
	m := icmpModule(t, 0, "packets: 1000\ninterval: 10ms")
	m.Timeout = timeout
	res, _ := runICMPProbe(t, "127.0.0.1", m, nil)
	want := m.ICMP.PacketsThatFit(timeout)
	if want >= 1000 || want < 50 {
		t.Fatalf("PacketsThatFit(1s) = %d", want)
	}
	// The budget the probe sees is a little under the module timeout.
	if !res.Success || res.PacketsPlanned > want || res.PacketsPlanned < want-2 || res.PacketsReceived != res.PacketsSent {
		t.Errorf("planned %d sent %d received %d, want about %d all answered", res.PacketsPlanned, res.PacketsSent, res.PacketsReceived, want)
	}
	if err := m.ICMP.CheckTimeout(timeout); err == nil || !strings.Contains(err.Error(), "packets at interval 10ms fit in the timeout 1s") {
		t.Errorf("CheckTimeout: %v", err)
	}
}

// Thresholds turn a probe that got replies into a failure, with a reason.
func TestICMPThresholds(t *testing.T) {
	icmpNeedSocket(t)
	for _, tc := range []struct {
		opts, wantErr string
	}{
		{"packets: 3\ninterval: 5ms\nfail_if_loss_ratio_above: 0", ""},
		{"packets: 3\ninterval: 5ms\nfail_if_rtt_mean_above: 1s\nfail_if_jitter_above: 1s", ""},
		{"packets: 3\ninterval: 5ms\nfail_if_rtt_mean_above: 1ns", "is above fail_if_rtt_mean_above 1ns"},
		{"packets: 3\ninterval: 5ms\nfail_if_jitter_above: 1ns", "is above fail_if_jitter_above 1ns"},
	} {
		res, _ := runICMPProbe(t, "127.0.0.1", icmpModule(t, 2*time.Second, tc.opts), nil)
		if tc.wantErr == "" && !res.Success || tc.wantErr != "" && (res.Success || !strings.Contains(res.Error, tc.wantErr)) {
			t.Errorf("%q: success %v error %q, want error %q", tc.opts, res.Success, res.Error, tc.wantErr)
		}
		if res.PacketsReceived != 3 {
			t.Errorf("%q: received %d of 3", tc.opts, res.PacketsReceived)
		}
	}
	// The loss threshold against real loss.
	addr := icmpDropEchoTo(t)
	res, _ := runICMPProbe(t, addr.String(), icmpModule(t, time.Second, "packets: 2\ninterval: 5ms\nreply_timeout: 100ms\nfail_if_loss_ratio_above: 0.5"), nil)
	if res.Success || !strings.Contains(res.Error, "no reply to any of 2 echo requests") {
		t.Errorf("all lost: success %v error %q", res.Success, res.Error)
	}
}

// The target policy is checked before anything is sent, in both protocols.
func TestICMPTargetPolicy(t *testing.T) {
	var denied int
	tp := config.DefaultTargetPolicy()
	tp.DenyNetworks = append(tp.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.0/8")})
	policy := NewPolicy(tp, func() { denied++ })
	for _, opts := range []string{"", "protocol: tcp\nport: 9"} {
		res, _ := runICMPProbe(t, "127.0.0.1", icmpModule(t, time.Second, opts), policy)
		if res.Success || !strings.Contains(res.Error, "refused by target_policy") || res.PacketsSent != 0 {
			t.Errorf("%q: success %v sent %d error %q, want denied", opts, res.Success, res.PacketsSent, res.Error)
		}
		// The diagnosis says "target 127.0.0.1 not pinged: denied by …";
		// the error is worded as every prober words a denial.
		why, ok := strings.CutPrefix(res.Cause, ErrDenied.Error()+": ")
		if !ok || res.Error != "Target refused by target_policy: "+why {
			t.Errorf("%q: cause %q of error %q, want the denial alone", opts, res.Cause, res.Error)
		}
	}
	if denied != 2 {
		t.Errorf("policy counted %d denials, want 2", denied)
	}
}

// protocol: tcp measures connect times: all connects to a listener succeed;
// a refused port loses every packet and says why.
func TestICMPTCPMode(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			host := map[string]string{"tcp4": "127.0.0.1", "tcp6": "::1"}[network]
			l, err := net.Listen(network, net.JoinHostPort(host, "0"))
			if err != nil {
				t.Fatal(err)
			}
			var accepted sync.WaitGroup
			accepted.Add(1)
			go func() {
				defer accepted.Done()
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			port := l.Addr().(*net.TCPAddr).Port
			m := icmpModule(t, 3*time.Second, fmt.Sprintf("protocol: tcp\nport: %d\npackets: 10\ninterval: 10ms", port))
			res, _ := runICMPProbe(t, host, m, nil)
			icmpCheckClean(t, res, 10)
			if res.Protocol != "tcp" || res.Port != port || res.SocketMode != "" || res.HopLimit != nil {
				t.Errorf("protocol %q port %d socket %q hop limit %v", res.Protocol, res.Port, res.SocketMode, res.HopLimit)
			}
			l.Close()
			accepted.Wait()

			// The same port, now closed: refused at once.
			res, took := runICMPProbe(t, host, m, nil)
			if res.Success || res.PacketsSent != 10 || res.PacketsReceived != 0 || res.LossRatio != 1 ||
				!strings.Contains(res.Error, "connection refused") {
				t.Errorf("refused: success %v sent %d received %d loss %v error %q", res.Success, res.PacketsSent, res.PacketsReceived, res.LossRatio, res.Error)
			}
			if took > time.Second {
				t.Errorf("refused connects took %v", took)
			}
		})
	}
}

// The statistics of a known series: loss, min/max/mean, population
// standard deviation, and jitter over consecutive replies in sequence order.
func TestICMPRecordStats(t *testing.T) {
	ms := time.Millisecond
	rec := newICMPRecord(6)
	rec.sent = 6
	for seq, d := range map[int]time.Duration{0: 10 * ms, 1: 14 * ms, 3: 12 * ms, 5: 20 * ms} {
		rec.got[seq], rec.rtts[seq] = true, d
	}
	rec.duplicates, rec.hopLimit = 2, 0
	var res ICMPResult
	rec.fill(&res)
	mean := 0.014
	std := math.Sqrt((16e-6 + 0 + 4e-6 + 36e-6) / 4)
	jitter := (0.004 + 0.002 + 0.008) / 3
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	if res.PacketsSent != 6 || res.PacketsReceived != 4 || !near(res.LossRatio, 2.0/6) || res.Duplicates != 2 {
		t.Errorf("counts: %+v", res)
	}
	if !near(res.RTTMinSeconds, 0.010) || !near(res.RTTMaxSeconds, 0.020) || !near(res.RTTMeanSeconds, mean) ||
		!near(res.RTTStddevSeconds, std) || !near(res.JitterSeconds, jitter) {
		t.Errorf("stats: %+v, want mean %v stddev %v jitter %v", res, mean, std, jitter)
	}
	if res.HopLimit == nil || *res.HopLimit != 0 {
		t.Errorf("hop limit 0 (valid for IPv6) lost: %v", res.HopLimit)
	}
	if fmt.Sprint(res.RTTsSeconds) != "[0.01 0.014 0.012 0.02]" {
		t.Errorf("RTTs %v", res.RTTsSeconds)
	}
	var none ICMPResult
	newICMPRecord(3).fill(&none)
	if none.LossRatio != 0 || none.RTTsSeconds != nil || none.HopLimit != nil {
		t.Errorf("nothing sent: %+v", none)
	}
}

func TestICMPRecordCapsRTTs(t *testing.T) {
	rec := newICMPRecord(ICMPMaxRecordedRTTs + 5)
	rec.sent = len(rec.got)
	for i := range rec.got {
		rec.got[i], rec.rtts[i] = true, time.Millisecond
	}
	var res ICMPResult
	rec.fill(&res)
	if len(res.RTTsSeconds) != ICMPMaxRecordedRTTs || res.PacketsReceived != ICMPMaxRecordedRTTs+5 {
		t.Errorf("recorded %d RTTs of %d", len(res.RTTsSeconds), res.PacketsReceived)
	}
}

// nobody runs a child process as uid/gid 65534 with no capabilities.
func icmpNobody() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}
