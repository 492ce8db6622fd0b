package prober

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/config"
)

// testPolicy is the default policy plus deny_hosts *.internal, as the
// issue's attacker faced it.
func testPolicy() config.TargetPolicy {
	p := config.DefaultTargetPolicy()
	p.DenyHosts = []string{"*.internal"}
	return p
}

// Every textual form of a denied address or host is refused at each of
// the policy's entry points: the host check before a lookup or a
// redirect, the dial wrapper and the dialer's Control.
func TestPolicyRefusesEveryForm(t *testing.T) {
	denied := []string{
		"169.254.169.254", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "[::ffff:169.254.169.254]",
		"fd00:ec2::254", "[fd00:ec2::254]", "FD00:EC2::254", "fd00:ec2:0:0:0:0:0:254", "fd00:ec2::254%x", "[fd00:ec2::254%x]",
		"fe80::254", "fe80::254%lo", "[fe80::254%25]", "fe80::254%eth0", "FE80::1%1",
		"metadata.internal", "METADATA.Internal", "metadata.internal.", "metadata.internal..",
		"metadata.ⓘⓝⓣⓔⓡⓝⓐⓛ", "metadata。internal", "metadata.ＩＮＴＥＲＮＡＬ", "metadata．internal", "metadata｡internal",
		"１６９.２５４.１６９.２５４",
	}
	pol := NewPolicy(testPolicy(), nil)
	// With loopback denied, the unspecified addresses (dialled as this host) are too.
	lo := testPolicy()
	lo.DenyNetworks = append(lo.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.0/8")}, config.Network{Prefix: netip.MustParsePrefix("::1/128")})
	for _, h := range []string{"0.0.0.0", "::", "[::]", "::ffff:0.0.0.0", "127.0.0.1"} {
		if err := NewPolicy(lo, nil).AllowHost(h); !errors.Is(err, ErrDenied) {
			t.Errorf("loopback denied: AllowHost(%q) = %v, want a denial", h, err)
		}
	}
	for _, h := range denied {
		if err := pol.AllowHost(h); !errors.Is(err, ErrDenied) {
			t.Errorf("AllowHost(%q) = %v, want a denial", h, err)
		}
		var dialled bool
		dial := pol.Dial(func(context.Context, string, string) (net.Conn, error) {
			dialled = true
			return nil, errors.New("not dialled in this test")
		})
		hostport := net.JoinHostPort(strings.Trim(h, "[]"), "80")
		if _, err := dial(context.Background(), "tcp", hostport); !errors.Is(err, ErrDenied) || dialled {
			t.Errorf("Dial(%q) = %v (dialled %v), want a denial before dialling", hostport, err, dialled)
		}
		if addr, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			if err := pol.Control("tcp", net.JoinHostPort(addr.String(), "80"), nil); !errors.Is(err, ErrDenied) {
				t.Errorf("Control(%s) = %v, want a denial", addr, err)
			}
		}
	}
	for _, h := range []string{"127.0.0.1", "::1", "[::1]", "example.com", "Example.COM.", "bücher.example", "internal.example", "192.0.2.1"} {
		if err := pol.AllowHost(h); err != nil {
			t.Errorf("AllowHost(%q) = %v, want allowed", h, err)
		}
	}
}

// A denial says once that the policy denied it.
func TestPolicyDenialSaysItOnce(t *testing.T) {
	err := NewPolicy(testPolicy(), nil).AllowHost("metadata.internal")
	if n := strings.Count(err.Error(), "target_policy"); n != 1 {
		t.Errorf("%q names target_policy %d times", err, n)
	}
}
