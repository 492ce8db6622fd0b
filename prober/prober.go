// Package prober holds one file per prober. Each prober takes a Request and
// returns a typed Result; it knows nothing of Prometheus. The collector
// package renders Results as metrics and the report package as JSON or text,
// so the exporter and the command line can never disagree.
package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// Request is one probe to run.
type Request struct {
	Target string
	// Module is shared, not the request's own: the loaded config's (every
	// probe of the module points at it) or the caller's. No prober changes
	// it; code that needs a changed module changes a copy of its own.
	Module *config.Module
	// ModuleName is for logs and reports only.
	ModuleName string
	// Hostname overrides the Host header and TLS server name (http, tcp).
	Hostname string
	// Policy guards what may be dialled; nil allows everything.
	Policy *Policy
	Logger *slog.Logger
	// Timeout is the budget the caller gave the probe (the /probe handler's
	// scrape timeout minus offset, capped by the module), reported as
	// probe_timeout_seconds as blackbox_exporter reports it. 0 reports the
	// time left until ctx's deadline instead.
	Timeout time.Duration
}

// Result is what a prober returns. Every Result embeds Common.
type Result interface {
	Base() *Common
}

// Common holds what every probe reports, with blackbox_exporter's meanings.
type Common struct {
	Prober  string `json:"prober"`
	Module  string `json:"module,omitempty"`
	Target  string `json:"target"`
	Success bool   `json:"success"`
	// Error says why the probe failed, in words a person can act on.
	Error string `json:"error,omitempty"`
	// Reason is a short code beside Error when the failure's cause is on
	// this host (the Reason constants: permission, no_socket, no_route,
	// not_run); empty otherwise.
	Reason string `json:"reason,omitempty"`
	// Cause is Error for a reader that names the check itself: without a
	// step that only says which check failed, and without the operation and
	// addresses of Go's network errors (see FailStep and Cause). "" when
	// the Result was not failed through Fail: then Error says it.
	Cause           string    `json:"-"`
	StartedAt       time.Time `json:"started_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	TimeoutSeconds  float64   `json:"timeout_seconds"`
	// Resolved is true once target resolution ran (so its time is meaningful).
	Resolved         bool    `json:"-"`
	DNSLookupSeconds float64 `json:"dns_lookup_seconds"`
	// IPProtocol is 4 or 6 once an address was chosen, else 0.
	IPProtocol int    `json:"ip_protocol,omitempty"`
	IPAddr     string `json:"ip_addr,omitempty"`
}

// Base implements Result.
func (c *Common) Base() *Common { return c }

// Fail marks the result failed: Error is msg and err, Reason is set from
// the system error err wraps (ReasonOf) when it names one, and Cause is msg
// and the Cause of err. The failure is logged.
func (c *Common) Fail(logger *slog.Logger, msg string, err error) {
	c.fail(logger, msg, err, false)
}

// FailDenied fails the result for a target_policy denial (err wraps
// ErrDenied), worded one way by every prober: Error is "Target refused by
// target_policy: <why>", and Cause "denied by target_policy: <why>", for a
// reader that names the check ("gateway … not pinged: denied by …").
func (c *Common) FailDenied(logger *slog.Logger, err error) {
	c.fail(logger, deniedMsg, err, true)
}

const deniedMsg = "Target refused by target_policy"

// FailStep is Fail for a msg that only names the step which failed ("HTTP
// request failed", "cannot probe target"): a reader that already names the
// check ("https://example.com/ fails (…)") would only repeat it, so Cause
// is the Cause of err alone. Error keeps msg.
func (c *Common) FailStep(logger *slog.Logger, msg string, err error) {
	c.fail(logger, msg, err, true)
}

func (c *Common) fail(logger *slog.Logger, msg string, err error, step bool) {
	c.Success = false
	if r := ReasonOf(err); r != "" {
		c.Reason = r
	}
	if err == nil {
		c.Error, c.Cause = msg, msg
		logger.Error(msg)
		return
	}
	text, cause := err.Error(), Cause(err)
	// "refused by target_policy: denied by target_policy: …" says it twice.
	if strings.Contains(msg, "target_policy") {
		text = strings.Replace(text, ErrDenied.Error()+": ", "", 1)
		if !step {
			cause = strings.Replace(cause, ErrDenied.Error()+": ", "", 1)
		}
	}
	c.Error = fmt.Sprintf("%s: %s", msg, text)
	if c.Cause = cause; !step {
		c.Cause = fmt.Sprintf("%s: %s", msg, cause)
	}
	logger.Error(msg, "err", err)
}

// Func runs one probe. It must return before ctx is done and never panic.
// The probers table (package probers) names the Func of each prober.
//
// Every prober has the shape of tcp.go's, the model:
//
//	type xProbe struct {
//		req    Request
//		cfg    config.XProbe // the module's options: defaulted and validated by config
//		logger *slog.Logger
//		res    *XResult
//	}
//
//	func ProbeX(ctx context.Context, req *Request) Result {
//		p := &xProbe{req: *req, cfg: req.Module.X, logger: req.Logger, res: &XResult{}}
//		p.run(ctx)
//		return p.res
//	}
//
// run takes the steps in order and returns at the first that fails, after
// failing p.res with Fail, FailStep or FailDenied (which also log it). Its
// first network step is req.resolve, which words a denial and a failed
// lookup the same for every prober; every later dial goes through
// req.Policy, and a denial there is failed with FailDenied. ctx always has a
// deadline (Run sets DefaultTimeout when the caller set none), so a prober
// plans within ctx.Deadline() and has no budget of its own. The options
// are config's: a prober neither defaults nor re-validates them.
//
// req is the caller's (a prober copies what it keeps, and changes none of
// it, nor the module it points at, which every probe of the module
// shares). When a Request held its module by value it was 3.8 kB, and
// passed by value it left two copies on the stack of the calling frame,
// which stays there while the probe waits (BenchmarkProbeICMPStack in
// server).
type Func func(ctx context.Context, req *Request) Result

// DefaultTimeout bounds a probe whose caller set no deadline: code and
// tests. The exporter, run and check always set one.
const DefaultTimeout = 10 * time.Second

// resolve is a prober's first network step: the target host's address, as
// ResolveTarget picks it under the target policy. When that fails, res is
// failed (FailDenied for a denial, "Error resolving address" otherwise) and
// ok is false.
func (req *Request) resolve(ctx context.Context, res *Common, host string, o config.IPOptions) (ip *net.IPAddr, ok bool) {
	ip, err := ResolveTarget(ctx, res, host, o.IPProtocol, o.IPProtocolFallback, req.Policy, req.Logger)
	switch {
	case err == nil:
		return ip, true
	case errors.Is(err, ErrDenied):
		res.FailDenied(req.Logger, err)
	default:
		res.Fail(req.Logger, "Error resolving address", err)
	}
	return nil, false
}

// Run runs probe, the module's prober, against the target until ctx ends
// and fills in the fields every probe shares. A nil probe fails the probe:
// the module names a prober this build does not have. A panicking prober
// fails its probe, not the process.
func Run(ctx context.Context, probe Func, req Request) Result {
	return RunRequest(ctx, probe, &req)
}

// RunRequest is Run with the request by pointer, for a caller that holds
// it on the heap (the /probe handler): every copy of a Request (see Func)
// on the stack of a waiting probe makes its goroutine's stack larger. It
// sets req.Logger when nil, and req.Module to an empty module (no prober)
// when nil.
func RunRequest(ctx context.Context, probe Func, req *Request) (res Result) {
	ctx, cancel, start, timeout := req.prepare(ctx)
	defer cancel()
	defer func() { res = req.conclude(recover(), res, start, timeout) }()
	if res := req.refuse(probe == nil); res != nil {
		return res
	}
	return probe(ctx, req)
}

// refuse fails a probe that cannot run: its prober is not in this build
// (missing), or its target has a scheme no prober takes. file://,
// gopher://, unix: … would otherwise be taken for a host name and looked
// up; nothing is sent for them. A unix module's target is a path, never a
// URL: ProbeUnix refuses every scheme in its own words.
func (req *Request) refuse(missing bool) Result {
	if missing {
		c := &Common{}
		c.Fail(req.Logger, fmt.Sprintf("prober %q is not available in this build of isp-checker", req.Module.Prober), nil)
		return c
	}
	if s := targetScheme(req.Target); s != "" && !schemeProbed(req.Module.Prober, s) && req.Module.Prober != "unix" {
		c := &Common{}
		c.Fail(req.Logger, fmt.Sprintf("Unsupported scheme %q in target: only http:// and https:// URLs, or a host (and port), can be probed", clipText(s, 20)), nil)
		return c
	}
	return nil
}

// schemeProbed reports whether a target with URL scheme s may reach prober:
// http(s) for all, ws(s) for the websocket prober.
func schemeProbed(prober, s string) bool {
	switch s {
	case "http", "https":
		return true
	case "ws", "wss":
		return prober == "websocket"
	}
	return false
}
