// Package bpftest runs a socket filter on a packet in x/net/bpf's virtual
// machine, so a filter's unit test needs neither a socket nor privileges.
// It is for tests only.
package bpftest

import (
	"testing"

	"golang.org/x/net/bpf"
)

// Expect runs prog on pkt (as the socket's filter would see it: from the
// IP header on an IPv4 raw socket, from the ICMPv6 header on an IPv6 one)
// and fails the test, naming the case, unless the filter passes the packet
// exactly when pass is true.
func Expect(t testing.TB, name string, prog []bpf.Instruction, pkt []byte, pass bool) {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if (n > 0) != pass {
		t.Errorf("%s: filter returned %d, want pass %v", name, n, pass)
	}
}
