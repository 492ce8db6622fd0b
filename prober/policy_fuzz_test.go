package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/idna"

	"github.com/isp-checker/isp-checker/config"
)

// fuzzPolicy denies the default networks, loopback and a documentation
// range, and two host patterns.
func fuzzPolicy() config.TargetPolicy {
	p := config.DefaultTargetPolicy()
	for _, s := range []string{"127.0.0.0/8", "2001:db8::/32"} {
		p.DenyNetworks = append(p.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix(s)})
	}
	p.DenyHosts = []string{"*.internal", "metadata"}
	return p
}

// deniedOracle says whether the 16-byte form of an address (IPv4 as
// IPv4-mapped) falls in one of the policy's networks, by comparing bits
// itself rather than through netip's Unmap and Contains.
func deniedOracle(p config.TargetPolicy, b [16]byte) bool {
	// 0.0.0.0 and :: are dialled as this host: as 127.0.0.1 and ::1.
	if b == [16]byte{10: 0xff, 11: 0xff} {
		if deniedOracle(p, [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1}) {
			return true
		}
	} else if b == [16]byte{} && deniedOracle(p, [16]byte{15: 1}) {
		return true
	}
	for _, n := range p.DenyNetworks {
		pb := n.Addr().As16()
		bits := n.Bits()
		if n.Addr().Is4() {
			bits += 96
		}
		match := true
		for i := range bits {
			if (pb[i/8]>>(7-i%8))&1 != (b[i/8]>>(7-i%8))&1 {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// addrForms renders an address in the textual forms a URL, a target or a
// dialler may carry it in.
func addrForms(a netip.Addr, zone string) []string {
	forms := []string{a.String(), "[" + a.String() + "]", strings.ToUpper(a.String())}
	if a.Is4() {
		v4 := a.As4()
		m := netip.AddrFrom16(a.As16())
		forms = append(forms, m.String(), "[::ffff:"+a.String()+"]",
			fmt.Sprintf("::ffff:%x:%x", uint16(v4[0])<<8|uint16(v4[1]), uint16(v4[2])<<8|uint16(v4[3])),
			fmt.Sprintf("0:0:0:0:0:ffff:%s", a))
	} else {
		forms = append(forms, a.StringExpanded())
		if zone != "" {
			forms = append(forms, a.String()+"%"+zone, "["+a.String()+"%"+zone+"]")
		}
	}
	return forms
}

// FuzzPolicy is the policy's property: a host is allowed if and only if
// the address actually dialled is outside every denied network, for any
// textual form (IPv4, IPv4-mapped, expanded, upper case, bracketed,
// zoned); and a host name is allowed only if its IDNA-mapped form matches
// no denied pattern. Every entry point (AllowHost, the Dial wrapper,
// Control) must agree.
//
// Run: go test ./prober/ -run '^$' -fuzz FuzzPolicy -fuzztime 60s
func FuzzPolicy(f *testing.F) {
	seed := func(s string, zone string, text string) {
		a := netip.MustParseAddr(s).As16()
		f.Add(a[:], netip.MustParseAddr(s).Is4(), zone, text)
	}
	seed("169.254.169.254", "", "metadata.ⓘⓝⓣⓔⓡⓝⓐⓛ")
	seed("fd00:ec2::254", "x", "metadata。internal")
	seed("fe80::254", "lo", "metadata.ＩＮＴＥＲＮＡＬ")
	seed("127.0.0.1", "", "METADATA.")
	seed("192.0.2.1", "", "example.com")
	seed("2001:db8::1", "25", "[fe80::1%25lo]")
	seed("::1", "eth0", "１２７.０.０.１")
	pol := fuzzPolicy()
	p := NewPolicy(pol, nil)
	f.Fuzz(func(t *testing.T, raw []byte, is4 bool, zone, text string) {
		var b [16]byte
		copy(b[:], raw)
		a := netip.AddrFrom16(b)
		if is4 {
			a = netip.AddrFrom4([4]byte(b[12:16]))
		}
		if strings.ContainsAny(zone, "%[]") {
			zone = ""
		}
		want := deniedOracle(pol, a.As16())
		for _, form := range addrForms(a, zone) {
			if _, err := netip.ParseAddr(strings.Trim(form, "[]")); err != nil {
				continue // a zone netip cannot parse is not dialled either
			}
			checkHostAgrees(t, p, form, want)
		}
		checkAnyText(t, p, pol, text)
	})
}

// checkHostAgrees fails unless every entry point decides as the oracle did.
func checkHostAgrees(t *testing.T, p *Policy, form string, denied bool) {
	t.Helper()
	if err := p.AllowHost(form); (err != nil) != denied {
		t.Fatalf("AllowHost(%q) = %v, want denied=%v", form, err, denied)
	}
	hostport := net.JoinHostPort(strings.Trim(form, "[]"), "80")
	if err := p.Control("tcp", hostport, nil); (err != nil) != denied {
		t.Fatalf("Control(%q) = %v, want denied=%v", hostport, err, denied)
	}
	_, err := p.Dial(notDialled)(context.Background(), "tcp", hostport)
	if denied != errors.Is(err, ErrDenied) {
		t.Fatalf("Dial(%q) = %v, want denied=%v", hostport, err, denied)
	}
}

var errNotDialled = errors.New("not dialled")

func notDialled(context.Context, string, string) (net.Conn, error) { return nil, errNotDialled }

// checkAnyText: whatever text is, if the policy lets it through, then what
// a dialler makes of it (an address literal, or net/http's IDNA mapping of
// a name) is not denied.
func checkAnyText(t *testing.T, p *Policy, pol config.TargetPolicy, text string) {
	t.Helper()
	if p.AllowHost(text) != nil {
		return
	}
	h := strings.Trim(text, "[]")
	if a, err := netip.ParseAddr(h); err == nil {
		if deniedOracle(pol, a.WithZone("").Unmap().As16()) {
			t.Fatalf("AllowHost(%q) allowed a denied address", text)
		}
		return
	}
	// net/http maps only non-ASCII names (and fails the request when it
	// cannot); an ASCII name goes to the resolver as it is.
	mapped := h
	if !isASCIIText(h) {
		var err error
		if mapped, err = idna.Lookup.ToASCII(h); err != nil {
			t.Fatalf("AllowHost(%q) allowed a name net/http cannot map: %v", text, err)
		}
	}
	if a, err := netip.ParseAddr(mapped); err == nil && deniedOracle(pol, a.Unmap().As16()) {
		t.Fatalf("AllowHost(%q) allowed %q, a denied address", text, mapped)
	}
	name := strings.TrimRight(strings.ToLower(mapped), ".")
	if name == "metadata" || strings.HasSuffix(name, ".internal") {
		t.Fatalf("AllowHost(%q) allowed %q, a denied name", text, name)
	}
}

func isASCIIText(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
