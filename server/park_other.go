//go:build !linux

package server

import "net"

// idlePoller needs epoll: elsewhere idle connections go back to net/http
// at once.
type idlePoller struct{}

func newIdlePoller(*Parker) *idlePoller { return nil }

func (*idlePoller) add(net.Conn) bool { return false }

func (*idlePoller) close() {}

func (*idlePoller) wait() {}

func (*idlePoller) count() int { return 0 }

func (*idlePoller) watchHangup(*parked) bool { return false }

func (*idlePoller) unwatchHangup(*parked) {}
