package prober

import (
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

const icmpTestdata = "../config/testdata/"

// The icmp options' fixtures load, with defaults filled in.
func TestICMPConfigGood(t *testing.T) {
	c, err := config.LoadFile(icmpTestdata + "icmp-good.yml")
	if err != nil {
		t.Fatal(err)
	}
	bb := c.Modules["icmp"].ICMP
	if bb.Packets != 1 || bb.Interval != time.Second || bb.Socket != "auto" || bb.Protocol != "icmp" ||
		bb.TTL != 64 || !bb.IPProtocolFallback || bb.ReplyTimeout != 0 || bb.FailIfLossRatioAbove != nil {
		t.Errorf("blackbox module defaults: %+v", bb)
	}
	p := c.Modules["ping_loss_jitter"].ICMP
	if p.Packets != 20 || p.Interval != 200*time.Millisecond || p.ReplyTimeout != time.Second || p.Socket != "privileged" ||
		p.FailIfLossRatioAbove == nil || *p.FailIfLossRatioAbove != 0.05 || p.FailIfRTTMeanAbove != 150*time.Millisecond ||
		p.FailIfJitterAbove != 30*time.Millisecond {
		t.Errorf("ping_loss_jitter: %+v", p)
	}
	if err := p.CheckTimeout(10 * time.Second); err != nil {
		t.Errorf("ping_loss_jitter fits its timeout: %v", err)
	}
	tcp := c.Modules["tcp_ping_https"].ICMP
	if tcp.Protocol != "tcp" || tcp.Port != 443 || tcp.Packets != 5 {
		t.Errorf("tcp_ping_https: %+v", tcp)
	}
	// blackbox.yml fixtures keep blackbox's one packet.
	for _, f := range []string{"blackbox-good.yml", "blackbox-debian.yml"} {
		c, err := config.LoadFile(icmpTestdata + f)
		if err != nil {
			t.Fatal(err)
		}
		for name, m := range c.Modules {
			if m.Prober == "icmp" && (m.ICMP.Packets != 1 || m.ICMP.Protocol != "icmp") {
				t.Errorf("%s %s: packets %d protocol %q", f, name, m.ICMP.Packets, m.ICMP.Protocol)
			}
		}
	}
}

// Each bad fixture fails to load with exactly this message.
func TestICMPConfigErrors(t *testing.T) {
	for _, tc := range []struct{ file, err string }{
		{"icmp-bad-packets.yml", "module \"m\": icmp: packets 0 is out of range 1-10000"},
		{"icmp-bad-packets-max.yml", "module \"m\": icmp: packets 10001 is out of range 1-10000"},
		{"icmp-bad-interval.yml", "module \"m\": icmp: interval 500µs is below the minimum of 1ms"},
		{"icmp-bad-loss-ratio.yml", "module \"m\": icmp: fail_if_loss_ratio_above 25 is out of range 0-1 (a ratio, not a percentage)"},
		{"icmp-bad-protocol.yml", `module "m": icmp: protocol "udp" is not valid (icmp or tcp)`},
		{"icmp-bad-socket.yml", `module "m": icmp: socket "raw" is not valid (auto, privileged or unprivileged)`},
		{"icmp-tcp-no-port.yml", "module \"m\": icmp: protocol tcp needs a port in 1-65535 (port: 0)"},
		{"icmp-port-without-tcp.yml", "module \"m\": icmp: port is only used with protocol: tcp"},
		{"icmp-tcp-socket.yml", "module \"m\": icmp: socket is only used with protocol: icmp"},
		{"icmp-bad-reply-timeout.yml", "module \"m\": icmp: reply_timeout cannot be negative"},
		{"icmp-bad-unknown-field.yml", `module "m": line 5: unknown field "packet" in icmp`},
	} {
		_, err := config.LoadFile(icmpTestdata + tc.file)
		want := "parsing config file " + icmpTestdata + tc.file + ": " + tc.err
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", tc.file, err, want)
		}
	}
}

// PacketsThatFit keeps the stop margin and the reply wait free.
func TestICMPPacketsThatFit(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		packets       int
		interval      time.Duration
		reply, budget time.Duration
		want          int
	}{
		{1, s, 0, 10 * s, 1},
		{10, s, 0, 10 * s, 9},                  // 10s - 250ms stop margin - 1s reply wait = 8.75s: 9 sends take 8s
		{10, s, 0, 20 * s, 10},                 //
		{100, 10 * time.Millisecond, 0, s, 71}, // 1s - 200ms - 100ms = 700ms
		{100, 10 * time.Millisecond, 500 * time.Millisecond, s, 31},
		{5, s, 0, 100 * time.Millisecond, 1}, // nothing fits: one packet anyway
	} {
		o := config.ICMPProbe{Packets: tc.packets, Interval: tc.interval, ReplyTimeout: tc.reply}
		if got := o.PacketsThatFit(tc.budget); got != tc.want {
			t.Errorf("%d at %v (reply %v) in %v: %d fit, want %d", tc.packets, tc.interval, tc.reply, tc.budget, got, tc.want)
		}
	}
	o := config.ICMPProbe{Packets: 10, Interval: s}
	if err := o.CheckTimeout(10 * s); err == nil || !strings.Contains(err.Error(), "only 9 of 10 packets") {
		t.Errorf("CheckTimeout: %v", err)
	}
	if err := o.CheckTimeout(0); err != nil {
		t.Errorf("no module timeout: %v", err)
	}
}
