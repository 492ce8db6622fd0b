// Package threadns records whether this process ever moves a thread into
// another network namespace (a test lab runs probe code on threads inside
// its namespaces). Code that keeps per-namespace state — the ICMP echo
// engine — asks the kernel for the calling thread's namespace (a readlink
// of /proc/thread-self/ns/net, 4-8 µs) only once that has happened, and
// otherwise uses the process's own.
package threadns

import "sync/atomic"

var entered atomic.Bool

// Entering must be called before a thread of this process is moved into
// another network namespace (setns). It cannot be undone.
func Entering() { entered.Store(true) }

// MayDiffer reports whether a thread may be in another network namespace
// than the process's.
func MayDiffer() bool { return entered.Load() }
