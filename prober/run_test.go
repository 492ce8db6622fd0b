package prober

import (
	"context"
	"testing"
	"time"
)

// A caller's deadline is the probe's: a request that states its budget
// (the /probe handler's Timeout) is not cut to DefaultTimeout.
func TestRunKeepsCallersDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*DefaultTimeout)
	defer cancel()
	want, _ := ctx.Deadline()
	var got time.Time
	probe := func(ctx context.Context, _ Request) Result {
		got, _ = ctx.Deadline()
		return &Common{Success: true}
	}
	res := Run(ctx, probe, Request{Target: "192.0.2.1", Timeout: 3 * DefaultTimeout})
	if !got.Equal(want) {
		t.Errorf("the prober's deadline is %v from now, want the caller's %v", time.Until(got).Round(time.Second), time.Until(want).Round(time.Second))
	}
	if s := res.Base().TimeoutSeconds; s != (3 * DefaultTimeout).Seconds() {
		t.Errorf("TimeoutSeconds %v, want %v", s, (3 * DefaultTimeout).Seconds())
	}
	// Without a deadline the prober gets DefaultTimeout.
	_ = Run(context.Background(), probe, Request{Target: "192.0.2.1"})
	if d := time.Until(got); got.IsZero() || d > DefaultTimeout || d < DefaultTimeout-time.Second {
		t.Errorf("without a deadline the prober's is %v from now, want %v", d, DefaultTimeout)
	}
}
