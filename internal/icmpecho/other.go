//go:build !linux

package icmpecho

import (
	"context"
	"errors"
)

// Probe is a running probe (Linux only).
type Probe struct{}

// Start fails: the engine needs Linux's socket options and filters.
func Start(Request) (*Probe, error) {
	return nil, errors.New("the ICMP echo engine needs Linux (use protocol: tcp elsewhere)")
}

// Wait returns nothing: Start never returns a Probe.
func (*Probe) Wait(context.Context) *Result { return &Result{HopLimit: -1} }

// OnDone calls f: Start never returns a Probe.
func (*Probe) OnDone(f func()) { f() }

// Finish returns nothing: Start never returns a Probe.
func (*Probe) Finish() *Result { return &Result{HopLimit: -1} }

// Magic is this process's mark.
func Magic() uint32 { return 0 }
