package prober

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// DefaultMemoryBudget is the process-wide budget for buffers whose size a
// target chooses (see MemoryBudget).
const DefaultMemoryBudget = 128 << 20

// ErrMemoryBudget wraps every refusal for want of budget.
var ErrMemoryBudget = errors.New("memory budget exhausted")

// MemoryBudget bounds the memory that buffers sized by targets take across
// all concurrent probes: response bodies held to match regexps or CEL
// against, DNS over HTTPS answers, probe logs. A probe reserves what it
// holds as it grows, up to its module's own limit; past the budget it fails
// with ErrMemoryBudget instead of the process growing. Without it, 20
// probes of an endless body with a body regexp took 680 MiB.
type MemoryBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
}

var budget = &MemoryBudget{limit: DefaultMemoryBudget}

// Budget is the process-wide memory budget.
func Budget() *MemoryBudget { return budget }

// SetLimit sets the budget (bytes, at least 1 MiB); reservations already
// made stay.
func (b *MemoryBudget) SetLimit(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = max(n, 1<<20)
}

// Limit and Used report the budget and what is reserved now.
func (b *MemoryBudget) Limit() int64 { b.mu.Lock(); defer b.mu.Unlock(); return b.limit }

// Used is how many bytes are reserved now.
func (b *MemoryBudget) Used() int64 { b.mu.Lock(); defer b.mu.Unlock(); return b.used }

// Reserve takes n bytes of the budget, or fails without taking any.
func (b *MemoryBudget) Reserve(n int64) error {
	if b.TryReserve(n) {
		return nil
	}
	return fmt.Errorf("%w: %d bytes needed, %d of %d in use by probes running now; raise --probes.memory-budget or run fewer at once",
		ErrMemoryBudget, n, b.Used(), b.Limit())
}

// TryReserve is Reserve for a caller that has a smaller fallback and no
// use for the error: with thousands of probes at once, most probes' logs
// fall back, and formatting the refusal cost more than keeping the log.
func (b *MemoryBudget) TryReserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

// Release returns n bytes taken by Reserve.
func (b *MemoryBudget) Release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used = max(b.used-n, 0)
}

// bodyChunk is the unit a held body grows by. Fixed-size pooled chunks
// leave no garbage behind as a body grows (a doubling slice leaves half
// its peak), so the heap stays near what the budget allows.
const bodyChunk = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, bodyChunk); return &b }}

// heldBody is a response body held in memory reserved from the budget.
type heldBody struct {
	budget   *MemoryBudget
	chunks   []*[]byte
	flat     []byte // the body in one slice, once bytes made it
	n        int64
	reserved int64
}

// errBodyLimit is returned by read when the body has more than limit bytes.
var errBodyLimit = errors.New("body larger than its limit")

// read holds all of r, up to limit bytes: it fails with errBodyLimit when
// there is more, and with ErrMemoryBudget when the budget runs out first.
func (h *heldBody) read(r io.Reader, limit int64) error {
	for {
		if h.n == int64(len(h.chunks))*bodyChunk {
			if h.n > limit {
				return errBodyLimit
			}
			if err := h.budget.Reserve(bodyChunk); err != nil {
				return err
			}
			h.reserved += bodyChunk
			h.chunks = append(h.chunks, chunkPool.Get().(*[]byte))
		}
		c := *h.chunks[len(h.chunks)-1]
		k, err := r.Read(c[h.n%bodyChunk:])
		h.n += int64(k)
		if h.n > limit {
			return errBodyLimit
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// bytes returns the held body as one slice, for regexp.Match (which is
// much faster on a slice than on a reader: a literal prefix becomes a
// memchr) and json.Unmarshal. A body of one chunk is that chunk; a longer
// one is copied once into a slice reserved from the budget, and its chunks
// go back to the pool.
func (h *heldBody) bytes() ([]byte, error) {
	if len(h.chunks) == 1 {
		return (*h.chunks[0])[:h.n], nil
	}
	if h.flat != nil || h.n == 0 {
		return h.flat, nil
	}
	if err := h.budget.Reserve(h.n); err != nil {
		return nil, err
	}
	h.reserved += h.n
	flat := make([]byte, 0, h.n)
	left := h.n
	for _, c := range h.chunks {
		k := min(left, bodyChunk)
		flat = append(flat, (*c)[:k]...)
		left -= k
		chunkPool.Put(c)
		h.budget.Release(bodyChunk)
		h.reserved -= bodyChunk
	}
	h.chunks, h.flat = nil, flat
	return flat, nil
}

// release returns the chunks to the pool and the memory to the budget.
func (h *heldBody) release() {
	for _, c := range h.chunks {
		chunkPool.Put(c)
	}
	h.chunks, h.flat = nil, nil
	h.budget.Release(h.reserved)
	h.reserved = 0
}
