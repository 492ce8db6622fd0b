package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// relay joins two TAP devices (one per node) with a user-space delay line:
// every Ethernet frame read from one TAP is written to the other after the
// configured delay. Because it works on whole frames it delays everything
// (ICMP, UDP, TCP, the routers' ICMP errors), which is what
// `tc netem delay` would do if this kernel had it.
//
// Each direction is one goroutine locked to its own OS thread, which it
// raises to SCHED_FIFO when allowed, and which only ever blocks in ppoll(2)
// on the TAP with a timeout equal to the time until the next frame is due.
// No Go timers or channels sit on the packet path, so a loaded machine (or
// a busy Go scheduler) adds little error to the delay.
type relay struct {
	taps [2]int // raw, non-blocking TAP fds: [0] on A, [1] on B
	stop int    // eventfd: readable once the relay is closing

	mu     sync.Mutex
	delay  [2]time.Duration // [0]: A→B, [1]: B→A
	jitter time.Duration

	wg   sync.WaitGroup
	once sync.Once
}

// relayQueue bounds the frames in flight per direction. At the rates a test
// uses (≤1 Gbit/s, ≤ 100 ms) it is never full; when it is, the relay stops
// reading and the kernel's TAP queue drops, like a full NIC ring.
const relayQueue = 16384

// relayPriority is the SCHED_FIFO priority of the relay threads: above every
// normal task, below the kernel's own real-time threads. The threads sleep in
// ppoll between frames, so they never hog a CPU.
const relayPriority = 10

func newRelay(a, b *End, delay, jitter time.Duration) (*relay, error) {
	r := &relay{taps: [2]int{-1, -1}, stop: -1, delay: [2]time.Duration{delay, delay}, jitter: jitter}
	for i, e := range []*End{a, b} {
		var fd int
		err := e.Node.Do(func() (err error) {
			fd, err = openTAP(e.Name)
			return err
		})
		if err != nil {
			r.close()
			return nil, fmt.Errorf("TAP %s in %s: %w", e.Name, e.Node.name, err)
		}
		r.taps[i] = fd
	}
	var err error
	if r.stop, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		r.close()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	r.wg.Add(2)
	go r.pump(0)
	go r.pump(1)
	return r, nil
}

// openTAP creates a TAP device in the calling thread's network namespace.
func openTAP(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return fd, nil
}

type frame struct {
	due  time.Time
	data []byte
	buf  *[]byte
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 65536); return &b }}

func (r *relay) setDelay(aToB, bToA time.Duration) {
	r.mu.Lock()
	r.delay = [2]time.Duration{aToB, bToA}
	r.mu.Unlock()
}

// pump moves frames from taps[dir] to the other TAP.
func (r *relay) pump(dir int) {
	defer r.wg.Done()
	// The thread is never unlocked: it may have real-time priority, so it
	// must die with this goroutine rather than return to the Go scheduler.
	runtime.LockOSThread()
	_ = unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: relayPriority}, 0)

	from, to := r.taps[dir], r.taps[1-dir]
	var q []frame
	var last time.Time
	fds := []unix.PollFd{{Fd: int32(from)}, {Fd: int32(r.stop), Events: unix.POLLIN}}
	for {
		var timeout *unix.Timespec
		if len(q) > 0 {
			ts := unix.NsecToTimespec(max(time.Until(q[0].due), 0).Nanoseconds())
			timeout = &ts
		}
		fds[0].Events = unix.POLLIN
		if len(q) >= relayQueue {
			fds[0].Events = 0 // back-pressure
		}
		if _, err := unix.Ppoll(fds, timeout, nil); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if fds[1].Revents != 0 || fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			for len(q) < relayQueue {
				bp := framePool.Get().(*[]byte)
				n, err := unix.Read(from, *bp)
				if err != nil {
					framePool.Put(bp)
					if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
						break
					}
					return
				}
				r.mu.Lock()
				d, j := r.delay[dir], r.jitter
				r.mu.Unlock()
				if j > 0 {
					d += rand.N(j)
				}
				due := time.Now().Add(d)
				if due.Before(last) { // never reorder
					due = last
				}
				last = due
				q = append(q, frame{due: due, data: (*bp)[:n], buf: bp})
			}
		}
		now := time.Now()
		i := 0
		for ; i < len(q) && !q[i].due.After(now); i++ {
			_, _ = unix.Write(to, q[i].data) // EIO while the interface is down: frame lost
			framePool.Put(q[i].buf)
			q[i] = frame{}
		}
		if i > 0 {
			q = append(q[:0], q[i:]...)
		}
	}
}

func (r *relay) close() {
	r.once.Do(func() {
		if r.stop >= 0 {
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(r.stop, one[:])
			r.wg.Wait()
			_ = unix.Close(r.stop)
		}
		for _, fd := range r.taps {
			if fd >= 0 {
				_ = unix.Close(fd)
			}
		}
	})
}
