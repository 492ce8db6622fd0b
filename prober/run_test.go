package prober

import (
	"context"
	"testing"
	"time"
)

// TestRunKeepsTheCallersDeadline: Run bounds a probe by DefaultTimeout only
// when the caller set no deadline; a longer one (a 20 s module under a 30 s
// scrape) is the probe's, whatever Timeout reports.
func TestRunKeepsTheCallersDeadline(t *testing.T) {
	seen := func(ctx context.Context, req Request) time.Duration {
		var left time.Duration
		Run(ctx, func(ctx context.Context, _ *Request) Result {
			dl, ok := ctx.Deadline()
			if !ok {
				t.Fatal("the probe's context has no deadline")
			}
			left = time.Until(dl)
			return &Common{Success: true}
		}, req)
		return left
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		timeout time.Duration
		min     time.Duration
		max     time.Duration
	}{
		{"caller's 20 s deadline, Timeout set", ctx, 20 * time.Second, 19 * time.Second, 20 * time.Second},
		{"caller's 20 s deadline, no Timeout", ctx, 0, 19 * time.Second, 20 * time.Second},
		{"no deadline", context.Background(), 0, DefaultTimeout - time.Second, DefaultTimeout},
		{"no deadline, Timeout set", context.Background(), 30 * time.Second, DefaultTimeout - time.Second, DefaultTimeout},
	} {
		if left := seen(tc.ctx, Request{Timeout: tc.timeout}); left < tc.min || left > tc.max {
			t.Errorf("%s: the probe had %v left, want %v–%v", tc.name, left, tc.min, tc.max)
		}
	}
	res := Run(ctx, func(context.Context, *Request) Result { return &Common{} }, Request{Timeout: 5 * time.Second})
	if got := res.Base().TimeoutSeconds; got != 5 {
		t.Errorf("TimeoutSeconds = %v, want the 5 s Timeout given", got)
	}
}
