//go:build linux

package icmpecho

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/icmpwire"
)

// wantReceiveBuffer is the receive buffer the engine asks for. With
// CAP_NET_ADMIN (root) it gets it whatever net.core.rmem_max says; without,
// the kernel caps it at twice rmem_max, and the pacer (see scheduler) keeps
// bursts within what the buffer holds.
const wantReceiveBuffer = 32 << 20

// Receive batching: recvmmsg reads up to batch packets per system call, each
// cut to readLen bytes. Only headers and the payload's mark are read, so a
// big echo reply is truncated (MSG_TRUNC), which is harmless: the largest
// useful message is an IPv4 error quoting an IPv4 request with options,
// 60 + 8 + 60 + 8 + MarkLen bytes.
const (
	batch   = 64
	readLen = 256
	oobLen  = 256
)

// sockKey says which socket a probe needs: one per IP version and mode,
// and separate ones for probes that must not be fragmented (IPv4 sets DF
// per socket) or that send from a given source address (bound, so a source
// that is not local fails at once, and datagram sockets get their replies).
type sockKey struct {
	v6   bool
	mode Mode
	df   bool
	src  netip.Addr
}

// socket is one ICMP socket of an engine.
//
// It is a blocking socket outside Go's network poller, on purpose: on
// loopback a reply arrives during every sendmsg, and a socket in the
// poller would wake an idle runtime thread out of epoll_wait for each one
// (measured: one epoll_pwait per echo), which costs more than the echo.
// Sends and reads are non-blocking per call (MSG_DONTWAIT) and made as raw
// system calls (they take microseconds, and must not hand the processor
// off); the receive loop waits in ppoll(2) between batches, so packets that
// arrive while it pauses wake nothing.
type socket struct {
	key sockKey
	fd  int
	st  *stats
	// receiver: this socket runs a receive loop. Every raw socket of an IP
	// version sees the same ICMP messages, so only the first (unbound) one
	// reads them; the others block them all in the kernel.
	receiver bool
	// id is a datagram socket's identifier (its "port"); 0 for raw.
	id uint16
	// rcvbuf is the receive buffer the kernel granted, in bytes.
	rcvbuf int
	// timestamps is true when the kernel stamps received packets
	// (SO_TIMESTAMPNS); otherwise the receive loop reads the clock.
	timestamps bool
	// closed is set before the receive loop is woken for the last time
	// (shutdown), so it takes the wake-up as its end; stopped ends its
	// pause.
	closed  atomic.Bool
	stopped chan struct{}

	// The send scratch, used by the scheduler goroutine only.
	msg unix.Msghdr
	iov unix.Iovec
	sa4 unix.RawSockaddrInet4
	sa6 unix.RawSockaddrInet6
	oob [32]byte

	// The receive scratch, guarded by readMu: the receive loop reads, and
	// so does a probe that drains the queue before it gives up. A packet
	// is either still queued in the kernel or delivered with readMu held.
	readMu  sync.Mutex
	hdrs    [batch]mmsghdr
	iovs    [batch]unix.Iovec
	bufs    [batch][readLen]byte
	oobs    [batch][oobLen]byte
	names   [batch]unix.RawSockaddrInet6
	pkts    []received
	deliver func([]received)
	drops   uint32 // the kernel's drop count at the last packet read
}

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// openSocket opens an ICMP socket in the calling thread's network
// namespace. receiver says whether it reads (see socket.receiver). A
// refusal returns the bare errno (EPERM, EACCES), for the caller's advice.
func openSocket(k sockKey, receiver bool) (*socket, error) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if k.v6 {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	typ := unix.SOCK_RAW
	if k.mode == Unprivileged {
		typ = unix.SOCK_DGRAM
		receiver = true // the kernel hands each datagram socket its own replies
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, err
	}
	s := &socket{key: k, fd: fd, st: statsFor(k.v6, k.mode), receiver: receiver, stopped: make(chan struct{})}
	if err := s.setup(fd); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	s.st.sockets.Add(1)
	return s, nil
}

// DefaultTTL is the TTL (hop limit) every socket sends with; a request
// with another one carries it as a control message.
const DefaultTTL = 64

// setup sets the socket's options. Only binding can fail the socket; an
// option the kernel lacks is done without (see the package comment).
func (s *socket) setup(fd int) error {
	k := s.key
	if k.v6 {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, DefaultTTL)
	} else {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, DefaultTTL)
	}
	if k.df {
		if err := setDontFragment(fd, k.v6); err != nil {
			return err
		}
	}
	if s.receiver {
		s.timestamps = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, wantReceiveBuffer) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, wantReceiveBuffer)
		}
		s.rcvbuf, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		switch {
		case k.v6:
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
		case k.mode == Unprivileged:
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTTL, 1) // raw IPv4 reads the IP header
		}
	}
	if k.mode == Privileged {
		if err := setRawFilters(fd, k.v6, s.receiver); err != nil {
			return err
		}
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{}
	if k.v6 {
		sa = &unix.SockaddrInet6{}
	}
	if k.src.IsValid() {
		if k.v6 {
			sa = &unix.SockaddrInet6{Addr: k.src.As16()}
		} else {
			sa = &unix.SockaddrInet4{Addr: k.src.As4()}
		}
	}
	// A datagram socket is always bound, so the kernel picks its
	// identifier now (and says which); a raw one only to a source.
	if k.src.IsValid() || k.mode == Unprivileged {
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("binding to %s: %w", k.src, err)
		}
	}
	if k.mode == Unprivileged {
		switch got, _ := unix.Getsockname(fd); a := got.(type) {
		case *unix.SockaddrInet4:
			s.id = uint16(a.Port)
		case *unix.SockaddrInet6:
			s.id = uint16(a.Port)
		}
	}
	return nil
}

// setDontFragment makes every packet of the socket carry DF (IPv4) or
// forbids fragmenting it (IPv6); a packet bigger than the path MTU the
// kernel knows is refused with EMSGSIZE.
func setDontFragment(fd int, v6 bool) error {
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO); err != nil {
			return fmt.Errorf("setting IPV6_MTU_DISCOVER: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1); err != nil {
			return fmt.Errorf("setting IPV6_DONTFRAG: %w", err)
		}
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
		return fmt.Errorf("setting IP_MTU_DISCOVER: %w", err)
	}
	return nil
}

// icmpFilterOpt is ICMP_FILTER (SOL_RAW) and ICMPV6_FILTER (IPPROTO_ICMPV6).
const icmpFilterOpt = 1

// setRawFilters narrows what a raw socket receives, in the kernel. The ICMP
// type filter is checked before the kernel copies a packet to the socket,
// so it is the cheap first cut: a receiver takes echo replies and the
// errors an echo request can cause, any other raw socket of the engine
// nothing. The BPF program then drops echo replies without this process's
// magic number (another pinger's on the same host: every raw socket gets a
// copy of every reply), and anything the type filter cannot name (types
// above 31).
func setRawFilters(fd int, v6, receiver bool) error {
	accept := []uint8{icmpwire.ICMP4EchoReply, icmpwire.ICMP4DstUnreach, icmpwire.ICMP4TimeExceeded, icmpwire.ICMP4ParamProblem}
	if v6 {
		accept = []uint8{icmpwire.ICMP6EchoReply, icmpwire.ICMP6DstUnreach, icmpwire.ICMP6PacketTooBig, icmpwire.ICMP6TimeExceeded, icmpwire.ICMP6ParamProblem}
	}
	if !receiver {
		accept = nil
	}
	if v6 {
		var f unix.ICMPv6Filter
		for i := range f.Data {
			f.Data[i] = ^uint32(0) // a set bit blocks its type
		}
		for _, t := range accept {
			f.Data[t>>5] &^= 1 << (t & 31)
		}
		if err := unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, icmpFilterOpt, &f); err != nil {
			return fmt.Errorf("setting the ICMPv6 type filter: %w", err)
		}
	} else {
		mask := ^uint32(0)
		for _, t := range accept {
			mask &^= 1 << t
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_RAW, icmpFilterOpt, int(mask)); err != nil {
			return fmt.Errorf("setting the ICMP type filter: %w", err)
		}
	}
	prog := []bpf.Instruction{bpf.RetConstant{Val: 0}}
	if receiver {
		prog = replyFilter(v6, Magic())
	}
	return attachBPF(fd, prog)
}

// replyFilter accepts echo replies whose payload begins with magic, and
// the errors the type filter let through. An IPv4 raw socket's filter sees
// the IP header first (its length is the low nibble of byte 0, which
// LoadMemShift puts in X, so loads are indirect); an IPv6 one starts at the
// ICMPv6 header.
func replyFilter(v6 bool, magic uint32) []bpf.Instruction {
	const accept, drop = 0x40000, 0
	reply := uint32(icmpwire.ICMP4EchoReply)
	prog := []bpf.Instruction{bpf.LoadMemShift{Off: 0}}
	load := func(off uint32, size int) bpf.Instruction { return bpf.LoadIndirect{Off: off, Size: size} }
	if v6 {
		reply, prog = icmpwire.ICMP6EchoReply, nil
		load = func(off uint32, size int) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: size} }
	}
	return append(prog,
		load(0, 1),
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: reply, SkipFalse: 4},
		load(8, 4),
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: magic, SkipFalse: 1},
		bpf.RetConstant{Val: accept},
		bpf.RetConstant{Val: drop},
		// Not an echo reply: an error of a type the type filter passed,
		// or a type above 31 it cannot name.
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: 32, SkipFalse: 1},
		bpf.RetConstant{Val: accept},
		bpf.RetConstant{Val: drop},
	)
}

func attachBPF(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}); err != nil {
		return fmt.Errorf("attaching the socket filter: %w", err)
	}
	return nil
}

// stop wakes the receive loop for the last time; once it (and the
// scheduler) have returned, close releases the descriptor.
func (s *socket) stop() {
	s.closed.Store(true)
	close(s.stopped)                      // ends a pause
	_ = unix.Shutdown(s.fd, unix.SHUT_RD) // ENOTCONN, but it wakes ppoll
}

func (s *socket) close() {
	_ = unix.Close(s.fd)
	s.st.sockets.Add(-1)
}

// send sends one echo request (without IP header) to dst with a TTL (hop
// limit; 0: DefaultTTL). Only the scheduler goroutine sends.
func (s *socket) send(b []byte, dst netip.Addr, scope uint32, ttl int) error {
	s.iov.Base = &b[0]
	s.iov.SetLen(len(b))
	s.msg = unix.Msghdr{Iov: &s.iov}
	s.msg.SetIovlen(1)
	if s.key.v6 {
		s.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.As16(), Scope_id: scope}
		s.msg.Name = (*byte)(unsafe.Pointer(&s.sa6))
		s.msg.Namelen = unix.SizeofSockaddrInet6
	} else {
		s.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.As4()}
		s.msg.Name = (*byte)(unsafe.Pointer(&s.sa4))
		s.msg.Namelen = unix.SizeofSockaddrInet4
	}
	if ttl > 0 && ttl != DefaultTTL {
		level, typ := unix.IPPROTO_IP, unix.IP_TTL
		if s.key.v6 {
			level, typ = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
		}
		h := (*unix.Cmsghdr)(unsafe.Pointer(&s.oob[0]))
		h.Level, h.Type = int32(level), int32(typ)
		h.SetLen(unix.CmsgLen(4))
		*(*int32)(unsafe.Pointer(&s.oob[unix.CmsgLen(0)])) = int32(ttl)
		s.msg.Control = &s.oob[0]
		s.msg.SetControllen(unix.CmsgSpace(4))
	}
	// A full send buffer (a slow link draining a burst) is waited out
	// briefly; the pacer keeps bursts within the receive buffer, and the
	// send buffer is as large.
	for wait := time.Duration(0); ; {
		_, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msg)), unix.MSG_DONTWAIT)
		switch {
		case errno == 0:
			return nil
		case errno == unix.EINTR:
			continue
		case (errno == unix.EAGAIN || errno == unix.ENOBUFS) && wait < sendRetryFor:
			time.Sleep(sendRetryPause)
			wait += sendRetryPause
			continue
		}
		return os.NewSyscallError("sendmsg", errno)
	}
}

// A send the kernel refuses for a full buffer is retried every
// sendRetryPause for up to sendRetryFor.
const (
	sendRetryPause = 100 * time.Microsecond
	sendRetryFor   = 50 * time.Millisecond
)

// received is one packet as read: the ICMP message, where it came from,
// when the kernel got it, when the receive loop read it, and its TTL (hop
// limit; -1 when not known).
type received struct {
	icmp     []byte
	from     netip.Addr
	at, seen time.Time
	hopLimit int
}

// serve reads s until it is stopped, handing every batch of packets to
// s.deliver (whose slice is valid only during the call). After a batch that
// did not fill the buffers it pauses: round-trip times come from kernel
// timestamps, so reading later costs nothing in accuracy, and batches of
// many packets cost far fewer system calls and wake-ups than one each. A
// probe that ends while packets may be queued reads them itself (drain).
func (s *socket) serve() {
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	pause := time.NewTimer(time.Hour)
	defer pause.Stop()
	for {
		if _, err := unix.Ppoll(fds, nil, nil); err != nil && err != unix.EINTR {
			time.Sleep(time.Millisecond) // not expected; do not spin
		}
		if s.closed.Load() {
			return
		}
		n := s.readAll()
		if s.closed.Load() {
			return
		}
		if n < batch {
			pause.Reset(receivePause)
			select {
			case <-pause.C:
			case <-s.stopped:
				return
			}
		}
	}
}

// receivePause is how long the receive loop waits after a batch that did
// not fill its buffers. The pacer never sends more in 10 ms than half the
// receive buffer holds, so a pause this short cannot overflow it.
const receivePause = time.Millisecond

// drain reads and delivers whatever is queued now, without waiting: a
// probe about to give up calls it, so a reply the kernel received in time
// is not lost to the receive loop's pause (or to a busy machine).
func (s *socket) drain() { s.readAll() }

// readAll reads and delivers batches until the queue is empty, and returns
// the size of the last one.
func (s *socket) readAll() int {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		if n := s.readBatch(); n < batch {
			return n
		}
	}
}

// readBatch reads up to batch packets with one recvmmsg and delivers them
// (s.readMu held); it returns how many it read.
func (s *socket) readBatch() int {
	for i := range s.hdrs {
		s.iovs[i].Base = &s.bufs[i][0]
		s.iovs[i].SetLen(readLen)
		h := &s.hdrs[i].hdr
		*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&s.names[i])), Namelen: unix.SizeofSockaddrInet6, Iov: &s.iovs[i], Control: &s.oobs[i][0]}
		h.SetIovlen(1)
		h.SetControllen(oobLen)
	}
	var n uintptr
	var errno unix.Errno
	for {
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.hdrs[0])), batch, unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			break
		}
	}
	if errno != 0 {
		return 0 // EAGAIN: nothing queued (no other error is expected)
	}
	out := s.pkts[:0]
	now := time.Now()
	for i := 0; i < int(n); i++ {
		r, ok := s.parse(i)
		if !ok {
			continue
		}
		if r.at.IsZero() {
			r.at = now
		}
		r.seen = now
		out = append(out, r)
	}
	s.pkts = out
	s.deliver(out)
	return int(n)
}

// parse reads packet i of the last batch: its control messages (kernel
// timestamp, drop count, TTL) and, for raw IPv4, the IP header.
func (s *socket) parse(i int) (received, bool) {
	h := &s.hdrs[i]
	n := min(int(h.len), readLen)
	b := s.bufs[i][:n]
	r := received{hopLimit: -1}
	oob := s.oobs[i][:h.hdr.Controllen]
	for len(oob) >= unix.CmsgLen(0) {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		clen := int(c.Len)
		if clen < unix.CmsgLen(0) || clen > len(oob) {
			break
		}
		data := oob[unix.CmsgLen(0):clen]
		switch {
		case c.Level == unix.SOL_SOCKET && c.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			r.at = time.Unix(ts.Sec, ts.Nsec)
		case c.Level == unix.SOL_SOCKET && c.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
			// A running count of the socket's drops, on every packet.
			if d := binary.NativeEndian.Uint32(data); d != s.drops {
				s.st.queueDrops.Add(uint64(d - s.drops))
				s.drops = d
			}
		case (c.Level == unix.IPPROTO_IP && c.Type == unix.IP_TTL || c.Level == unix.IPPROTO_IPV6 && c.Type == unix.IPV6_HOPLIMIT) && len(data) >= 4:
			r.hopLimit = int(binary.NativeEndian.Uint32(data))
		}
		oob = oob[min(unix.CmsgSpace(clen-unix.CmsgLen(0)), len(oob)):]
	}
	name := &s.names[i]
	if name.Family == unix.AF_INET6 {
		r.from = netip.AddrFrom16(name.Addr).Unmap()
	} else {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
		r.from = netip.AddrFrom4(sa.Addr)
	}
	if !s.key.v6 && s.key.mode == Privileged {
		// A raw IPv4 socket reads the IP header too.
		if len(b) < 20 || b[0]>>4 != 4 {
			return r, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return r, false
		}
		r.hopLimit = int(b[8])
		b = b[ihl:]
	}
	r.icmp = b
	return r, true
}
