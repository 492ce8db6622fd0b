package netlab_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

// A lab changes nothing in the namespace the tests were started from: its
// client routes and guard table live in the tests' own namespace (Isolate),
// so no host address can be captured by a lab slot.
func TestLabLeavesTheHostNamespaceAlone(t *testing.T) {
	needTool(t, "nsenter", "util-linux")
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	p.LAN.B.Loss(0.01) // and a fault on the client's end, in its nft table
	host := fmt.Sprintf("/proc/%d/ns/net", os.Getppid())
	mine, _ := os.Readlink("/proc/self/ns/net")
	theirs, err := os.Readlink(host)
	if err != nil || mine == theirs {
		t.Fatalf("tests run in %s, started from %s (%v): not a namespace of their own", mine, theirs, err)
	}
	table := fmt.Sprintf("netlab_%d", p.Slot())
	inLab := func(routes string) (hits []string) {
		for _, line := range strings.Split(routes, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] != "default" {
				dst, err := netip.ParsePrefix(f[0])
				if err != nil {
					if a, err2 := netip.ParseAddr(f[0]); err2 == nil {
						dst = netip.PrefixFrom(a, a.BitLen())
					}
				}
				for _, mine := range p.Prefixes() {
					if dst.IsValid() && dst.Overlaps(mine) {
						hits = append(hits, line)
					}
				}
			}
		}
		return hits
	}
	for _, fam := range []string{"-4", "-6"} {
		own, err := exec.Command("ip", fam, "-o", "route", "show", "table", "all").Output()
		if err != nil || len(inLab(string(own))) == 0 {
			t.Errorf("no lab route in the tests' namespace (%v):\n%s", err, own)
		}
		out, err := exec.Command("nsenter", "--net="+host, "ip", fam, "-o", "route", "show", "table", "all").Output()
		if err != nil {
			t.Fatalf("reading the host's routes: %v", err)
		}
		if hits := inLab(string(out)); len(hits) > 0 {
			t.Errorf("the host's namespace routes into the lab's slot:\n%s", strings.Join(hits, "\n"))
		}
	}
	if own, _ := exec.Command("nft", "list", "tables").Output(); !strings.Contains(string(own), table) {
		t.Errorf("no table %s in the tests' namespace:\n%s", table, own)
	}
	out, _ := exec.Command("nsenter", "--net="+host, "nft", "list", "tables").Output()
	if strings.Contains(string(out), table) {
		t.Errorf("table %s is in the host's namespace:\n%s", table, out)
	}
}
