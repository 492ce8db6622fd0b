package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Isolate runs the test binary again in a network namespace of its own and
// exits with its status; in that copy it brings loopback up and returns.
// Call it first in the TestMain of every package whose tests build labs:
//
//	func TestMain(m *testing.M) { netlab.Isolate(); goleak.VerifyTestMain(m) }
//
// The lab's client is the test process's own namespace: Attach routes the
// lab's subnets there and New adds a guard table that drops anything for
// the slot's prefixes not leaving by a lab interface. In the host's
// namespace those would take over the host's own traffic to any address in
// the slot — and which addresses a host reaches behind its default route
// (its package registries, on this project's machines 203.0.113.80) cannot
// be known without asking its resolver, which tests must not do. In a
// namespace of its own the client's routes and guard touch nothing of the
// host, so choosing a slot needs nothing from the host at all. The package's
// other tests gain too: only loopback and labs are reachable from there.
//
// Without root it does nothing (New skips lab tests as before). When the
// namespace cannot be made, it says why and the tests run in place; New then
// skips (fails with CI=true), since the lab would have to use the host's
// namespace.
func Isolate() {
	if parent := os.Getenv(isolatedEnv); parent != "" {
		if err := enterIsolated(parent); err != nil {
			fmt.Fprintf(os.Stderr, "netlab: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if os.Geteuid() != 0 {
		return
	}
	code, err := runIsolated()
	if err != nil {
		fmt.Fprintf(os.Stderr, "netlab: cannot run the tests in a network namespace of their own (%v); lab tests will not run\n", err)
		return
	}
	os.Exit(code)
}

// isolatedEnv names, in the copy, the namespace it was started from.
const (
	isolatedEnv  = "NETLAB_ISOLATED_FROM"
	pingRangeEnv = "NETLAB_PING_GROUP_RANGE"
	pingRange    = "/proc/sys/net/ipv4/ping_group_range"
)

// isolated is set in a test process that runs in a namespace of its own.
var isolated bool

func netnsID() (string, error) { return os.Readlink("/proc/self/ns/net") }

// runIsolated starts the copy in a new network namespace, passes signals on
// (go test's timeout, Ctrl-C) and returns its exit status.
func runIsolated() (int, error) {
	self, err := netnsID()
	if err != nil {
		return 0, err
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), isolatedEnv+"="+self)
	// Unprivileged ICMP sockets are allowed per namespace; keep the host's choice.
	if b, err := os.ReadFile(pingRange); err == nil {
		cmd.Env = append(cmd.Env, pingRangeEnv+"="+strings.TrimSpace(string(b)))
	}
	// The copy dies with this process (Pdeathsig follows the thread that
	// started it, hence the lock).
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, err
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// enterIsolated sets up the copy: it checks that its namespace is not the
// one it was started from, brings loopback up and copies the host's
// ping_group_range.
func enterIsolated(parent string) error {
	self, err := netnsID()
	if err != nil {
		return err
	}
	if self == parent {
		return fmt.Errorf("%s is set, but this process is still in %s", isolatedEnv, parent)
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing loopback up in the tests' namespace: %w", err)
	}
	if r := os.Getenv(pingRangeEnv); r != "" {
		_ = os.WriteFile(pingRange, []byte(r), 0o644)
	}
	isolated = true
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(fd) }()
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
