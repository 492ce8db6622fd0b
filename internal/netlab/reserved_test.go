package netlab

import (
	"net/netip"
	"testing"
)

func TestSlotReservedSkipsHostAddresses(t *testing.T) {
	proxy := []netip.Addr{netip.MustParseAddr("203.0.113.80")}
	var free []int
	for s := 1; s <= Slots; s++ {
		if !slotReserved(s, proxy) {
			free = append(free, s)
		}
	}
	if len(free) != Slots-1 {
		t.Fatalf("one slot should cover 203.0.113.80, free slots: %v", free)
	}
	for _, s := range free {
		l := &Lab{slot: s}
		if l.poolPrefix(1).Contains(proxy[0]) {
			t.Errorf("slot %d covers the reserved address", s)
		}
	}
	if slotReserved(1, nil) {
		t.Error("no reserved address, no reserved slot")
	}
}
