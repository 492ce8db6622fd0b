package server

import (
	"slices"
	"testing"
)

// The history lists the last limit probes newest first, across the ring's
// wrap, and forgets the older ones.
func TestHistoryKeepsTheLastProbes(t *testing.T) {
	h := NewHistory(3)
	for n := range 8 {
		h.Add(&Probe{})
		var ids []int64
		for _, p := range h.List() {
			ids = append(ids, p.ID)
		}
		var want []int64
		for id := int64(n); id >= 0 && id > int64(n)-3; id-- {
			want = append(want, id)
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("after %d probes: %v, want %v", n+1, ids, want)
		}
	}
	if _, ok := h.Get(4); ok {
		t.Error("probe 4 still remembered after 8 probes with a limit of 3")
	}
	if p, ok := h.Get(5); !ok || p.ID != 5 {
		t.Errorf("probe 5: %v %v", p, ok)
	}
	none := NewHistory(0)
	none.Add(&Probe{})
	if len(none.List()) != 0 {
		t.Error("a history of 0 remembered a probe")
	}
}
