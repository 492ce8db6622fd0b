//go:build linux

// Package scratchns gives tests a throw-away network namespace: loopback
// up, net.ipv4.ping_group_range open to every group (a per-namespace
// sysctl, so the host's setting stays as it is). Tests use it to exercise
// datagram ("ping") ICMP sockets, which hosts often disallow.
package scratchns

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/isp-checker/isp-checker/internal/threadns"
)

var seq atomic.Int64

// NS is a scratch namespace.
type NS struct{ f *os.File }

// New creates a namespace, deleted when the test ends. It skips the test
// without root or iproute2, and fails with CI=true instead.
func New(t testing.TB) *NS {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("needs iproute2 (ip)")
	}
	name := fmt.Sprintf("scratchns-%d-%d", os.Getpid(), seq.Add(1))
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	for _, args := range [][]string{{"netns", "add", name}, {"-n", name, "link", "set", "lo", "up"},
		{"netns", "exec", name, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			skip("ip %v: %v %s", args, err, out)
		}
	}
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &NS{f}
}

// Do runs f on a goroutine locked to a thread inside the namespace and
// waits for it. Sockets f opens stay in the namespace; goroutines f starts
// run on other threads (in the host's namespace). f runs on another
// goroutine than the test's, so it may report with t.Error but not stop
// the test (t.Fatal, t.Skip).
func (n *NS) Do(f func()) error {
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		runtime.LockOSThread()
		// The thread returns to the scheduler only with its namespace
		// restored; otherwise it dies with this goroutine.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return
		}
		defer orig.Close()
		threadns.Entering()
		if err = unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			return
		}
		f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return <-done
}
