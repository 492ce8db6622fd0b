package prober

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// traceConfigFixtures loads config/testdata/<prefix>-bad-*.yml and checks
// each error message exactly.
func traceConfigFixtures(t *testing.T, bad []struct{ file, err string }) {
	t.Helper()
	dir := filepath.Join("..", "config", "testdata")
	for _, tc := range bad {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			_, err := config.LoadFile(path)
			if err == nil {
				t.Fatal("expected an error")
			}
			if want := "parsing config file " + path + ": " + tc.err; err.Error() != want {
				t.Errorf("error mismatch\n got: %s\nwant: %s", err, want)
			}
		})
	}
}

// TestTracerouteConfigFixtures loads config/testdata/traceroute-*.yml.
func TestTracerouteConfigFixtures(t *testing.T) {
	c, err := config.LoadFile(filepath.Join("..", "config", "testdata", "traceroute-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Modules["traceroute_icmp"].Traceroute
	want := config.TracerouteProbe{IPOptions: config.IPOptions{IPProtocolFallback: true}, Protocol: "icmp", FirstHop: 1, MaxHops: 30, PacketsPerHop: 3, HopTimeout: 3 * time.Second}
	if d != want {
		t.Errorf("defaults %+v, want %+v", d, want)
	}
	if u := c.Modules["traceroute_udp"].Traceroute; u.Protocol != "udp" || u.Port != 33434 {
		t.Errorf("udp defaults: %+v", u)
	}
	want = config.TracerouteProbe{IPOptions: config.IPOptions{IPProtocol: "ip4", SourceIPAddress: "192.0.2.10"}, Protocol: "tcp", Port: 443, FirstHop: 2,
		MaxHops: 20, PacketsPerHop: 1, HopTimeout: 2 * time.Second, DropAddressLabel: true}
	if got := c.Modules["traceroute_tcp_https"].Traceroute; got != want {
		t.Errorf("options %+v, want %+v", got, want)
	}
	// /config shows the options back, and they load again the same.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := config.Load(out, "")
	if err != nil {
		t.Fatalf("re-loading the marshalled config: %v\n%s", err, out)
	}
	for name, m := range c.Modules {
		if c2.Modules[name].Traceroute != m.Traceroute {
			t.Errorf("%s: round trip changed %+v to %+v", name, m.Traceroute, c2.Modules[name].Traceroute)
		}
	}
	if !strings.Contains(string(out), "drop_address_label: true") {
		t.Errorf("marshalled config lacks drop_address_label:\n%s", out)
	}

	traceConfigFixtures(t, []struct{ file, err string }{
		{"traceroute-bad-protocol.yml", `module "trace": traceroute: protocol "sctp" is not valid (icmp, udp or tcp)`},
		{"traceroute-bad-port-icmp.yml", "module \"trace\": traceroute: port is only used with protocol udp or tcp"},
		{"traceroute-bad-port-range.yml", "module \"trace\": traceroute: port 70000 is out of range 1-65535"},
		{"traceroute-bad-max-hops.yml", "module \"trace\": traceroute: max_hops 256 is out of range 1-255"},
		{"traceroute-bad-first-hop.yml", "module \"trace\": traceroute: first_hop 10 is above max_hops 5"},
		{"traceroute-bad-packets.yml", "module \"trace\": traceroute: packets_per_hop 11 is out of range 1-10"},
		{"traceroute-bad-hop-timeout.yml", "module \"trace\": traceroute: hop_timeout 1ms is below the minimum of 10ms"},
		{"traceroute-bad-source.yml", `module "trace": traceroute: source_ip_address "gateway.example" is not an IP address`},
		{"traceroute-bad-unknown-field.yml", `module "trace": line 6: unknown field "ttl" in traceroute`},
	})
}

// TestMTUConfigFixtures loads config/testdata/mtu-*.yml.
func TestMTUConfigFixtures(t *testing.T) {
	c, err := config.LoadFile(filepath.Join("..", "config", "testdata", "mtu-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	want := config.MTUProbe{IPOptions: config.IPOptions{IPProtocolFallback: true}, Retries: 2, ReplyTimeout: time.Second}
	if got := c.Modules["mtu"].MTU; got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	want = config.MTUProbe{IPOptions: config.IPOptions{IPProtocol: "ip4", SourceIPAddress: "192.0.2.10"}, MinSize: 1280, MaxSize: 9000, Retries: 1, ReplyTimeout: 500 * time.Millisecond}
	if got := c.Modules["mtu_ipv4_jumbo"].MTU; got != want {
		t.Errorf("options %+v, want %+v", got, want)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := config.Load(out, "")
	if err != nil {
		t.Fatalf("re-loading the marshalled config: %v\n%s", err, out)
	}
	for name, m := range c.Modules {
		if c2.Modules[name].MTU != m.MTU {
			t.Errorf("%s: round trip changed %+v to %+v", name, m.MTU, c2.Modules[name].MTU)
		}
	}
	traceConfigFixtures(t, []struct{ file, err string }{
		{"mtu-bad-min-above-max.yml", "module \"mtu\": mtu: min_size 1500 is above max_size 1400"},
		{"mtu-bad-size.yml", "module \"mtu\": mtu: max_size 40 is out of range 68-65535"},
		{"mtu-bad-retries.yml", "module \"mtu\": mtu: retries 11 is out of range 0-10"},
		{"mtu-bad-reply-timeout.yml", "module \"mtu\": mtu: reply_timeout 1ms is below the minimum of 10ms"},
		{"mtu-bad-unknown-field.yml", `module "mtu": line 6: unknown field "dont_fragment" in mtu`},
	})
}

// TestTracerouteRawSocketRefused runs the traceroute and mtu probers as an
// unprivileged user (a copy of the test binary run as nobody): they fail at
// once and say how to grant CAP_NET_RAW.
func TestTracerouteRawSocketRefused(t *testing.T) {
	if os.Getenv("ISP_CHECKER_TRACE_CHILD") == "1" {
		for _, m := range []config.Module{traceModule(t, 2*time.Second, ""), mtuModule(t, 2*time.Second, "")} {
			ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
			res := Run(ctx, probeTestFunc(m.Prober), Request{Target: "127.0.0.1", Module: &m})
			cancel()
			fmt.Printf("RESULT %s success=%v error=%s\n", m.Prober, res.Base().Success, res.Base().Error)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	dir, err := os.MkdirTemp("", "trace-child") // one level, so nobody can reach it
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prober.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestTracerouteRawSocketRefused$", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"ISP_CHECKER_TRACE_CHILD=1", "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child (uid 65534):\n%s", out)
	for _, want := range []string{
		"RESULT traceroute success=false error=cannot trace target: raw socket (ip4:icmp) not allowed",
		"RESULT mtu success=false error=cannot probe target: raw socket (ip4:icmp) not allowed",
		"setcap cap_net_raw+ep",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}
