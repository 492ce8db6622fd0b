//go:build !linux

package server

import "net"

// requestQueued is false: without a look at the socket's receive queue no
// connection is known to wait on nothing from its client, so none is
// gated (see admission).
func requestQueued(net.Conn) bool { return false }

// deferAccept does nothing: TCP_DEFER_ACCEPT is Linux's.
func deferAccept(net.Listener) {}
