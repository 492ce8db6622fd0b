package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestISPGood(t *testing.T) {
	c, err := LoadFile("testdata/isp-good.yml")
	if err != nil {
		t.Fatal(err)
	}
	o := c.Modules["isp"].ISP
	want := ISPProbe{
		IPOptions: IPOptions{IPProtocol: "ip4", IPProtocolFallback: true},
		Gateway:   "192.0.2.1", Targets: []string{"203.0.113.10", "one.one.one.one"},
		DNSServers: []string{"192.0.2.53", "[2001:db8::53]:5353"}, DNSQueryName: "example.org", DNSQueryType: "AAAA",
		DNSAttempts: 2, DNSTimeout: time.Second,
		HTTPURLs: []string{"https://www.example.org/", "http://203.0.113.80:8080/health"}, HTTPTimeout: 5 * time.Second,
		Speed: true, SpeedURL: "http://203.0.113.90/speedtest/download?bytes=100000000", SpeedDuration: 8 * time.Second,
		Packets: 20, Interval: 250 * time.Millisecond, TraceMaxHops: 20,
		Thresholds: ISPThresholds{LossRatio: 0.02, GatewayLatency: DefaultISPGatewayLatency, Latency: 80 * time.Millisecond,
			Jitter: DefaultISPJitter, DNSLatency: DefaultISPDNSLatency, Bufferbloat: DefaultISPBufferbloat},
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("isp options\n got %+v\nwant %+v", o, want)
	}
	if d := c.Modules["isp_defaults"].ISP; !reflect.DeepEqual(d, DefaultISPProbe()) {
		t.Errorf("an isp module without options: %+v", d)
	}
	if n := c.Modules["isp_no_gateway"].ISP; n.Gateway != ISPGatewayNone || n.Thresholds.Jitter != 10*time.Millisecond || n.Thresholds.LossRatio != DefaultISPLossRatio {
		t.Errorf("thresholds not written keep their defaults: %+v", n.Thresholds)
	}
	if d := DefaultISPProbe(); d.Validate() != nil {
		err := d.Validate()
		t.Errorf("the defaults do not validate: %v", err)
	}
	out, err := c.Marshal()
	if err != nil || !strings.Contains(string(out), "loss_ratio: 0.02") {
		t.Errorf("marshal: %v\n%s", err, out)
	}
}

func TestISPBad(t *testing.T) {
	for file, want := range map[string]string{
		"isp-bad-loss-ratio.yml":        "thresholds: loss_ratio 5 is out of range (0-1, exclusive; a ratio, not a percentage)",
		"isp-bad-unknown-threshold.yml": `line 6: unknown field "los_ratio" in isp thresholds`,
		"isp-bad-unknown-field.yml":     `line 5: unknown field "target" in isp`,
		"isp-bad-target.yml":            `targets: "http://203.0.113.10/" is not a host name or IP address`,
		"isp-bad-no-targets.yml":        "targets: at least one internet target is needed",
		"isp-bad-dns-server.yml":        `dns_servers: "resolver.example" is not an IP address (ip, ip:port or [ipv6]:port)`,
		"isp-bad-url.yml":               `http_urls: "ftp://files.example/" is not an http:// or https:// URL`,
		"isp-bad-speed.yml":             "speed: true needs a speed_url (a URL to download from)",
		"isp-bad-gateway.yml":           `gateway "router.lan" is not an IP address (or "none")`,
		"isp-bad-packets.yml":           "packets 0 is out of range 1-1000",
		"isp-bad-latency.yml":           "thresholds: latency must be positive",
	} {
		t.Run(file, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", file))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v\nwant it to contain %q", err, want)
			}
		})
	}
}

func TestISPValidators(t *testing.T) {
	for _, ok := range []string{"192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53", "2001:db8::53", "fe80::1%eth0", "[fe80::1%eth0]:53"} {
		if err := ValidISPDNSServer(ok); err != nil {
			t.Errorf("ValidISPDNSServer(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "dns.example", "192.0.2.53:0", "192.0.2.53:x"} {
		if ValidISPDNSServer(bad) == nil {
			t.Errorf("ValidISPDNSServer(%q) accepted", bad)
		}
	}
	if a, err := ParseISPGateway("fe80::1%wlan0"); err != nil || a.Zone != "wlan0" {
		t.Errorf("ParseISPGateway: %v %v", a, err)
	}
	if _, err := ParseISPGateway("192.0.2.1%eth0"); err == nil {
		t.Error("an IPv4 gateway with a zone accepted")
	}
}
