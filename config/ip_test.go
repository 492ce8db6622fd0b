package config

import (
	"reflect"
	"strings"
	"testing"
)

// Every prober section but those of probers that resolve no address
// embeds IPOptions, and loading checks them the same way in each: a bad
// preferred_ip_protocol or source_ip_address fails, and
// ip_protocol_fallback: false stays false.
func TestIPOptionsInEverySection(t *testing.T) {
	extra := map[string]string{"dns": "query_name: example.com\n      "}
	noSource := map[string]bool{"grpc": true, "isp": true}
	noAddress := map[string]bool{"unix": true} // a socket path
	for _, p := range ProberNames() {
		if noAddress[p] {
			continue
		}
		t.Run(p, func(t *testing.T) {
			load := func(opts string) (*Config, error) {
				return Load([]byte("modules:\n  m:\n    prober: "+p+"\n    "+p+":\n      "+extra[p]+opts+"\n"), "")
			}
			// A section that resolves no address (a socket path) is the
			// exception, listed in noAddress; one with a required option
			// gets it from extra.
			c, err := load("ip_protocol_fallback: false\n      preferred_ip_protocol: ip4")
			if err != nil {
				t.Fatalf("%v\n(embed config.IPOptions in the %s options, CONTRIBUTING's step 1; a prober that resolves no address goes in noAddress, one with a required option in extra)", err, p)
			}
			m := c.Modules["m"]
			f := reflect.ValueOf(m.Options()).Elem().FieldByName("IPOptions")
			if !f.IsValid() {
				t.Fatalf("the %s options do not embed config.IPOptions (CONTRIBUTING's step 1; a prober that resolves no address goes in noAddress)", p)
			}
			ipo := f.Interface().(IPOptions)
			if ipo.IPProtocolFallback || ipo.IPProtocol != "ip4" {
				t.Errorf("options %+v, want ip4 without fallback", ipo)
			}
			if _, err := load("preferred_ip_protocol: ip5"); err == nil || !strings.Contains(err.Error(), `preferred_ip_protocol "ip5" is not valid`) {
				t.Errorf("bad preferred_ip_protocol: %v", err)
			}
			want := `source_ip_address "x" is not an IP address`
			if noSource[p] {
				want = "source_ip_address is not an option of the " + p + " prober"
			}
			if _, err := load("source_ip_address: x"); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("bad source_ip_address: %v, want %q", err, want)
			}
		})
	}
}
