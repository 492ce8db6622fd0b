package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/probers"
)

// DefaultScrapeTimeout is used when Prometheus sends no timeout header (as
// blackbox_exporter does).
const DefaultScrapeTimeout = 120 * time.Second

// ProbeOptions configure the /probe handler.
type ProbeOptions struct {
	Config *config.Holder
	// Probers are the probers a module may name (probers.All()); a module
	// whose prober is not among them fails its probe.
	Probers       probers.Table
	Logger        *slog.Logger
	Metrics       *SelfMetrics
	History       *History
	TimeoutOffset time.Duration
	// MaxConcurrent caps probes running at once; past it /probe answers 503
	// at once. 0 means no cap.
	MaxConcurrent int
	// ProbeLog, if set, prints the probes' records at their level
	// (--log.prober, see stepLevel) instead of Logger at debug level.
	ProbeLog slog.Handler
	// Parker, if set, holds the connections of probes that can wait
	// holding no goroutine (icmp) while they wait, and answers them.
	Parker *Parker
}

// ProbeHandler serves /probe?target=T&module=M.
type ProbeHandler struct {
	o   ProbeOptions
	sem chan struct{}
	// The target policy of the config in force, shared by its probes
	// (read-only), not built again for each.
	policy atomic.Pointer[configPolicy]
}

type configPolicy struct {
	cfg    *config.Config
	policy *prober.Policy
}

// policyOf returns cfg's target policy.
func (h *ProbeHandler) policyOf(cfg *config.Config) *prober.Policy {
	if cp := h.policy.Load(); cp != nil && cp.cfg == cfg {
		return cp.policy
	}
	var onDeny func()
	if h.o.Metrics != nil {
		onDeny = h.o.Metrics.denied.Inc
	}
	p := prober.NewPolicy(cfg.TargetPolicy, onDeny)
	h.policy.Store(&configPolicy{cfg: cfg, policy: p})
	return p
}

// NewProbeHandler returns the /probe handler.
func NewProbeHandler(o ProbeOptions) *ProbeHandler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.History == nil {
		o.History = NewHistory(0)
	}
	h := &ProbeHandler{o: o}
	if o.MaxConcurrent > 0 {
		h.sem = make(chan struct{}, o.MaxConcurrent)
	}
	if o.Parker != nil {
		o.Parker.quick.Store(h)
	}
	return h
}

func (h *ProbeHandler) reject(w http.ResponseWriter, reason string, code int, msg string) {
	if h.o.Metrics != nil {
		h.o.Metrics.rejected.WithLabelValues(reason).Inc()
		if reason == "unknown_module" {
			h.o.Metrics.moduleUnknown.Inc()
		}
	}
	http.Error(w, msg, code)
}

func (h *ProbeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A refused request's place (LimitAdmission) goes back before net/http
	// reads the rest of its body.
	defer admitted(r.Context())
	a, ok := h.probe(w, r)
	if !ok {
		return
	}
	defer a.release()
	if a.debug {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(a.p.Debug()))
		return
	}
	collector.ServeMetrics(w, r, a.metrics, h.o.Logger)
}

// answer is a probe that ran, to be written: its metrics, whether its
// request asked for debug output, and what it holds until it is written
// (its log's reservation from the memory budget, its context, its
// concurrency slot).
type answer struct {
	p          *Probe
	metrics    *collector.Emitter
	debug      bool
	releaseLog func()
	cancel     context.CancelFunc
	sem        chan struct{}
	// parked: a Parker answers the probe (and releases what it holds).
	parked bool
	// What ended needs of the probe.
	logger     *slog.Logger
	plog       *probeLog
	moduleName string
	shown      string
	module     *config.Module
	view       collector.Renderer
}

// release gives back what a holds; what it never took, or gave back
// already, is nil.
func (a *answer) release() {
	if a.releaseLog != nil {
		a.releaseLog()
		a.releaseLog = nil
	}
	if a.cancel != nil {
		a.cancel()
		a.cancel = nil
	}
	if a.sem != nil {
		<-a.sem
		a.sem = nil
	}
}

// probe runs the probe r asks for; ok is false when r was refused (and
// answered), or parked (a.parked: the Parker answers it). It is a frame of
// its own, gone before the answer is written: net/http's writing of the
// headers needs about 4.4 kB of stack, and under this frame's 1 kB the
// connection's goroutine outgrew its 8 kB stack at the end of every probe
// and kept 16 kB for the next scrape on that connection.
//
//go:noinline
func (h *ProbeHandler) probe(w http.ResponseWriter, r *http.Request) (a answer, ok bool) {
	// A panic past the prober's own recover (a renderer's) must still give
	// back the slot, the context and the log's reservation.
	defer func() {
		if !ok && !a.parked {
			a.release()
		}
	}()
	q := r.URL.Query()
	cfg := h.o.Config.Get()
	moduleName := moduleParam(q)
	req := newRequest(cfg, moduleName)
	if req == nil {
		h.reject(w, "unknown_module", http.StatusBadRequest, fmt.Sprintf("Unknown module %q", clip(moduleName, 100)))
		return
	}
	// The query's values are slices of the request line, which a waiting
	// probe would keep whole: it keeps copies.
	moduleName = req.ModuleName
	target := strings.Clone(decodeEncodedColon(q.Get("target")))
	if target == "" {
		h.reject(w, "missing_target", http.StatusBadRequest, "Target parameter is missing")
		return
	}
	if len(target) > maxTargetLength {
		h.reject(w, "bad_request", http.StatusBadRequest, fmt.Sprintf("Target parameter is %d bytes long; the limit is %d", len(target), maxTargetLength))
		return
	}
	hostname := q.Get("hostname")
	if msg := checkHostname(hostname); msg != "" {
		h.reject(w, "bad_request", http.StatusBadRequest, msg)
		return
	}
	module := req.Module
	timeout, err := probeTimeout(r, module, h.o.TimeoutOffset)
	if err != nil {
		h.reject(w, "bad_request", http.StatusBadRequest, err.Error())
		return
	}
	if h.sem != nil {
		select {
		case h.sem <- struct{}{}:
			a.sem = h.sem
		default:
			h.reject(w, "concurrency", http.StatusServiceUnavailable,
				fmt.Sprintf("Too many concurrent probes (limit %d); try again later", cap(h.sem)))
			return
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	a.cancel = cancel

	// Shown in logs, /logs and the landing page: never a URL's password.
	shown := prober.RedactTarget(target)
	plog, releaseLog := newProbeLog(h.o.Logger.Handler(), h.o.ProbeLog, slog.String("module", moduleName), slog.String("target", shown))
	a.releaseLog = releaseLog
	logger := slog.New(plog)
	req.Target, req.Hostname, req.Logger, req.Timeout = target, strings.Clone(hostname), logger, timeout
	req.Policy = h.policyOf(cfg)

	if h.o.Metrics != nil {
		h.o.Metrics.inFlight.Inc()
	}
	logger.Info("beginning probe", "prober", module.Prober, "timeout_seconds", timeout.Seconds())
	row, _ := h.o.Probers.Lookup(module.Prober)
	a.logger, a.plog, a.moduleName, a.shown, a.module, a.view = logger, plog, moduleName, shown, module, row.Render
	a.debug = q.Get("debug") == "true"
	if row.Start != nil && !a.debug && h.o.Parker != nil {
		if pk := h.o.Parker.hijack(w, r); pk != nil {
			// From here the Parker answers: the probe waits (on the echo
			// engine) holding no goroutine, and this one returns to
			// net/http, which lets the connection go.
			a.parked = true
			pk.h, pk.a = h, a
			h.o.Parker.start(ctx, pk, row.Start, req)
			return
		}
	}
	admitted(r.Context()) // the probe waits holding net/http's goroutine
	res := prober.RunRequest(ctx, row.Probe, req)
	h.ended(&a, res)
	return a, true
}

// moduleParam is the module a /probe query names: http_2xx when none, as
// blackbox_exporter.
func moduleParam(q url.Values) string {
	if m := q.Get("module"); m != "" {
		return m
	}
	return "http_2xx"
}

// quick reports whether serving r waits on nothing: its probe parks at
// once (the module's prober starts it without a lookup or a dial, see
// probers.Prober.Quick, and no debug output is asked for), or it is
// refused at once (an unknown module). A Parker serves such requests on
// its own few workers (Parker.ReadRequests).
func (h *ProbeHandler) quick(r *http.Request) bool {
	q := r.URL.Query()
	if q.Get("debug") == "true" {
		return false
	}
	m := h.o.Config.Get().Modules[moduleParam(q)]
	if m == nil {
		return true
	}
	row, _ := h.o.Probers.Lookup(m.Prober)
	return row.Start != nil && row.Quick != nil && row.Quick(m, decodeEncodedColon(q.Get("target")))
}

// ended records a probe that ended: its last log line, the self-metrics,
// its metrics and its place in the history.
func (h *ProbeHandler) ended(a *answer, res prober.Result) {
	logger := a.logger
	base := res.Base()
	if base.Success {
		logger.Info("probe succeeded", "duration_seconds", base.DurationSeconds)
	} else {
		logger.Info("probe failed", "duration_seconds", base.DurationSeconds, "err", base.Error)
	}
	if h.o.Metrics != nil {
		h.o.Metrics.inFlight.Dec()
		result := "failure"
		if base.Success {
			result = "success"
		}
		h.o.Metrics.probes.WithLabelValues(a.moduleName, result).Inc()
		h.o.Metrics.duration.WithLabelValues(a.moduleName).Observe(base.DurationSeconds)
	}

	em := collector.NewEmitter(logger)
	collector.Render(res, a.view, em)
	a.p = &Probe{Module: a.moduleName, Target: a.shown, Start: base.StartedAt, Success: base.Success, logs: a.plog, metrics: em, module: a.module}
	h.o.History.Add(a.p)
	a.metrics = em
}

// The request lives on the heap, built in a frame of its own and handed on
// by pointer (prober.RunRequest): ServeHTTP's frame stays on the stack for
// the whole probe, and copies of a request there grew the goroutine's stack
// (and with it, through the runtime's average, the first stack of every new
// goroutine). The request points at cfg's module (3.7 kB, shared by every
// probe of it) rather than copying it: a reload installs a new Config, so a
// running probe keeps its module. newRequest returns nil for a module cfg
// does not have.
//
//go:noinline
func newRequest(cfg *config.Config, module string) *prober.Request {
	m := cfg.Modules[module]
	if m == nil {
		return nil
	}
	return &prober.Request{ModuleName: strings.Clone(module), Module: m}
}

// decodeEncodedColon undoes a second URL-encoding of the target when its
// colon arrived encoded ("127.0.0.1%3A9100": Grafana Alloy encodes colons,
// blackbox_exporter #1525). blackbox decodes every target twice, which
// also rewrites "%2B" inside a URL's query into "+" and "+" into a space;
// here only a target with no colon at all and an encoded one is decoded,
// so a URL (it has a scheme's colon) or a host:port is never altered (the
// colons inside an IPv6 literal's brackets do not count).
func decodeEncodedColon(target string) string {
	rest := target
	if strings.HasPrefix(rest, "[") {
		if i := strings.IndexByte(rest, ']'); i > 0 {
			rest = rest[i+1:]
		}
	}
	if strings.Contains(rest, ":") || !strings.Contains(strings.ToUpper(rest), "%3A") {
		return target
	}
	if t, err := url.QueryUnescape(target); err == nil {
		return t
	}
	return target
}

// maxTargetLength bounds the target parameter: no target needs more, and it
// is repeated in every log line of the probe.
const maxTargetLength = 4096

// checkHostname refuses a hostname parameter that cannot be a Host header
// (CR, LF, NUL, space, …): net/http would drop it and send an empty Host.
func checkHostname(hostname string) string {
	if hostname == "" {
		return ""
	}
	if len(hostname) > 255+6 || !httpguts.ValidHostHeader(hostname) || strings.ContainsAny(hostname, "/?#@ ") {
		return fmt.Sprintf("Invalid hostname parameter %q: want a host name or address, optionally with :port", clip(hostname, 100))
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// probeTimeout is Prometheus's scrape timeout minus the offset, capped by the
// module's own timeout.
func probeTimeout(r *http.Request, module *config.Module, offset time.Duration) (time.Duration, error) {
	scrape := DefaultScrapeTimeout
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(secs) || secs <= 0 || secs > 1e6 {
			return 0, fmt.Errorf("invalid X-Prometheus-Scrape-Timeout-Seconds header %q: want a positive number of seconds", v)
		}
		scrape = time.Duration(secs * float64(time.Second))
	}
	t := scrape - offset
	if t <= 0 {
		// The offset ate the whole budget: use what Prometheus gives.
		t = scrape
	}
	if module.Timeout > 0 && module.Timeout < t {
		t = module.Timeout
	}
	return t, nil
}

// DebugOutput is what /probe?debug=true shows: the probe's logs, the metrics
// it would have returned, and its module with secrets hidden.
func DebugOutput(logs string, reg prometheus.Gatherer, module config.Module) string {
	var b bytes.Buffer
	b.WriteString("Logs for the probe:\n")
	b.WriteString(logs)
	b.WriteString("\n\nMetrics that would have been returned:\n")
	mfs, err := reg.Gather()
	if err != nil {
		fmt.Fprintf(&b, "error gathering metrics: %v\n", err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			fmt.Fprintf(&b, "error formatting metrics: %v\n", err)
		}
	}
	b.WriteString("\n\nModule configuration:\n")
	out, err := yaml.Marshal(module)
	if err != nil {
		fmt.Fprintf(&b, "error marshalling module: %v\n", err)
	}
	b.Write(out)
	return b.String()
}
