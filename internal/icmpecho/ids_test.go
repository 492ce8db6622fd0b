package icmpecho

import (
	"sync"
	"testing"
)

// Concurrent acquirers get distinct, non-zero identifiers; releasing them
// all empties the pool.
func TestIDAllocatorUnique(t *testing.T) {
	var a IDAllocator
	const workers, each = 8, 2000
	got := make([][]uint16, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				id, err := a.Acquire()
				if err != nil {
					t.Error(err)
					return
				}
				got[w] = append(got[w], id)
			}
		}()
	}
	wg.Wait()
	seen := map[uint16]bool{}
	for _, ids := range got {
		for _, id := range ids {
			if id == 0 || seen[id] {
				t.Fatalf("identifier %d handed out twice (or zero)", id)
			}
			seen[id] = true
		}
	}
	if a.InUse() != workers*each {
		t.Errorf("in use %d, want %d", a.InUse(), workers*each)
	}
	for id := range seen {
		a.Release(id)
	}
	a.Release(1) // releasing a free identifier is harmless
	if a.InUse() != 0 {
		t.Errorf("in use %d after releasing all", a.InUse())
	}
}

// A released identifier is not handed out again until the cursor has gone
// round all the others, so late replies to a finished probe cannot reach
// the next probe that happens to get its identifier.
func TestIDAllocatorNoQuickReuse(t *testing.T) {
	var a IDAllocator
	first, _ := a.Acquire()
	a.Release(first)
	for i := 0; i < 1<<16-2; i++ {
		id, err := a.Acquire()
		if err != nil {
			t.Fatal(err)
		}
		if id == first {
			t.Fatalf("identifier %d reused after %d others", first, i)
		}
		a.Release(id)
	}
	if id, _ := a.Acquire(); id != first {
		t.Errorf("after a full round got %d, want %d again", id, first)
	}
}

// All 65535 identifiers in use: the next probe is refused, with a reason;
// a release makes room, and the freed identifier is found wherever it is.
func TestIDAllocatorExhausted(t *testing.T) {
	var a IDAllocator
	for i := 0; i < 1<<16-1; i++ {
		if _, err := a.Acquire(); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	if _, err := a.Acquire(); err != ErrIDsExhausted {
		t.Fatalf("65536th acquire: %v, want %v", err, ErrIDsExhausted)
	}
	for _, free := range []uint16{1, 12345, 65535, 64, 63} {
		a.Release(free)
		if id, err := a.Acquire(); err != nil || id != free {
			t.Errorf("after releasing %d: got %d, %v", free, id, err)
		}
	}
}
