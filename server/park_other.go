//go:build !linux

package server

import (
	"errors"
	"net"
	"time"
)

// idlePoller needs epoll: elsewhere idle connections go back to net/http
// at once.
type idlePoller struct{}

func newIdlePoller(*Parker) *idlePoller { return nil }

func (*idlePoller) add(net.Conn) bool { return false }

func (*idlePoller) addFirst(net.Conn, time.Duration) bool { return false }

func (*idlePoller) close() {}

func (*idlePoller) wait() {}

func (*idlePoller) count() int { return 0 }

func (*idlePoller) watchHangup(*parked) bool { return false }

func (*idlePoller) unwatchHangup(*parked) {}

// recvNow is never called here: without an idle poller no connection is
// read by the Parker.
func recvNow(net.Conn, []byte, int) (int, error) { return 0, errors.ErrUnsupported }
