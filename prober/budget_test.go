package prober

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/testserver"
)

func TestMemoryBudget(t *testing.T) {
	b := &MemoryBudget{limit: 1 << 20}
	if err := b.Reserve(600 << 10); err != nil {
		t.Fatal(err)
	}
	err := b.Reserve(600 << 10)
	if !errors.Is(err, ErrMemoryBudget) || !strings.Contains(err.Error(), "--probes.memory-budget") {
		t.Fatalf("over-budget reservation: %v", err)
	}
	if b.Used() != 600<<10 {
		t.Fatalf("a refused reservation took memory: used %d", b.Used())
	}
	if b.TryReserve(600<<10) || b.Used() != 600<<10 {
		t.Fatalf("TryReserve over the budget took it: used %d", b.Used())
	}
	if !b.TryReserve(400<<10) || b.Used() != 1000<<10 {
		t.Fatalf("TryReserve within the budget: used %d", b.Used())
	}
	b.Release(1000 << 10)
	if b.Used() != 0 {
		t.Fatalf("used %d after release", b.Used())
	}
}

// A held body is the bytes read, reserved chunk by chunk and returned.
func TestHeldBody(t *testing.T) {
	b := &MemoryBudget{limit: 8 * bodyChunk}                // room for the chunks and the flat copy
	data := bytes.Repeat([]byte("0123456789"), bodyChunk/4) // 2.5 chunks
	h := &heldBody{budget: b}
	if err := h.read(bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if b.Used() != 3*bodyChunk {
		t.Errorf("reserved %d, want 3 chunks", b.Used())
	}
	got, err := h.bytes()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("held %d bytes (%v), want %d equal ones", len(got), err, len(data))
	}
	if b.Used() != int64(len(data)) {
		t.Errorf("reserved %d once flattened, want the body's %d bytes", b.Used(), len(data))
	}
	h.release()
	if b.Used() != 0 {
		t.Errorf("used %d after release", b.Used())
	}

	over := &heldBody{budget: b}
	if err := over.read(bytes.NewReader(data), int64(len(data))-1); !errors.Is(err, errBodyLimit) {
		t.Errorf("one byte over the limit: %v", err)
	}
	over.release()
	small := &MemoryBudget{limit: 2 * bodyChunk}
	starved := &heldBody{budget: small}
	if err := starved.read(bytes.NewReader(data), 1<<30); !errors.Is(err, ErrMemoryBudget) {
		t.Errorf("past the budget: %v", err)
	}
	starved.release()
	if small.Used() != 0 {
		t.Errorf("used %d after a refused read", small.Used())
	}
}

// A body-matching probe that finds the budget spent fails saying so, and
// gives back what it took.
func TestHTTPBodyOverMemoryBudget(t *testing.T) {
	old := budget.Limit()
	budget.SetLimit(1 << 20)
	defer budget.SetLimit(old)
	body := strings.Repeat("x", 3<<20)
	s := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }))
	res := httpTestRun(t, s.URL, httpTestModule(t, "fail_if_body_not_matches_regexp: [never]\nbody_size_limit: 8MiB"))
	httpTestCheck(t, res, "Not enough memory to hold the response body for matching: memory budget exhausted")
	if budget.Used() != 0 {
		t.Errorf("budget used %d after the probe", budget.Used())
	}
	// Within the budget the same module matches as before.
	budget.SetLimit(16 << 20)
	res = httpTestRun(t, s.URL, httpTestModule(t, "fail_if_body_matches_regexp: ['xy']\nbody_size_limit: 8MiB"))
	httpTestCheck(t, res, "")
}

// A server that sends endless response headers fails the probe at 1 MiB
// (net/http alone would read 10 MiB), and the probe gives back what it
// reserved.
func TestHTTPHugeResponseHeaders(t *testing.T) {
	addr := testserver.TCP(t, "tcp4", 10*time.Second, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Junk: " + strings.Repeat("j", 1000) + "\r\n")
		for range 12 << 10 { // 12 MiB of headers, never ending them
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	})
	res := httpTestRun(t, "http://"+addr+"/", httpTestModule(t, ""))
	httpTestCheck(t, res, "response headers are larger than 1048576 bytes")
	if strings.Contains(res.Error, "TLS") {
		t.Errorf("a plain-http probe's error speaks of TLS: %q", res.Error)
	}
	if budget.Used() != 0 {
		t.Errorf("budget used %d after the probe", budget.Used())
	}
	// The throughput prober's streams are bounded the same way.
	m := probeTestModule(t, "throughput", 0, redirectModuleYAML("throughput"))
	tp := probeTestRun[*ThroughputResult](t, 10*time.Second, "http://"+addr+"/", m)
	probeTestCheck(t, tp, "response headers are larger than 1048576 bytes")
	if strings.Contains(tp.Error, "TLS") {
		t.Errorf("plain HTTP, yet the error names TLS: %q", tp.Error)
	}
	if budget.Used() != 0 {
		t.Errorf("budget used %d after the throughput probe", budget.Used())
	}
}
