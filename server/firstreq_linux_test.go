package server

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The Parker's listener keeps the listener's socket reachable: the
// admission gate still defers its accepts (TCP_DEFER_ACCEPT).
func TestParkerListenerDefersAccept(t *testing.T) {
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.NotFoundHandler()}
	p := NewParker(srv, nil)
	p.ReadRequests()
	LimitAdmission(srv, 2, AdmissionHold)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(p.Listener(l)) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		_ = p.Shutdown(ctx)
	})
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	waitFor(t, "TCP_DEFER_ACCEPT is not set on the Parker's listener", func() bool {
		_ = raw.Control(func(fd uintptr) { v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT) })
		return v > 0
	})
}
