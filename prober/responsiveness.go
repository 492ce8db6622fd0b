package prober

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	pconfig "github.com/prometheus/common/config"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/rpm"
)

// Stop reasons of a responsiveness stage (ResponsivenessStage.StopReason).
const (
	RPMStopStable    = "stable"     // the responsiveness passed the stability rule
	RPMStopTimeLimit = "time_limit" // stage_timeout (or its share of the probe's timeout) was reached
	RPMStopError     = "error"      // the load could not be generated
)

// Timing of a responsiveness probe.
const (
	// rpmDocLimit bounds the configuration document.
	rpmDocLimit = 64 << 10
	// rpmCloseReserve is kept after the last stage to tear connections down.
	rpmCloseReserve = 500 * time.Millisecond
	// rpmMaxInFlight bounds the probe pairs waiting for an answer at once:
	// behind a 400 ms queue a self probe takes seconds, and a dead path
	// must not pile up goroutines.
	rpmMaxInFlight = 256
)

// ResponsivenessResult is the outcome of a responsiveness probe: the IETF
// test "Responsiveness under Working Conditions" (draft 09), one stage per
// direction (download, then upload), each ramping up load-generating
// HTTP/2 connections until goodput is stable and then measuring foreign
// probes (new connections) and self probes (on the loaded connections)
// until the responsiveness is stable or the stage's time runs out.
type ResponsivenessResult struct {
	Common
	// URL is the configuration document's (the target); SmallURL, LargeURL
	// and UploadURL are the ones it names.
	URL       string `json:"url,omitempty"`
	SmallURL  string `json:"small_url,omitempty"`
	LargeURL  string `json:"large_url,omitempty"`
	UploadURL string `json:"upload_url,omitempty"`
	// TLSVersion is the version the idle probes negotiated ("" without TLS).
	TLSVersion string `json:"tls_version,omitempty"`
	// WaitSeconds is how long the probe waited for a throughput or
	// responsiveness probe of this exporter to finish.
	WaitSeconds float64 `json:"wait_seconds"`
	// IdleRoundTripSeconds is the foreign round trip before any load: the
	// mean of the trimmed means of tcp_f, tls_f and http_f over IdleProbes
	// probes (0 when none answered).
	IdleRoundTripSeconds float64 `json:"idle_round_trip_seconds"`
	IdleProbes           int     `json:"idle_probes"`
	// Stages are the directions measured, in order.
	Stages []ResponsivenessStage `json:"stages"`
	// RPM is the overall responsiveness: the draft's formula over the
	// probes of every stage's final window pooled (as goresponsiveness's
	// "Final RPM"); 0 unless every stage has a figure.
	RPM float64 `json:"rpm"`
	// Stable: every stage's responsiveness passed the stability rule.
	Stable bool `json:"stable"`
	// Level is the word Apple's networkQuality prints (Low below 200 RPM,
	// Medium below 1000, High), Class the draft's (poor, fair, good,
	// excellent), and BloatGrade the Waveform/DSLReports letter of the
	// latency increase 60 s/RPM − idle round trip. Empty without RPM.
	Level      string `json:"level,omitempty"`
	Class      string `json:"class,omitempty"`
	BloatGrade string `json:"bloat_grade,omitempty"`
}

// ResponsivenessStage is one direction's measurement. Times in seconds.
type ResponsivenessStage struct {
	Direction string `json:"direction"`
	// RPM is the draft's (draft 04 on): the mean of ForeignRPM and
	// LoadedRPM. RTTMeanRPM is drafts 02–03's and goresponsiveness's
	// formula over the same samples, for comparison with that client.
	// All 0 without a figure (no probes of both kinds completed).
	RPM        float64 `json:"rpm"`
	ForeignRPM float64 `json:"foreign_rpm"`
	LoadedRPM  float64 `json:"loaded_rpm"`
	RTTMeanRPM float64 `json:"rtt_mean_rpm"`
	// Stable: the responsiveness passed the stability rule; Confidence is
	// the draft's (none, low, medium, high).
	Stable     bool   `json:"stable"`
	Confidence string `json:"confidence"`
	// The trimmed means the figure comes from (tls_f already divided by
	// the handshake's round trips; 0 without TLS).
	TCPForeignSeconds  float64 `json:"tcp_foreign_seconds"`
	TLSForeignSeconds  float64 `json:"tls_foreign_seconds"`
	HTTPForeignSeconds float64 `json:"http_foreign_seconds"`
	HTTPSelfSeconds    float64 `json:"http_self_seconds"`
	// ForeignSamples and SelfSamples are the probes in the final window;
	// ProbePairs counts the pairs launched, ProbeErrors the probes that
	// failed (timeouts under load included) over the whole stage.
	ForeignSamples int `json:"foreign_samples"`
	SelfSamples    int `json:"self_samples"`
	ProbePairs     int `json:"probe_pairs"`
	ProbeErrors    int `json:"probe_errors"`
	// GoodputBytesPerSecond is the last moving average of the payload the
	// load-generating connections moved; GoodputSaturated says it passed
	// the stability rule (probing starts there).
	GoodputBytesPerSecond float64 `json:"goodput_bytes_per_second"`
	GoodputSaturated      bool    `json:"goodput_saturated"`
	// Connections is the most load-generating connections running at once;
	// ConnectionsFailed counts those that ended with an error (each is
	// replaced at the next interval).
	Connections       int     `json:"connections"`
	ConnectionsFailed int     `json:"connections_failed"`
	Intervals         int     `json:"intervals"`
	Seconds           float64 `json:"seconds"`
	StopReason        string  `json:"stop_reason"`

	window rpm.Probes // the final window's samples, for the overall figure
}

// HasFigure reports that the stage computed a responsiveness.
func (s *ResponsivenessStage) HasFigure() bool { return s.RPM > 0 }

// Stage returns the stage of direction, or nil.
func (r *ResponsivenessResult) Stage(direction string) *ResponsivenessStage {
	for i := range r.Stages {
		if r.Stages[i].Direction == direction {
			return &r.Stages[i]
		}
	}
	return nil
}

type responsivenessProbe struct {
	req    Request
	o      config.ResponsivenessProbe
	params rpm.Params
	logger *slog.Logger
	res    *ResponsivenessResult

	// Set once the document is read: where every test connection goes.
	addr   string // ip:port dialled for every URL (they share one host)
	urls   nqURLs // as requested (the Result's are redacted)
	scheme string
	host   string      // the URLs' host[:port], for the Host header
	tlsCfg *tls.Config // nil for http://
}

// ProbeResponsiveness runs the responsiveness test against the
// configuration document req.Target names.
func ProbeResponsiveness(ctx context.Context, req *Request) Result {
	o := req.Module.Responsiveness
	p := &responsivenessProbe{req: *req, o: o, logger: req.Logger, res: &ResponsivenessResult{}}
	p.params = rpm.Params{
		MAD: o.MovingAverageDistance, ID: o.IntervalDuration, TMP: o.TrimmedMeanPercent / 100, SDT: o.StdDevTolerancePercent / 100,
		INP: o.InitialConnections, INC: o.ConnectionsIncrement, MNP: o.MaxConnections, MPS: o.MaxProbesPerSecond, PTC: o.ProbeCapacityPercent / 100,
	}
	if err := p.run(ctx); err != nil {
		if p.res.Error == "" { // resolve fails the result itself
			p.res.FailStep(p.logger, "responsiveness probe failed", err)
		}
		return p.res
	}
	p.res.Success = true
	return p.res
}

func (p *responsivenessProbe) run(ctx context.Context) error {
	o := p.o
	if err := o.Validate(); err != nil {
		return fmt.Errorf("invalid module: %w", err)
	}
	if err := p.params.Validate(); err != nil {
		return fmt.Errorf("invalid module: %w", err)
	}
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(time.Duration(len(o.Directions()))*o.StageTimeout + 30*time.Second)
	}
	margin := min(deadline.Sub(start)/20, time.Second)
	runCtx, cancel := context.WithDeadline(ctx, deadline.Add(-margin))
	defer cancel()

	u, err := responsivenessURL(p.req.Target)
	if err != nil {
		return err
	}
	p.res.URL = u.Redacted()
	ip, ok := p.req.resolve(runCtx, &p.res.Common, u.Hostname(), o.IPOptions)
	if !ok {
		return errors.New(p.res.Error)
	}

	// A stage needs a few intervals to be worth starting.
	need := 3*o.IntervalDuration + rpmCloseReserve
	release, err := takeThroughputSlot(runCtx, deadline.Add(-margin-need), p.logger,
		"waited for another throughput or responsiveness probe to finish", &p.res.WaitSeconds)
	if err != nil {
		return err
	}
	defer release()

	if o.TLSConfig.ServerName == "" && u.Scheme == "https" {
		o.TLSConfig.ServerName = u.Hostname()
	}
	docTLS, err := pconfig.NewTLSConfigWithContext(runCtx, &o.TLSConfig)
	if err != nil {
		return fmt.Errorf("error creating TLS configuration: %w", err)
	}
	urls, err := p.readDocument(runCtx, u, joinHostPort(ip, portOf(u)), docTLS)
	if err != nil {
		return err
	}
	if err := p.target(runCtx, u, ip, urls); err != nil {
		return err
	}

	if err := p.idle(runCtx); err != nil {
		return err
	}

	if o.Direction == config.ResponsivenessParallel {
		if err := p.parallel(runCtx, deadline.Add(-margin-rpmCloseReserve)); err != nil {
			return err
		}
		return p.finish()
	}
	dirs := o.Directions()
	for i, dir := range dirs {
		left := time.Until(deadline.Add(-margin-rpmCloseReserve)) / time.Duration(len(dirs)-i)
		budget := min(o.StageTimeout, left)
		if budget < 2*o.IntervalDuration {
			return fmt.Errorf("the probe's timeout leaves %s for the %s stage, less than two intervals of %s "+
				"(raise the module's timeout or the scrape timeout, or lower interval_duration)",
				max(budget, 0).Round(time.Millisecond), dir, o.IntervalDuration)
		}
		st, err := p.stage(runCtx, dir, budget, nil)
		p.res.Stages = append(p.res.Stages, st)
		if err != nil {
			return err
		}
	}
	return p.finish()
}

// stage runs and logs one direction.
func (p *responsivenessProbe) stage(ctx context.Context, dir string, budget time.Duration, hold func(context.Context)) (ResponsivenessStage, error) {
	p.logger.Info("starting responsiveness stage", "direction", dir, "time_limit", budget.Round(time.Millisecond))
	st, err := p.runStage(ctx, dir, budget, hold)
	p.logger.Info("responsiveness stage finished", "direction", dir, "rpm", st.RPM, "confidence", st.Confidence,
		"stop_reason", st.StopReason, "goodput_bytes_per_second", st.GoodputBytesPerSecond, "connections", st.Connections,
		"tcp_foreign_seconds", st.TCPForeignSeconds, "tls_foreign_seconds", st.TLSForeignSeconds,
		"http_foreign_seconds", st.HTTPForeignSeconds, "http_self_seconds", st.HTTPSelfSeconds,
		"foreign_samples", st.ForeignSamples, "self_samples", st.SelfSamples, "probe_errors", st.ProbeErrors)
	if err != nil {
		return st, fmt.Errorf("%s: %w", dir, err)
	}
	return st, nil
}

// parallel runs both directions at once (the draft's concurrent mode):
// each loads its own connections and probes them, so every foreign probe
// crosses both loaded queues.
func (p *responsivenessProbe) parallel(ctx context.Context, end time.Time) error {
	budget := min(p.o.StageTimeout, time.Until(end))
	if budget < 2*p.o.IntervalDuration {
		return fmt.Errorf("the probe's timeout leaves %s for the test, less than two intervals of %s "+
			"(raise the module's timeout or the scrape timeout, or lower interval_duration)", max(budget, 0).Round(time.Millisecond), p.o.IntervalDuration)
	}
	dirs := p.o.Directions()
	stages := make([]ResponsivenessStage, len(dirs))
	errs := make([]error, len(dirs))
	// A direction that is done keeps loading the path until the other is:
	// otherwise the last intervals of the slower one would measure one
	// loaded queue instead of two.
	var mu sync.Mutex
	left := len(dirs)
	allDone := make(chan struct{})
	hold := func(ctx context.Context) {
		mu.Lock()
		if left--; left == 0 {
			close(allDone)
		}
		mu.Unlock()
		select {
		case <-allDone:
		case <-ctx.Done():
		}
	}
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Go(func() { stages[i], errs[i] = p.stage(ctx, dir, budget, hold) })
	}
	wg.Wait()
	p.res.Stages = stages
	return errors.Join(errs...)
}

// finish computes the overall figure and fails a stage without one.
func (p *responsivenessProbe) finish() error {
	o := p.o
	p.overall()
	for _, st := range p.res.Stages {
		if !st.HasFigure() {
			return notStable(st, o)
		}
	}
	return nil
}

// notStable explains a stage without a figure: goodput never stabilised
// (so probing never started), or no probe of one kind completed.
func notStable(st ResponsivenessStage, o config.ResponsivenessProbe) error {
	if !st.GoodputSaturated {
		return fmt.Errorf("%s: not stable: goodput did not stabilise within %.0fs (%d intervals of %s; last moving average %.4g B/s): no responsiveness figure",
			st.Direction, st.Seconds, st.Intervals, o.IntervalDuration, st.GoodputBytesPerSecond)
	}
	return fmt.Errorf("%s: no responsiveness figure: %d foreign and %d self probes completed in the last %d intervals (%d of %d probes failed)",
		st.Direction, st.ForeignSamples, st.SelfSamples, o.MovingAverageDistance, st.ProbeErrors, 2*st.ProbePairs)
}

// overall pools the final windows and grades the result.
func (p *responsivenessProbe) overall() {
	r := p.res
	var all rpm.Probes
	all.TLS = p.tlsCfg != nil
	r.Stable = len(r.Stages) > 0
	for _, st := range r.Stages {
		if !st.HasFigure() {
			r.Stable = false
			return
		}
		r.Stable = r.Stable && st.Stable
		all.Add(st.window)
	}
	c, err := rpm.Aggregate(all, p.params.TMP)
	if err != nil {
		return
	}
	r.RPM = c.RPM()
	r.Level = rpm.NetworkQualityLevel(r.RPM)
	r.Class = rpm.Classify(r.RPM).String()
	increase := rpm.RoundTrip(r.RPM) - time.Duration(r.IdleRoundTripSeconds*float64(time.Second))
	r.BloatGrade = rpm.BloatGrade(max(increase, 0))
}

// responsivenessURL parses the target: a URL, https:// when it has no
// scheme (the draft's servers are HTTPS), and the well-known path when it
// has none.
func responsivenessURL(target string) (*url.URL, error) {
	if l := strings.ToLower(target); !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") && targetScheme(target) == "" {
		target = "https://" + target
	}
	u, err := targetURL(target)
	if err != nil {
		return nil, fmt.Errorf("could not parse target URL: %w", err)
	}
	if u.Path == "" {
		u.Path = "/.well-known/nq"
	}
	return u, nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

func joinHostPort(ip *net.IPAddr, port string) string {
	if ip.Zone != "" {
		return net.JoinHostPort(ip.IP.String()+"%"+ip.Zone, port)
	}
	return net.JoinHostPort(ip.IP.String(), port)
}

// nqURLs are the document's three URLs.
type nqURLs struct{ small, large, upload *url.URL }

// nqDocument is the configuration document (draft 09 § Responsiveness
// Test Server Discovery): the names since draft 02 and the older ones with
// "https_", which Apple's and goresponsiveness's servers still send.
type nqDocument struct {
	Version *int `json:"version"`
	URLs    struct {
		Small       string `json:"small_download_url"`
		Large       string `json:"large_download_url"`
		Upload      string `json:"upload_url"`
		SmallHTTPS  string `json:"small_https_download_url"`
		LargeHTTPS  string `json:"large_https_download_url"`
		UploadHTTPS string `json:"https_upload_url"`
	} `json:"urls"`
	TestEndpoint string `json:"test_endpoint"`
}

// readDocument fetches and checks the configuration document, connecting
// to addr (the target's address, already judged by the policy).
func (p *responsivenessProbe) readDocument(ctx context.Context, u *url.URL, addr string, tlsCfg *tls.Config) (nqURLs, error) {
	var none nqURLs
	dialer, err := p.dialer()
	if err != nil {
		return none, err
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsCfg,
		ForceAttemptHTTP2:   true,
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return none, fmt.Errorf("could not build the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", tpUserAgent())
	p.logger.Info("reading the responsiveness configuration", "url", u.Redacted(), "address", addr)
	resp, err := c.Do(req)
	if err != nil {
		return none, fmt.Errorf("fetching the configuration document: %w", unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, rpmDocLimit+1))
	if err != nil {
		return none, fmt.Errorf("reading the configuration document: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("the configuration document answered HTTP status %d (want 200)", resp.StatusCode)
		if loc := resp.Header.Get("Location"); loc != "" {
			msg += fmt.Sprintf(", a redirect to %q (the draft's clients do not follow redirects: give that URL)", clipText(loc, 200))
		}
		return none, errors.New(msg)
	}
	if len(body) > rpmDocLimit {
		return none, fmt.Errorf("the configuration document is larger than %d bytes", rpmDocLimit)
	}
	return parseNQ(body, u)
}

// parseNQ checks the document as the draft asks: version 1, three http(s)
// URLs on one host. Relative URLs resolve against the document's URL.
func parseNQ(body []byte, base *url.URL) (nqURLs, error) {
	var none nqURLs
	var doc nqDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return none, fmt.Errorf("the configuration document is not the responsiveness test's JSON: %w (starts %q)", err, clipText(string(body), 60))
	}
	if doc.Version == nil {
		return none, errors.New(`the configuration document has no "version" (want 1)`)
	}
	if *doc.Version != 1 {
		return none, fmt.Errorf("the configuration document's version is %d; this prober knows version 1", *doc.Version)
	}
	pick := func(name, s, old string) (*url.URL, error) {
		if s == "" {
			s = old
		}
		if s == "" {
			return nil, fmt.Errorf("the configuration document has no urls.%s", name)
		}
		u, err := base.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("urls.%s %q: %w", name, clipText(s, 100), unwrapURLError(err))
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("urls.%s %q: want an http or https URL", name, clipText(s, 100))
		}
		return u, nil
	}
	var out nqURLs
	var err error
	if out.small, err = pick("small_download_url", doc.URLs.Small, doc.URLs.SmallHTTPS); err != nil {
		return none, err
	}
	if out.large, err = pick("large_download_url", doc.URLs.Large, doc.URLs.LargeHTTPS); err != nil {
		return none, err
	}
	if out.upload, err = pick("upload_url", doc.URLs.Upload, doc.URLs.UploadHTTPS); err != nil {
		return none, err
	}
	for _, u := range []*url.URL{out.large, out.upload} {
		if u.Scheme != out.small.Scheme || !strings.EqualFold(u.Host, out.small.Host) {
			return none, fmt.Errorf("the configuration document's URLs are on different hosts (%s://%s, %s://%s); the draft requires one",
				out.small.Scheme, out.small.Host, u.Scheme, u.Host)
		}
	}
	return out, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err // its text repeats the URL
	}
	return err
}

// target fixes where the test connections go: the document's host, which
// is the target's in the usual case (its address is reused), else resolved
// and judged by the policy like the target.
func (p *responsivenessProbe) target(ctx context.Context, doc *url.URL, docIP *net.IPAddr, urls nqURLs) error {
	r := p.res
	r.SmallURL, r.LargeURL, r.UploadURL = urls.small.Redacted(), urls.large.Redacted(), urls.upload.Redacted()
	p.urls = urls
	p.scheme, p.host = urls.small.Scheme, urls.small.Host
	ip := docIP
	if !strings.EqualFold(urls.small.Hostname(), doc.Hostname()) {
		var scratch Common
		var err error
		ip, err = ResolveTarget(ctx, &scratch, urls.small.Hostname(), p.o.IPProtocol, p.o.IPProtocolFallback, p.req.Policy, p.logger)
		if err != nil {
			return fmt.Errorf("resolving the test host %s: %w", urls.small.Hostname(), err)
		}
		r.IPAddr, r.IPProtocol = scratch.IPAddr, scratch.IPProtocol
	}
	p.addr = joinHostPort(ip, portOf(urls.small))
	if p.scheme == "https" {
		o := p.o.TLSConfig
		if o.ServerName == "" {
			o.ServerName = urls.small.Hostname()
		}
		cfg, err := pconfig.NewTLSConfigWithContext(ctx, &o)
		if err != nil {
			return fmt.Errorf("error creating TLS configuration: %w", err)
		}
		cfg.NextProtos = []string{"h2", "http/1.1"} // http/1.1 too, to name a server that has no h2
		p.tlsCfg = cfg
	}
	return nil
}

// dialer is the policy's dialer with source_ip_address and
// congestion_control.
func (p *responsivenessProbe) dialer() (*net.Dialer, error) {
	d, err := p.req.Policy.Dialer("tcp", p.o.SourceIPAddress)
	if err != nil {
		return nil, err
	}
	if cc := p.o.CongestionControl; cc != "" {
		check := d.Control
		d.Control = func(network, address string, c syscall.RawConn) error {
			if check != nil {
				if err := check(network, address, c); err != nil {
					return err
				}
			}
			return setCongestionControl(c, cc)
		}
	}
	return d, nil
}

// idle runs the foreign probes before any load: the idle round trip, and
// a check that the test host answers at all before loading the link.
func (p *responsivenessProbe) idle(ctx context.Context) error {
	n := p.o.IdleProbes
	if n == 0 {
		return nil
	}
	var tcp, tlsf, httpf []float64
	var lastErr error
	for range n {
		f, cs, err := p.foreignProbe(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		if cs != nil {
			p.res.TLSVersion = tls.VersionName(cs.Version)
		}
		tcp, tlsf, httpf = append(tcp, float64(f.TCP)), append(tlsf, float64(f.TLS)), append(httpf, float64(f.HTTP))
	}
	p.res.IdleProbes = len(tcp)
	if len(tcp) == 0 {
		return fmt.Errorf("none of %d idle probes of %s was answered: %w", n, p.res.SmallURL, lastErr)
	}
	tm := func(xs []float64) time.Duration { m, _ := rpm.TrimmedMean(xs, p.params.TMP); return time.Duration(m) }
	c := rpm.Components{TCPForeign: tm(tcp), TLSForeign: tm(tlsf), HTTPForeign: tm(httpf), TLS: p.tlsCfg != nil}
	p.res.IdleRoundTripSeconds = c.ForeignRoundTrip().Seconds()
	p.logger.Info("idle round trip", "seconds", p.res.IdleRoundTripSeconds, "probes", len(tcp), "tls_version", p.res.TLSVersion)
	return nil
}
