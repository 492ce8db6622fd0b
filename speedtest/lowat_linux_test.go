package speedtest

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// notSentLowat reads TCP_NOTSENT_LOWAT of the server's side of the only
// connection s has.
func notSentLowat(t *testing.T, s *rpmServer) int {
	t.Helper()
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	if len(s.conns.conns) != 1 {
		t.Fatalf("%d server connections, want 1", len(s.conns.conns))
	}
	nc := s.conns.conns[0]
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	raw, err := nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT) }); err != nil || serr != nil {
		t.Fatalf("getsockopt: %v %v", err, serr)
	}
	return v
}

// lowatDuring runs a large download read in 16 KiB pieces every pause (0:
// as fast as it goes) and reports the server socket's TCP_NOTSENT_LOWAT
// after a second, when the rate has settled: its last value, and the
// largest of 50 samples taken 10 ms apart from then on.
func lowatDuring(t *testing.T, o Options, pause time.Duration) (last, largest int) {
	t.Helper()
	s := newRPMServer(t, o, true)
	tr := s.transport()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+RPMLargePath, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n atomic.Int64
	done := make(chan struct{})
	go func() { defer close(done); _ = drain(ctx, resp.Body, pause, &n) }()
	time.Sleep(time.Second)
	read := n.Load()
	for i := range 50 {
		last = notSentLowat(t, s)
		if i == 0 || last > largest {
			largest = last
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("read %d bytes in 1 s (pause %v): TCP_NOTSENT_LOWAT %d, at most %d", read, pause, last, largest)
	cancel()
	<-done
	return last, largest
}

// Draft 09: a server keeps about 5 ms of the connection's rate unsent.
// Read at about 3 MB/s (16 KiB per 5 ms), 5 ms is 16 KB: the floor of one
// HTTP/2 frame, 16 KiB. Read as fast as loopback goes (hundreds of MB/s;
// ≥ 6.5 MB/s on any machine that runs the suite), it is more. The rate
// is taken over 100 ms windows, and on a machine busy with other tests
// one window may fall below 6.5 MB/s, so the fast reader's figure is the
// largest of half a second of samples.
func TestLargeBoundsUnsentData(t *testing.T) {
	if v, _ := lowatDuring(t, Options{}, 5*time.Millisecond); v != minLowat {
		t.Errorf("paced reader: TCP_NOTSENT_LOWAT %d, want the floor %d", v, minLowat)
	}
	if _, v := lowatDuring(t, Options{}, 0); v <= 2*minLowat || v > maxLowat {
		t.Errorf("fast reader: TCP_NOTSENT_LOWAT %d, want 5 ms of a fast rate, in (%d, %d]", v, 2*minLowat, maxLowat)
	}
	// Turned off: the kernel's default stays.
	def := -1
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_notsent_lowat"); err == nil {
		if d, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			def = int(int32(d)) // the option reads back as a C int
		}
	}
	if v, _ := lowatDuring(t, Options{SendBufferTime: -1}, 5*time.Millisecond); v != def {
		t.Errorf("SendBufferTime < 0: TCP_NOTSENT_LOWAT %d, want the kernel's default %d", v, def)
	}
}
