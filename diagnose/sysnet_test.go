package diagnose

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/config"
)

// Auto-detection is tested on copies of /proc/net/route, /proc/net/ipv6_route
// and resolv.conf: nothing is sent.

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseRoute(t *testing.T) {
	gw, err := ParseRoute(open(t, "route"))
	if err != nil || gw != "192.0.2.254" {
		t.Errorf("ParseRoute = %q, %v; want the lowest-metric default route's gateway 192.0.2.254", gw, err)
	}
	if gw, err := ParseRoute(open(t, "route-no-default")); err == nil {
		t.Errorf("ParseRoute without a default route = %q, want an error", gw)
	}
	gw, err = ParseIPv6Route(open(t, "ipv6_route"))
	if err != nil || gw != "fe80::1%wlan0" {
		t.Errorf("ParseIPv6Route = %q, %v; want fe80::1%%wlan0 (metric 0x200 beats 0x400)", gw, err)
	}
}

func TestParseResolvConf(t *testing.T) {
	got, err := ParseResolvConf(open(t, "resolv.conf"))
	want := []string{"192.0.2.53", "2001:db8::53", "[fe80::53%eth0]:53"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseResolvConf = %q, %v; want %q", got, err, want)
	}
	for _, s := range got {
		if err := config.ValidISPDNSServer(s); err != nil {
			t.Errorf("the dns prober cannot take %q: %v", s, err)
		}
	}
	if got, err := ParseResolvConf(open(t, "resolv-empty.conf")); err == nil {
		t.Errorf("ParseResolvConf without nameservers = %q, want an error", got)
	}
}

// withSystemFiles points auto-detection at fixtures.
func withSystemFiles(t *testing.T, route, route6, resolv string) {
	t.Helper()
	old := [3]string{RouteFile, IPv6RouteFile, ResolvConf}
	RouteFile, IPv6RouteFile, ResolvConf = "testdata/"+route, "testdata/"+route6, "testdata/"+resolv
	t.Cleanup(func() { RouteFile, IPv6RouteFile, ResolvConf = old[0], old[1], old[2] })
}

func TestNewPlanDetects(t *testing.T) {
	withSystemFiles(t, "route", "ipv6_route", "resolv.conf")
	p := NewPlan(config.DefaultISPProbe(), Flagged{})
	if p.Gateway != "192.0.2.254" || p.GatewaySource != SourceRoute {
		t.Errorf("gateway %q from %q", p.Gateway, p.GatewaySource)
	}
	if len(p.DNSServers) != 3 || p.DNSSource != SourceResolvConf {
		t.Errorf("resolvers %q from %q", p.DNSServers, p.DNSSource)
	}
	if !reflect.DeepEqual(p.Targets, config.DefaultISPTargets) || p.DNSName != "example.com" || len(p.HTTPURLs) != 1 || p.SpeedURL != "" {
		t.Errorf("defaults not planned: %+v", p)
	}

	// No IPv4 default route: the IPv6 one.
	withSystemFiles(t, "route-no-default", "ipv6_route", "resolv-empty.conf")
	p = NewPlan(config.DefaultISPProbe(), Flagged{})
	if p.Gateway != "fe80::1%wlan0" || len(p.DNSServers) != 0 || p.DNSSource != SourceNone || !strings.Contains(p.DNSNote, "no nameserver") {
		t.Errorf("plan %+v", p)
	}
	// Nothing at all.
	withSystemFiles(t, "route-no-default", "missing", "missing")
	p = NewPlan(config.DefaultISPProbe(), Flagged{})
	if p.Gateway != "" || p.GatewaySource != SourceNone || !strings.Contains(p.GatewayNote, "no default gateway") {
		t.Errorf("plan %+v", p)
	}

	// Given ones win, and say where they came from.
	o := config.DefaultISPProbe()
	o.Gateway, o.DNSServers, o.Speed, o.SpeedURL = "192.0.2.9", []string{"192.0.2.10"}, true, "http://192.0.2.11/"
	p = NewPlan(o, Flagged{Gateway: true})
	if p.Gateway != "192.0.2.9" || p.GatewaySource != SourceFlag || p.DNSSource != SourceConfig || p.SpeedURL != "http://192.0.2.11/" {
		t.Errorf("plan %+v", p)
	}
	o.Gateway = config.ISPGatewayNone
	if p = NewPlan(o, Flagged{}); p.Gateway != "" || p.GatewaySource != SourceNone {
		t.Errorf("gateway none: %+v", p)
	}
}
