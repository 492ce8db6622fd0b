package icmpecho

import (
	"errors"
	"math/bits"
	"math/rand/v2"
	"sync"
)

// ErrIDsExhausted is returned when every echo identifier is in use.
var ErrIDsExhausted = errors.New("all 65535 ICMP echo identifiers are in use by running probes")

// IDs is the process's pool of echo identifiers, shared by the engine's
// probes and by the traceroute and mtu probers' own raw sockets, so no two
// of them running at once use the same identifier.
var IDs IDAllocator

// IDAllocator hands out ICMP echo identifiers that are unique among the
// probes running in this process. Raw sockets see every echo reply the host
// receives, and the engine finds a reply's probe by its identifier: random
// 16-bit identifiers would collide often (birthday bound: 50 % at ~300
// probes), and a NAT gateway that maps echo flows by identifier makes a
// collision worse.
//
// Identifiers are taken in order from a cursor that starts at a random
// value (so two exporters started together, behind one NAT, do not march in
// step) and only moves forward, so a released identifier is reused only
// after the other 65534 were handed out: a late reply to a finished probe
// cannot land in a new one that happens to get the same identifier (and the
// token in the payload would reject it anyway). Identifier 0 is never used.
type IDAllocator struct {
	mu     sync.Mutex
	used   [1 << 16 / 64]uint64
	next   uint16
	inUse  int
	seeded bool
}

// Acquire returns a free identifier (1…65535) and marks it used.
func (a *IDAllocator) Acquire() (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.seeded {
		a.next = uint16(rand.N(1<<16-1) + 1)
		a.seeded = true
	}
	if a.inUse >= 1<<16-1 {
		return 0, ErrIDsExhausted
	}
	id := a.next
	for {
		if id == 0 {
			id = 1
		}
		w, bit := id/64, uint64(1)<<(id%64)
		if a.used[w]&bit == 0 {
			break
		}
		// Skip whole words that are full.
		if a.used[w] == ^uint64(0) {
			id = (w + 1) * 64 // wraps to 0 after the last word
			continue
		}
		// Next free bit at or above id in this word, if any.
		free := ^a.used[w] &^ (bit - 1)
		if free != 0 {
			id = w*64 + uint16(bits.TrailingZeros64(free))
			continue
		}
		id = (w + 1) * 64
	}
	a.used[id/64] |= 1 << (id % 64)
	a.inUse++
	a.next = id + 1
	return id, nil
}

// Release returns id to the pool. Releasing a free identifier is a no-op.
func (a *IDAllocator) Release(id uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, bit := id/64, uint64(1)<<(id%64)
	if a.used[w]&bit != 0 {
		a.used[w] &^= bit
		a.inUse--
	}
}

// InUse is the number of identifiers handed out and not yet released.
func (a *IDAllocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse
}
