//go:build linux

package icmpecho

import (
	"math/rand/v2"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/threadns"
)

// magic marks every echo request of this process (the first four payload
// bytes), so the kernel filter and the receive loop can tell its replies
// from other pingers' on the same host. Random per process: two exporters
// on one host (or behind one NAT) ignore each other's replies.
var magic = rand.Uint32() | 1

// Magic is this process's mark.
func Magic() uint32 { return magic }

// nsID identifies a network namespace: the inode number of its nsfs file,
// as /proc/thread-self/ns/net names it ("net:[4026531840]").
type nsID uint64

// currentNS is the network namespace of the calling thread: sockets opened
// on it live there, so the engine keeps one per namespace (a test lab runs
// probes on threads inside other namespaces). readlink is the cheapest way
// to ask (4 µs, stat 7 µs, more under load), so a process whose threads
// never left its namespace (threadns) asks once.
func currentNS() nsID {
	if !threadns.MayDiffer() {
		processNS.once.Do(func() { processNS.id = threadNS() })
		return processNS.id
	}
	return threadNS()
}

var processNS struct {
	once sync.Once
	id   nsID
}

func threadNS() nsID {
	var buf [32]byte
	n, err := unix.Readlink("/proc/thread-self/ns/net", buf[:])
	if err != nil {
		return 0
	}
	var id nsID
	for _, c := range buf[:n] {
		if c >= '0' && c <= '9' {
			id = id*10 + nsID(c-'0')
		}
	}
	return id
}

// registry holds the running engines, one per network namespace. An engine
// starts with its first probe and stops (closing its sockets and ending its
// goroutines) when its last probe ends, so an idle process holds no socket
// and no goroutine.
var registry struct {
	mu      sync.Mutex
	engines map[nsID]*engine
}

// engine is the echo engine of one network namespace: its sockets, the
// table of running probes by identifier, the receive loops and the send
// scheduler.
type engine struct {
	ns   nsID
	refs int // guarded by registry.mu

	mu    sync.Mutex // guards socks
	socks map[sockKey]*socket

	tableMu sync.RWMutex
	table   map[uint16]*Probe

	sched     scheduler
	deadlines deadlines // of the probes waiting with OnDone
	wg        sync.WaitGroup
}

// acquire returns the calling thread's namespace's engine, starting it if
// needed; every acquire is matched by a release.
func acquire() *engine {
	ns := currentNS()
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.engines == nil {
		registry.engines = map[nsID]*engine{}
	}
	e := registry.engines[ns]
	if e == nil {
		e = &engine{ns: ns, socks: map[sockKey]*socket{}, table: map[uint16]*Probe{}}
		e.sched.init()
		e.deadlines.init()
		e.wg.Add(2)
		go e.sched.run(&e.wg)
		go e.deadlines.run(&e.wg)
		registry.engines[ns] = e
	}
	e.refs++
	return e
}

// release drops a reference; the last one stops the engine. It stops under
// the registry lock, so a probe starting meanwhile in the same namespace
// gets a new engine only once the old one's sockets are closed (two raw
// sockets would each see the other's replies).
func (e *engine) release() {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	e.refs--
	if e.refs > 0 {
		return
	}
	delete(registry.engines, e.ns)
	// The scheduler and the receive loops use the descriptors: stop them
	// all before closing any.
	e.sched.shutdown()
	e.deadlines.shutdown()
	e.mu.Lock()
	socks := e.socks
	e.socks = nil
	e.mu.Unlock()
	for _, s := range socks {
		s.stop()
	}
	e.wg.Wait()
	for _, s := range socks {
		s.close()
	}
}

// socket returns the engine's socket for k, opening it on the calling
// thread if needed. Raw sockets of one IP version all see the same
// messages, so the unbound, fragmentable one is always opened first and is
// the only one that reads.
func (e *engine) socket(k sockKey) (*socket, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.socks[k]; s != nil {
		return s, nil
	}
	if k.mode == Privileged {
		rk := sockKey{v6: k.v6, mode: Privileged}
		if e.socks[rk] == nil {
			if err := e.open(rk, true); err != nil {
				return nil, err
			}
		}
		if k == rk {
			return e.socks[rk], nil
		}
	}
	if err := e.open(k, false); err != nil {
		return nil, err
	}
	return e.socks[k], nil
}

// open opens a socket (e.mu held) and starts its receive loop.
func (e *engine) open(k sockKey, receiver bool) error {
	s, err := openSocket(k, receiver)
	if err != nil {
		return err
	}
	e.socks[k] = s
	if s.receiver {
		s.deliver = func(pkts []received) { e.dispatch(s, pkts) }
		e.sched.fit(s.rcvbuf)
		e.wg.Add(1)
		go e.receive(s)
	}
	return nil
}

// drain reads what is queued on the socket that receives s's replies.
func (e *engine) drain(s *socket) {
	if !s.receiver {
		e.mu.Lock()
		s = e.socks[sockKey{v6: s.key.v6, mode: Privileged}]
		e.mu.Unlock()
	}
	if s != nil {
		s.drain()
	}
}

// receive reads s until it is closed and hands each packet to its probe.
func (e *engine) receive(s *socket) {
	defer e.wg.Done()
	s.serve()
}

// dispatch matches packets to probes. An echo reply names its probe by
// the token in its payload (a datagram socket's replies all carry the
// socket's identifier); an error names it by the quoted request's
// identifier (raw sockets only: the probe's own), checked against the
// quoted destination and, when the router quoted that much, the mark.
func (e *engine) dispatch(s *socket, pkts []received) {
	e.tableMu.RLock()
	defer e.tableMu.RUnlock()
	for i := range pkts {
		r := &pkts[i]
		m, ok := parseMessage(s.key.v6, r.icmp)
		if !ok {
			continue
		}
		mg, token, marked := mark(m.data)
		if m.kind == KindEchoReply {
			if !marked || mg != magic {
				continue // another pinger's (only a raw socket without its filter sees those)
			}
			p := e.table[uint16(token>>16)]
			if p == nil || p.token != token || s.key.mode == Privileged && m.id != p.id {
				s.st.notRunning(token)
				continue
			}
			p.onReply(m.seq, r)
			continue
		}
		if s.key.mode != Privileged {
			continue
		}
		p := e.table[m.id]
		if p == nil || m.qDst != p.dst || marked && (mg != magic || token != p.token) {
			continue // about another process's echo request
		}
		p.onError(m, r)
	}
}

// register and unregister add and remove a running probe.
func (e *engine) register(p *Probe) {
	e.tableMu.Lock()
	e.table[p.id] = p
	e.tableMu.Unlock()
}

func (e *engine) unregister(p *Probe) {
	e.tableMu.Lock()
	if e.table[p.id] == p {
		delete(e.table, p.id)
	}
	e.tableMu.Unlock()
	ended.add(p.token)
}

// ended remembers the tokens of recently ended probes, so a reply that
// names none of the running probes can be told late (its probe gave up on
// it) from foreign.
var ended endedTokens

type endedTokens struct {
	mu   sync.Mutex
	set  map[uint32]struct{}
	ring [16384]uint32
	next int
}

func (t *endedTokens) add(token uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set == nil {
		t.set = make(map[uint32]struct{}, len(t.ring))
	}
	if old := t.ring[t.next]; old != 0 {
		delete(t.set, old)
	}
	t.ring[t.next] = token
	t.set[token] = struct{}{}
	t.next = (t.next + 1) % len(t.ring)
}

func (t *endedTokens) has(token uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.set[token]
	return ok
}

// notRunning counts a marked reply that names no running probe.
func (s *stats) notRunning(token uint32) {
	if ended.has(token) {
		s.late.Add(1)
	} else {
		s.foreign.Add(1)
	}
}
