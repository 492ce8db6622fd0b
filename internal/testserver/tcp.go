// Package testserver holds the loopback servers that several packages'
// tests share.
package testserver

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Serve runs handle for each connection ln accepts, with the connection's
// deadline set to timeout from its start, and closes it afterwards. When
// the test ends it closes ln and waits for every handler, so goroutine-leak
// checks stay clean. It returns ln's address.
func Serve(t testing.TB, ln net.Listener, timeout time.Duration, handle func(net.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(timeout))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TCP listens on a free loopback port (network "tcp", "tcp4" or "tcp6")
// and serves it with Serve.
func TCP(t testing.TB, network string, timeout time.Duration, handle func(net.Conn)) string {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, ln, timeout, handle)
}
