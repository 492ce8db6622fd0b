package prober

import (
	"sync"
	"testing"
)

// Concurrent acquirers get distinct, non-zero identifiers; releasing them
// all empties the pool.
func TestICMPIDAllocatorUnique(t *testing.T) {
	var a icmpIDAllocator
	const workers, each = 8, 2000
	got := make([][]uint16, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				id, err := a.acquire()
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
	if a.inUseCount() != workers*each {
		t.Errorf("in use %d, want %d", a.inUseCount(), workers*each)
	}
	for id := range seen {
		a.release(id)
	}
	a.release(1) // releasing a free identifier is harmless
	if a.inUseCount() != 0 {
		t.Errorf("in use %d after releasing all", a.inUseCount())
	}
}

// A released identifier is not handed out again until the cursor has gone
// round all the others, so late replies to a finished probe cannot reach
// the next probe that happens to get its identifier.
func TestICMPIDAllocatorNoQuickReuse(t *testing.T) {
	var a icmpIDAllocator
	first, _ := a.acquire()
	a.release(first)
	for i := 0; i < 1<<16-2; i++ {
		id, err := a.acquire()
		if err != nil {
			t.Fatal(err)
		}
		if id == first {
			t.Fatalf("identifier %d reused after %d others", first, i)
		}
		a.release(id)
	}
	if id, _ := a.acquire(); id != first {
		t.Errorf("after a full round got %d, want %d again", id, first)
	}
}

// All 65535 identifiers in use: the next probe is refused, with a reason;
// a release makes room, and the freed identifier is found wherever it is.
func TestICMPIDAllocatorExhausted(t *testing.T) {
	var a icmpIDAllocator
	for i := 0; i < 1<<16-1; i++ {
		if _, err := a.acquire(); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
	}
	if _, err := a.acquire(); err != errICMPIDsExhausted {
		t.Fatalf("65536th acquire: %v, want %v", err, errICMPIDsExhausted)
	}
	for _, free := range []uint16{1, 12345, 65535, 64, 63} {
		a.release(free)
		if id, err := a.acquire(); err != nil || id != free {
			t.Errorf("after releasing %d: got %d, %v", free, id, err)
		}
	}
}
