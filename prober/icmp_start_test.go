package prober

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// A probe StartICMP suspends ends with the Result ProbeICMP gives the
// same request, field for field but the timings and the echo identifier
// (and those it knew before the wait are right):
// the suspended probe keeps only a few of the Result's fields while it
// waits and builds it at the end (the timings icmpComparable drops are
// checked to be there). Failures before the wait (a denied
// target, a bad source address) and protocol: tcp return at once.
func TestICMPStartMatchesProbe(t *testing.T) {
	icmpNeedSocket(t)
	tp := config.DefaultTargetPolicy()
	tp.DenyNetworks = append(tp.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.2/32")})
	policy := NewPolicy(tp, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	testserver.Serve(t, l, time.Second, func(net.Conn) {}) // a handshake, then close
	for _, tc := range []struct {
		name, target, opts string
		suspends           bool
	}{
		{"ipv4", "127.0.0.1", "packets: 3\ninterval: 10ms", true},
		{"ipv6", "::1", "", true},
		{"rtt threshold", "127.0.0.1", "packets: 2\ninterval: 10ms\nfail_if_rtt_mean_above: 1ns", true},
		{"denied", "127.0.0.2", "", false},
		{"bad source", "127.0.0.1", "source_ip_address: ::1", false},
		{"tcp", "127.0.0.1", "protocol: tcp\npackets: 2\ninterval: 10ms\nport: " + icmpListenerPort(t, l), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := icmpModule(t, 3*time.Second, tc.opts)
			req := func() *Request {
				return &Request{Target: tc.target, Module: &m, ModuleName: "m", Policy: policy, Logger: icmpTestLogger(t)}
			}
			ctx, cancel := context.WithTimeout(context.Background(), m.Timeout)
			defer cancel()
			want := RunRequest(ctx, ProbeICMP, req())
			got, s := StartRequest(ctx, StartICMP, req())
			if (s != nil) != tc.suspends {
				t.Fatalf("suspended %v, want %v", s != nil, tc.suspends)
			}
			if s != nil {
				done := make(chan struct{})
				s.OnDone(func() { close(done) })
				<-done
				got = s.Finish()
			}
			if res := got.(*ICMPResult); tc.name == "ipv4" && (!res.Success || !res.Resolved || res.IPAddr != "127.0.0.1" || res.IPProtocol != 4 ||
				res.Protocol != "icmp" || !res.MultiPacket || res.PacketsPlanned != 3 || res.PacketsReceived != 3 ||
				res.SocketMode == "" || (res.EchoID != 0) != (res.SocketMode == ICMPSocketPrivileged) ||
				res.DNSLookupSeconds <= 0 || res.SetupSeconds <= 0) {
				t.Errorf("suspended probe's result lost what it knew before its wait: %+v", res)
			}
			if g, w := icmpComparable(t, got), icmpComparable(t, want); !reflect.DeepEqual(g, w) {
				t.Errorf("suspended probe's result\n got %+v\nwant %+v", g, w)
			}
		})
	}
}

var icmpMeanRTT = regexp.MustCompile(`mean round-trip time [^ ]+`)

// icmpComparable is r without what differs from run to run.
func icmpComparable(t *testing.T, r Result) ICMPResult {
	t.Helper()
	res, ok := r.(*ICMPResult)
	if !ok {
		t.Fatalf("result is %T, want *ICMPResult", r)
	}
	c := *res
	c.StartedAt, c.DurationSeconds, c.TimeoutSeconds, c.DNSLookupSeconds, c.SetupSeconds = time.Time{}, 0, 0, 0, 0
	c.RTTMinSeconds, c.RTTMaxSeconds, c.RTTMeanSeconds, c.RTTStddevSeconds, c.JitterSeconds = 0, 0, 0, 0, 0
	for i := range c.RTTsSeconds {
		c.RTTsSeconds[i] = 1
	}
	// The threshold's error quotes the mean.
	c.Error, c.Cause = icmpMeanRTT.ReplaceAllString(c.Error, "mean round-trip time T"), icmpMeanRTT.ReplaceAllString(c.Cause, "mean round-trip time T")
	if c.EchoID != 0 {
		c.EchoID = 1
	}
	return c
}

func icmpListenerPort(t *testing.T, l net.Listener) string {
	t.Helper()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// icmpIPAddr gives back the address net.IPAddr.String wrote, zone and
// all, as the send-failure explanation needs it.
func TestICMPIPAddr(t *testing.T) {
	for _, a := range []*net.IPAddr{
		{IP: net.ParseIP("192.0.2.1")},
		{IP: net.IPv4(192, 0, 2, 1).To4()},
		{IP: net.ParseIP("2001:db8::1")},
		{IP: net.ParseIP("fe80::1"), Zone: "eth0"},
		{IP: net.ParseIP("192.0.2.1"), Zone: "eth0"},
	} {
		got := icmpIPAddr(a.String())
		if got.String() != a.String() || !got.IP.Equal(a.IP) || got.Zone != a.Zone {
			t.Errorf("icmpIPAddr(%q) = %+v, want %+v", a.String(), got, a)
		}
	}
}
