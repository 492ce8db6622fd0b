package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
)

// Status is the verdict on one URL.
type Status string

// The three statuses a website check can end in.
const (
	// Active: the site answered with a valid status (and passed the module's checks).
	Active Status = "active"
	// Inactive: the site answered, but with an invalid status (404, 500, …)
	// or a response that failed the module's checks.
	Inactive Status = "inactive"
	// Error: no usable answer: malformed URL, DNS failure, refused, timeout, TLS failure.
	Error Status = "error"
	// NotChecked: the run was interrupted before the check started or
	// while it ran (a second Ctrl-C cut it short); Error says which.
	NotChecked Status = "not_checked"
)

// Outcome is the result of checking one unique URL.
type Outcome struct {
	// URL is the normalised URL, or the input as written when malformed.
	URL                 string    `json:"url"`
	InputURL            string    `json:"input_url"`
	Line                int       `json:"line"`
	Status              Status    `json:"status"`
	HTTPStatus          int       `json:"http_status,omitempty"` // 0: no response (or never checked)
	ResponseTimeSeconds float64   `json:"response_time_seconds"`
	CheckedAt           time.Time `json:"checked_at,omitzero"` // zero: never started (or a malformed row)
	FinalURL            string    `json:"final_url,omitempty"`
	CertExpiry          time.Time `json:"cert_expiry,omitzero"`
	Error               string    `json:"error,omitempty"`
	// Extra holds the input's other CSV columns, in Report.ExtraHeader order.
	Extra []string `json:"-"`
}

// Report is a finished (or interrupted) batch.
type Report struct {
	ExtraHeader []string
	Outcomes    []Outcome // input order, one per unique URL (NotChecked after an interrupt)
	Duplicates  int       // rows dropped because an earlier row had the same normalised URL
	Unique      int       // unique URLs in the input, malformed ones included
	Interrupted bool
	Started     time.Time
	Elapsed     time.Duration
}

// Counts returns how many outcomes have each status.
func (r *Report) Counts() map[Status]int {
	c := map[Status]int{Active: 0, Inactive: 0, Error: 0, NotChecked: 0}
	for _, o := range r.Outcomes {
		c[o.Status]++
	}
	return c
}

// AllActive reports whether every unique URL was checked and is active.
func (r *Report) AllActive() bool {
	return !r.Interrupted && r.Counts()[Active] == r.Unique
}

// reserved are the output column names an input column may not reuse.
var reserved = map[string]bool{
	"url": true, "input_url": true, "line": true, "status": true, "http_status": true,
	"response_time_seconds": true, "checked_at": true, "final_url": true, "cert_expiry": true, "error": true,
}

// Options configure a batch.
type Options struct {
	Module      config.Module
	ModuleName  string
	Policy      config.TargetPolicy
	Concurrency int
	// Timeout bounds each check, in place of the module's timeout; 0: the
	// module's, or 10 s when it has none.
	Timeout time.Duration
	Logger  *slog.Logger
	// Progress, when set, is called after each check with done and total.
	Progress func(done, total int)
	// Abort, when done, cuts the checks still running short (a second
	// Ctrl-C); they are reported NotChecked, like those never started.
	Abort context.Context
}

// Run checks every unique URL of in. When ctx is cancelled (Ctrl-C) no new
// check starts; checks already running finish. The report is marked
// Interrupted when ctx or Abort was done before the end, and lists every
// unique URL: those not checked with the status NotChecked.
func Run(ctx context.Context, in *Input, o Options) *Report {
	start := time.Now()
	rep := &Report{ExtraHeader: in.ExtraHeader, Started: start}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Abort == nil {
		o.Abort = context.Background()
	}
	// An asked-for timeout is the user's answer for this run, so it
	// replaces the module's, longer or shorter.
	if o.Timeout <= 0 {
		o.Timeout = o.Module.Timeout
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}

	// Validate and de-duplicate in input order; malformed rows are outcomes
	// straight away.
	slots := make([]*Outcome, 0, len(in.Rows))
	var jobs []int // indexes into slots to check
	seen := make(map[string]bool, len(in.Rows))
	for _, row := range in.Rows {
		norm, err := Normalize(row.Raw)
		if row.Invalid != "" {
			err = errors.New(row.Invalid)
		}
		// Malformed rows are never merged as duplicates: each is reported.
		if err == nil {
			if seen[norm] {
				rep.Duplicates++
				continue
			}
			seen[norm] = true
		}
		out := &Outcome{URL: norm, InputURL: row.Raw, Line: row.Line, Extra: row.Extra}
		if err != nil {
			out.URL = row.Raw
			out.Status = Error
			out.Error = err.Error() // never checked: no CheckedAt
		} else {
			jobs = append(jobs, len(slots))
		}
		slots = append(slots, out)
	}
	rep.Unique = len(slots)

	policy := prober.NewPolicy(o.Policy, nil)
	var done atomic.Int64
	done.Store(int64(len(slots) - len(jobs)))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(o.Concurrency, max(len(jobs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				checkOne(slots[i], o, policy)
				if o.Abort.Err() != nil {
					// Cut short: what it ended in is no verdict on the URL.
					out := slots[i]
					*out = Outcome{URL: out.URL, InputURL: out.InputURL, Line: out.Line, Extra: out.Extra,
						Status: NotChecked, CheckedAt: out.CheckedAt, ResponseTimeSeconds: out.ResponseTimeSeconds,
						Error: fmt.Sprintf("interrupted: the check was cut short after %.1fs", out.ResponseTimeSeconds)}
					continue
				}
				n := done.Add(1)
				if o.Progress != nil {
					o.Progress(int(n), len(slots))
				}
			}
		}()
	}
dispatch:
	for _, i := range jobs {
		select {
		case <-ctx.Done():
			rep.Interrupted = true
			break dispatch
		case work <- i:
		}
	}
	close(work)
	wg.Wait()
	// Every check may have started before the interrupt, so dispatch
	// never saw it: the report is still cut short of what was asked.
	if ctx.Err() != nil || o.Abort.Err() != nil {
		rep.Interrupted = true
	}

	for _, i := range jobs {
		if out := slots[i]; out.Status == "" { // never started
			out.Status, out.Error = NotChecked, "interrupted before the check started"
		}
	}
	rep.Outcomes = make([]Outcome, len(slots))
	for i, out := range slots {
		rep.Outcomes[i] = *out
	}
	rep.Elapsed = time.Since(start)
	return rep
}

// checkOne runs the http prober on one URL and classifies the result.
func checkOne(out *Outcome, o Options, policy *prober.Policy) {
	ctx, cancel := context.WithTimeout(o.Abort, o.Timeout)
	defer cancel()
	res := prober.Run(ctx, prober.ProbeHTTP, prober.Request{
		Target:     out.URL,
		Module:     &o.Module,
		ModuleName: o.ModuleName,
		Policy:     policy,
		Logger:     o.Logger.With("target", out.URL),
	})
	base := res.Base()
	out.CheckedAt = base.StartedAt.UTC()
	out.ResponseTimeSeconds = base.DurationSeconds
	failedChecks := false
	if h, ok := res.(*prober.HTTPResult); ok {
		failedChecks = h.FailedDueToRegex || (h.FailedDueToCEL != nil && *h.FailedDueToCEL)
		out.HTTPStatus = h.StatusCode
		out.FinalURL = h.FinalURL
		if h.TLS != nil && !h.TLS.EarliestCertExpiry.IsZero() {
			out.CertExpiry = h.TLS.EarliestCertExpiry.UTC()
		}
	}
	switch {
	case base.Success:
		out.Status = Active
	// Inactive: the site answered, with a status the module rejects or a
	// response its regexps or CEL reject. A valid status followed by a
	// failure (a timeout reading the body) is an error.
	case out.HTTPStatus > 0 && (!prober.ValidHTTPStatus(o.Module.HTTP, out.HTTPStatus) || failedChecks):
		out.Status = Inactive
		out.Error = base.Error
	default:
		out.Status = Error
		out.Error = base.Error
		if out.Error == "" {
			out.Error = "no response"
		}
	}
}
