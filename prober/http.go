package prober

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
	pconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/publicsuffix"

	"github.com/isp-checker/isp-checker/config"
)

// HTTPPhases are the phases of probe_http_duration_seconds, in order.
var HTTPPhases = []string{"resolve", "connect", "tls", "processing", "transfer"}

// maxRedirects is how many redirects are followed, as net/http and
// blackbox_exporter do; the response to the last request is then judged.
const maxRedirects = 10

// maxBufferedBody caps how much of a body is held in memory to match
// regexps or CEL against when no body_size_limit is set.
var maxBufferedBody int64 = 32 << 20

// HTTPResult is the outcome of an http probe.
type HTTPResult struct {
	Common
	// URL is the target as probed (with http:// added when it had no scheme).
	URL string `json:"url,omitempty"`
	// FinalURL is the last URL requested, after redirects, with the host as
	// the user wrote it rather than the address it resolved to.
	FinalURL string `json:"final_url,omitempty"`
	// StatusCode of the final response; 0 when there was none.
	StatusCode int `json:"status_code"`
	// HTTPVersion is the final response's protocol, e.g. "HTTP/1.1", "HTTP/2.0".
	HTTPVersion string `json:"http_version,omitempty"`
	// Redirects counts the redirect responses received (followed or not).
	Redirects int `json:"redirects"`
	// SSL is true when the final response came over TLS.
	SSL bool `json:"ssl"`
	// ContentLength is the Content-Length of the final response, -1 when unknown.
	ContentLength int64 `json:"content_length"`
	// UncompressedBodyLength counts the body bytes read, after decompression.
	UncompressedBodyLength int64 `json:"uncompressed_body_length"`
	// LastModified is the final response's Last-Modified header, when valid.
	LastModified time.Time `json:"last_modified,omitzero"`
	// PhaseSeconds holds probe_http_duration_seconds by phase (see
	// HTTPPhases), summed over redirects. A phase is absent when the probe
	// never got to start it, as blackbox_exporter leaves it out.
	PhaseSeconds map[string]float64 `json:"phase_seconds,omitempty"`
	// FailedDueToRegex is true when a header or body regexp failed the probe.
	FailedDueToRegex bool `json:"failed_due_to_regex"`
	// FailedDueToCEL is set when CEL expressions are configured.
	FailedDueToCEL *bool `json:"failed_due_to_cel,omitempty"`
	// TLS describes the final response's TLS session, or the failed
	// handshake (with the server's certificates) when verification failed.
	TLS *TLSInfo `json:"tls,omitempty"`
}

type httpProbe struct {
	req    Request
	cfg    config.HTTPProbe
	logger *slog.Logger
	res    *HTTPResult
	// tooManyRedirects is set when a redirect chain was cut at maxRedirects.
	tooManyRedirects bool
	// head bounds each request's handshake and response headers.
	head headGuard
}

// ProbeHTTP is the http prober: one request (and its redirects) to a URL,
// checked against the module's http: options.
func ProbeHTTP(ctx context.Context, req *Request) Result {
	p := &httpProbe{req: *req, cfg: req.Module.HTTP, logger: req.Logger, res: &HTTPResult{}}
	if p.cfg.FailIfBodyJSONMatchesCEL != nil || p.cfg.FailIfBodyJSONNotMatchesCEL != nil {
		p.res.FailedDueToCEL = new(bool)
	}
	p.run(ctx)
	p.head.release()
	p.res.Success = p.res.Error == ""
	return p.res
}

// fail records the first reason the probe failed; later ones are only logged.
func (p *httpProbe) fail(msg string, err error) { p.failFirst(msg, err, p.res.Fail) }

// failStep is fail for a msg that only names the step (Common.FailStep).
func (p *httpProbe) failStep(msg string, err error) { p.failFirst(msg, err, p.res.FailStep) }

// failDenied is fail for a target_policy denial (Common.FailDenied).
func (p *httpProbe) failDenied(err error) {
	p.failFirst(deniedMsg, err, func(l *slog.Logger, _ string, err error) { p.res.FailDenied(l, err) })
}

func (p *httpProbe) failFirst(msg string, err error, fail func(*slog.Logger, string, error)) {
	if p.res.Error == "" {
		fail(p.logger, msg, err)
		return
	}
	if err != nil {
		p.logger.Error(msg, "err", err)
	} else {
		p.logger.Error(msg)
	}
}

func (p *httpProbe) ok() bool { return p.res.Error == "" }

func (p *httpProbe) run(ctx context.Context) {
	u, err := targetURL(p.req.Target)
	if err != nil {
		p.fail("Could not parse target URL", err)
		return
	}
	if p.cfg.EnableHTTP3 {
		if hc := p.cfg.HTTPClientConfig; hc.ProxyURL.URL != nil || hc.ProxyFromEnvironment {
			p.fail("Error generating HTTP client", errHTTP3Proxy)
			return
		}
		if u.Scheme == "http" {
			// As blackbox_exporter (which misses bare targets): HTTP/3 is https only.
			p.logger.Warn("enable_http3: probing over https, HTTP/3 has no plain-text form", "target", u.Redacted())
			u.Scheme = "https"
		}
	}
	p.res.URL = u.Redacted()
	headers, err := withHostname(p.cfg.Headers, p.req.Hostname)
	if err != nil {
		p.fail("Invalid hostname parameter", err)
		return
	}
	host, port := u.Hostname(), u.Port()
	p.res.PhaseSeconds = map[string]float64{}

	hc := p.cfg.HTTPClientConfig
	skipResolve := p.cfg.SkipResolvePhaseWithProxy && hc.ProxyURL.URL != nil && !hc.ProxyFromEnvironment
	origHost := u.Host
	if skipResolve {
		if err := p.req.Policy.AllowProxiedHost(ctx, host, false); err != nil {
			p.failDenied(err)
			return
		}
	} else {
		ip, ok := p.req.resolve(ctx, &p.res.Common, host, p.cfg.IPOptions)
		p.res.PhaseSeconds["resolve"] = p.res.DNSLookupSeconds
		if !ok {
			return
		}
		// Connect to the address just resolved; the name goes in Host and SNI.
		switch {
		case port != "":
			u.Host = net.JoinHostPort(ip.String(), port)
		case strings.Contains(ip.String(), ":"):
			u.Host = "[" + ip.String() + "]"
		default:
			u.Host = ip.String()
		}
	}

	serverName := hc.TLSConfig.ServerName
	if serverName == "" {
		serverName = host
		if h := headerValue(headers, "Host"); h != "" {
			serverName = stripPort(h)
		}
	}
	tr, err := p.newTransport(ctx, hc, serverName, skipResolve)
	if err != nil {
		p.fail("Error generating HTTP client", err)
		return
	}
	tr.firstHost, tr.origHost = u.Host, origHost
	defer tr.CloseIdleConnections()
	defer func() {
		p.res.FinalURL = tr.finalURL()
		tr.addPhases(p.res.PhaseSeconds)
	}()

	httpReq, closeBody, err := p.newRequest(ctx, u, headers, tr)
	if err != nil {
		p.fail("Error creating request", err)
		return
	}
	defer closeBody()
	p.do(ctx, httpReq, tr)
}

// newTransport builds the two round trippers blackbox_exporter uses: one
// that sends the configured server name, for the first host, and one that
// lets Go derive it from the URL, for redirects to other hosts.
func (p *httpProbe) newTransport(ctx context.Context, hc pconfig.HTTPClientConfig, serverName string, skipResolve bool) (*httpTransport, error) {
	if p.cfg.EnableHTTP3 {
		return p.newHTTP3Transports(ctx, hc, serverName)
	}
	dialer, err := p.req.Policy.Dialer("tcp", p.cfg.SourceIPAddress)
	if err != nil {
		return nil, err
	}
	if hc.OAuth2 != nil {
		if err := allowTokenURL(ctx, hc.OAuth2, p.req.Policy); err != nil {
			return nil, fmt.Errorf("oauth2 token_url: %w", err)
		}
	}
	// Redirects to other names resolve at dial time, through the same
	// resolver as the target; Control checks every address before connect.
	dialer.Resolver = Resolver
	if p.cfg.SourceIPAddress != "" {
		p.logger.Info("Using local address", "source_ip_address", p.cfg.SourceIPAddress)
	}
	opts := []pconfig.HTTPClientOption{
		// boundDial: an oauth2 token request, which prometheus/common makes
		// without the probe's context, still ends at the probe's deadline.
		pconfig.WithDialContextFunc(boundDial(ctx, p.head.dial(p.req.Policy.DialExempting(hc.Proxy(), dialer.DialContext)))),
		pconfig.WithKeepAlivesDisabled(),
	}
	hc.TLSConfig.ServerName = serverName
	first, err := pconfig.NewRoundTripperFromConfigWithContext(ctx, hc, "http_probe", opts...)
	if err != nil {
		return nil, err
	}
	hc.TLSConfig.ServerName = ""
	other, err := pconfig.NewRoundTripperFromConfigWithContext(ctx, hc, "http_probe", opts...)
	if err != nil {
		closeIdle(first)
		return nil, err
	}
	return &httpTransport{
		probe:       p,
		first:       first,
		other:       other,
		serverName:  serverName,
		proxy:       hc.Proxy(),
		skipResolve: skipResolve,
	}, nil
}

func (p *httpProbe) newRequest(ctx context.Context, u *url.URL, headers map[string]string, tr *httpTransport) (*http.Request, func(), error) {
	method := p.cfg.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	closeBody := func() {}
	if p.cfg.Body != "" {
		body = strings.NewReader(p.cfg.Body)
	}
	if p.cfg.BodyFile != "" {
		f, err := os.Open(p.cfg.BodyFile)
		if err != nil {
			return nil, nil, err
		}
		body = f
		closeBody = func() { _ = f.Close() }
	}
	trace := &httptrace.ClientTrace{
		DNSStart:             tr.dnsStart,
		DNSDone:              tr.dnsDone,
		ConnectStart:         tr.connectStart,
		ConnectDone:          tr.connectDone,
		GotConn:              tr.gotConn,
		GotFirstResponseByte: tr.gotFirstResponseByte,
		TLSHandshakeStart:    tr.tlsHandshakeStart,
		TLSHandshakeDone:     tr.tlsHandshakeDone,
	}
	r, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, u.String(), body)
	if err != nil {
		closeBody()
		return nil, nil, err
	}
	r.Host = tr.origHost
	for k, v := range headers {
		if textproto.CanonicalMIMEHeaderKey(k) == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header.Set("User-Agent", userAgent())
	}
	// Ask for the encoding the module expects to decode (blackbox leaves
	// this to the user, and a server that honours the header would then
	// send an identity body the decoder rejects).
	if p.cfg.Compression != "" && r.Header.Get("Accept-Encoding") == "" {
		r.Header.Set("Accept-Encoding", p.cfg.Compression)
	}
	return r, closeBody, nil
}

func (p *httpProbe) do(ctx context.Context, r *http.Request, tr *httpTransport) {
	jar, err := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	if err != nil {
		p.fail("Error generating cookiejar", err)
		return
	}
	client := &http.Client{Transport: tr, Jar: jar, CheckRedirect: p.checkRedirect}
	// blackbox_exporter shows these phases (at 0) once a request is sent.
	for _, phase := range HTTPPhases[1:] {
		if _, ok := p.res.PhaseSeconds[phase]; !ok {
			p.res.PhaseSeconds[phase] = 0
		}
	}
	resp, err := client.Do(r)
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
		}
		p.res.TLS = tr.failedHandshake()
		switch {
		case errors.Is(err, ErrDenied):
			p.failDenied(err)
		case ctx.Err() != nil:
			p.fail("HTTP request did not complete before the probe timeout", err)
		default:
			p.failStep("HTTP request failed", err)
		}
		return
	}
	defer func() { _ = resp.Body.Close() }()
	p.logger.Info("Received HTTP response", "status_code", resp.StatusCode)
	p.res.StatusCode = resp.StatusCode
	p.res.HTTPVersion = resp.Proto
	p.res.ContentLength = resp.ContentLength

	if p.tooManyRedirects {
		p.fail(fmt.Sprintf("Redirect loop: stopped after %d redirects (last status %d, Location %q)",
			maxRedirects, resp.StatusCode, clipText(RedactTarget(resp.Header.Get("Location")), 200)), nil)
	}
	p.checkStatus(resp.StatusCode)
	if p.ok() && (len(p.cfg.FailIfHeaderMatchesRegexp) > 0 || len(p.cfg.FailIfHeaderNotMatchesRegexp) > 0) {
		if err := matchHeaders(resp.Header, p.cfg); err != nil {
			p.res.FailedDueToRegex = true
			p.fail("Header check failed", err)
		}
	}
	p.readBody(ctx, resp)
	tr.end()

	if lm, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		p.res.LastModified = lm
	}
	if len(p.cfg.ValidHTTPVersions) > 0 && !validVersion(p.cfg.ValidHTTPVersions, resp.Proto) {
		p.fail(fmt.Sprintf("Invalid HTTP version %s, want one of %s", resp.Proto, strings.Join(p.cfg.ValidHTTPVersions, ", ")), nil)
	}
	if resp.TLS != nil {
		p.res.SSL = true
		p.res.TLS = NewTLSInfo(resp.TLS, nil, tr.lastServerName())
		if p.cfg.FailIfSSL {
			p.fail("Final request was over SSL", nil)
		}
	} else if p.cfg.FailIfNotSSL && p.ok() {
		p.fail("Final request was not over SSL", nil)
	}
}

func (p *httpProbe) checkRedirect(r *http.Request, via []*http.Request) error {
	p.logger.Info("Received redirect", "location", RedactTarget(r.Response.Header.Get("Location")))
	p.res.Redirects = len(via)
	if !p.cfg.HTTPClientConfig.FollowRedirects {
		p.logger.Info("Not following redirect (follow_redirects is false)")
		return http.ErrUseLastResponse
	}
	if len(via) > maxRedirects {
		p.logger.Info("Not following redirect: too many redirects", "max", maxRedirects)
		p.tooManyRedirects = true
		return http.ErrUseLastResponse
	}
	// Checked here so that a refused hop is never requested; the dial
	// wrapper and Control check the same host and its addresses again.
	return p.req.Policy.AllowHost(r.URL.Hostname())
}

func (p *httpProbe) checkStatus(code int) {
	switch {
	case ValidHTTPStatus(p.cfg, code):
	case len(p.cfg.ValidStatusCodes) == 0:
		p.fail(fmt.Sprintf("Invalid HTTP response status code %d, wanted 2xx", code), nil)
	default:
		p.fail(fmt.Sprintf("Invalid HTTP response status code %d, wanted one of %v", code, p.cfg.ValidStatusCodes), nil)
	}
}

// ValidHTTPStatus reports whether an http module accepts status code: one
// of valid_status_codes, or any 2xx when none is configured.
func ValidHTTPStatus(cfg config.HTTPProbe, code int) bool {
	if len(cfg.ValidStatusCodes) == 0 {
		return code >= 200 && code <= 299
	}
	return slices.Contains(cfg.ValidStatusCodes, code)
}

// readBody decompresses, limits, matches and counts the response body.
func (p *httpProbe) readBody(ctx context.Context, resp *http.Response) {
	var r io.Reader = resp.Body
	if p.cfg.Compression != "" {
		dec, err := decompressor(p.cfg.Compression, resp.Body)
		if err != nil {
			p.fail("Failed to get decompressor for HTTP response body", err)
		} else {
			r = dec
		}
	}
	if limit := int64(p.cfg.BodySizeLimit); limit > 0 {
		r = &limitReader{r: r, left: limit, err: fmt.Errorf("response body is larger than body_size_limit (%d bytes)", limit)}
	}
	counter := &countingReader{r: r}
	defer func() { p.res.UncompressedBodyLength = counter.n }()

	needRegexp := len(p.cfg.FailIfBodyMatchesRegexp) > 0 || len(p.cfg.FailIfBodyNotMatchesRegexp) > 0
	needCEL := p.res.FailedDueToCEL != nil
	if p.ok() && (needRegexp || needCEL) {
		limit := int64(p.cfg.BodySizeLimit)
		if limit <= 0 {
			limit = maxBufferedBody
		}
		// Held in memory reserved from the process-wide budget, so that
		// many probes of endless bodies fail instead of the process growing.
		body := &heldBody{budget: budget}
		defer body.release()
		switch err := body.read(counter, limit); {
		case errors.Is(err, errBodyLimit):
			p.fail("Failed to read HTTP response body", fmt.Errorf(
				"response body is larger than %d bytes, too large to match; set body_size_limit", maxBufferedBody))
			return
		case errors.Is(err, ErrMemoryBudget):
			p.fail("Not enough memory to hold the response body for matching", err)
			return
		case err != nil:
			p.fail("Failed to read HTTP response body", err)
			return
		}
		flat, err := body.bytes()
		if err != nil {
			p.fail("Not enough memory to hold the response body for matching", err)
			return
		}
		if needRegexp {
			if err := matchBody(flat, p.cfg); err != nil {
				p.res.FailedDueToRegex = true
				p.fail("Body check failed", err)
			}
		}
		if needCEL && p.ok() {
			if err := matchCEL(ctx, flat, p.cfg); err != nil {
				if errors.Is(err, ErrMemoryBudget) {
					p.fail("Not enough memory to decode the response body for CEL", err)
					return
				}
				*p.res.FailedDueToCEL = true
				p.fail("CEL check failed", err)
			}
		}
	}
	if _, err := io.Copy(io.Discard, counter); err != nil {
		p.fail("Failed to read HTTP response body", err)
	}
}

// withHostname applies the hostname URL parameter as the Host header, as
// blackbox_exporter does, refusing a conflicting configured Host header.
func withHostname(headers map[string]string, hostname string) (map[string]string, error) {
	if hostname == "" {
		return headers, nil
	}
	if !httpguts.ValidHostHeader(hostname) || strings.ContainsAny(hostname, " /?#@") {
		return nil, fmt.Errorf("%q is not a valid Host header", clipText(hostname, 100))
	}
	out := make(map[string]string, len(headers)+1)
	for k, v := range headers {
		if textproto.CanonicalMIMEHeaderKey(k) == "Host" {
			if v != hostname {
				return nil, fmt.Errorf("host header defined both in module configuration (%s) and with URL-parameter 'hostname' (%s)", v, hostname)
			}
			continue
		}
		out[k] = v
	}
	out["Host"] = hostname
	return out, nil
}

func headerValue(headers map[string]string, name string) string {
	for k, v := range headers {
		if textproto.CanonicalMIMEHeaderKey(k) == name {
			return v
		}
	}
	return ""
}

func stripPort(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func userAgent() string {
	if version.Version == "" {
		return "isp-checker"
	}
	return "isp-checker/" + version.Version
}

func validVersion(valid []string, proto string) bool {
	for _, v := range valid {
		switch v {
		case "HTTP/2":
			v = "HTTP/2.0"
		case "HTTP/3":
			v = "HTTP/3.0"
		}
		if v == proto {
			return true
		}
	}
	return false
}

func matchHeaders(h http.Header, cfg config.HTTPProbe) error {
	for _, m := range cfg.FailIfHeaderMatchesRegexp {
		values := h.Values(m.Header)
		if len(values) == 0 {
			if m.AllowMissing {
				continue
			}
			return fmt.Errorf("missing required header %q", m.Header)
		}
		for _, v := range values {
			if m.Regexp.MatchString(v) {
				return fmt.Errorf("header %q matched regular expression %q", m.Header, m.Regexp.String())
			}
		}
	}
	for _, m := range cfg.FailIfHeaderNotMatchesRegexp {
		values := h.Values(m.Header)
		if len(values) == 0 {
			if m.AllowMissing {
				continue
			}
			return fmt.Errorf("missing required header %q", m.Header)
		}
		matched := false
		for _, v := range values {
			if m.Regexp.MatchString(v) {
				matched = true
				break
			}
		}
		if !matched {
			return fmt.Errorf("header %q did not match regular expression %q (%d values)", m.Header, m.Regexp.String(), len(values))
		}
	}
	return nil
}

func matchBody(body []byte, cfg config.HTTPProbe) error {
	for _, re := range cfg.FailIfBodyMatchesRegexp {
		if re.Match(body) {
			return fmt.Errorf("body matched regular expression %q", re.String())
		}
	}
	for _, re := range cfg.FailIfBodyNotMatchesRegexp {
		if !re.Match(body) {
			return fmt.Errorf("body did not match regular expression %q", re.String())
		}
	}
	return nil
}

// celDecodeFactor is how much memory decoding JSON may take per body byte:
// [0,0,…] holds a 24-byte interface and float per 2 bytes of text.
const celDecodeFactor = 16

func matchCEL(ctx context.Context, body []byte, cfg config.HTTPProbe) error {
	need := celDecodeFactor * int64(len(body))
	if err := budget.Reserve(need); err != nil {
		return err
	}
	defer budget.Release(need)
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	in := map[string]any{"body": doc}
	eval := func(prg *config.CELProgram) (bool, error) {
		val, _, err := prg.ContextEval(ctx, in)
		if err != nil {
			return false, fmt.Errorf("evaluating CEL expression %q: %w", prg.String(), err)
		}
		b, ok := val.Value().(bool)
		if !ok {
			return false, fmt.Errorf("CEL expression %q returned %v, not a bool", prg.String(), val.Type())
		}
		return b, nil
	}
	if prg := cfg.FailIfBodyJSONMatchesCEL; prg != nil {
		matched, err := eval(prg)
		if err != nil {
			return err
		}
		if matched {
			return fmt.Errorf("body matched CEL expression %q", prg.String())
		}
	}
	if prg := cfg.FailIfBodyJSONNotMatchesCEL; prg != nil {
		matched, err := eval(prg)
		if err != nil {
			return err
		}
		if !matched {
			return fmt.Errorf("body did not match CEL expression %q", prg.String())
		}
	}
	return nil
}

// decompressor decodes a body in the configured encoding. "deflate" accepts
// both the zlib wrapping RFC 9110 specifies and the raw DEFLATE stream some
// servers send (and blackbox_exporter expects).
func decompressor(alg string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(alg) {
	case "gzip":
		return gzip.NewReader(r)
	case "br":
		return brotli.NewReader(r), nil
	case "deflate":
		br := bufio.NewReader(r)
		if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
			return zlib.NewReader(br)
		}
		return flate.NewReader(br), nil
	case "identity", "":
		return r, nil
	}
	return nil, fmt.Errorf("unsupported compression %q", alg)
}

// limitReader fails with err once more than left bytes are available, so an
// endless body ends the read instead of the process's memory.
type limitReader struct {
	r    io.Reader
	left int64
	err  error
	done bool
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.done {
		return 0, l.err
	}
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.done = true
			return 0, l.err
		}
		return 0, err
	}
	if int64(len(b)) > l.left {
		b = b[:l.left]
	}
	n, err := l.r.Read(b)
	l.left -= int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// roundTripTrace holds the timings of one request of a redirect chain.
type roundTripTrace struct {
	tls        bool
	serverName string
	start      time.Time
	dnsDone    time.Time
	connDone   time.Time
	gotConn    time.Time
	firstByte  time.Time
	tlsStart   time.Time
	tlsDone    time.Time
	end        time.Time
	tlsState   tls.ConnectionState
	tlsErr     error
}

// httpTransport times every request of a redirect chain, applies the target
// policy to proxied requests, and picks the round tripper by host.
type httpTransport struct {
	probe       *httpProbe
	first       http.RoundTripper
	other       http.RoundTripper
	serverName  string
	proxy       func(*http.Request) (*url.URL, error)
	skipResolve bool
	// firstHost is the first request's URL host (the resolved address);
	// origHost is the same host as the user wrote it.
	firstHost, origHost string

	mu      sync.Mutex
	traces  []*roundTripTrace
	current *roundTripTrace
	lastURL string
}

func (t *httpTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	shown := *r.URL
	same := r.URL.Host == t.firstHost
	if same {
		shown.Host = t.origHost
	}
	rt := &roundTripTrace{tls: r.URL.Scheme == "https", serverName: t.serverName}
	if !same {
		rt.serverName = r.URL.Hostname()
	}
	t.mu.Lock()
	t.traces = append(t.traces, rt)
	t.current = rt
	t.lastURL = shown.Redacted()
	t.mu.Unlock()

	t.probe.logger.Info("Making HTTP request", "url", shown.Redacted(), "host", r.Host)
	if err := t.checkProxied(r); err != nil {
		return nil, err
	}
	r = t.probe.head.begin(r)
	defer t.probe.head.end()
	if same {
		return t.first.RoundTrip(r)
	}
	t.probe.logger.Info("Address does not match first address, not sending TLS ServerName", "first", t.origHost, "address", r.URL.Host)
	return t.other.RoundTrip(r)
}

// checkProxied enforces the target policy on a request that goes through a
// proxy: the dialer only sees the proxy's address.
func (t *httpTransport) checkProxied(r *http.Request) error {
	if t.proxy == nil {
		return nil
	}
	pu, err := t.proxy(r)
	if err != nil {
		return fmt.Errorf("choosing the proxy: %w", err)
	}
	if pu == nil {
		return nil // no_proxy: the dialer checks the address itself
	}
	return t.probe.req.Policy.AllowProxiedHost(r.Context(), r.URL.Hostname(), !t.skipResolve)
}

// CloseIdleConnections closes both transports' idle connections, so no
// connection (or goroutine) outlives the probe.
func (t *httpTransport) CloseIdleConnections() {
	closeIdle(t.first)
	closeIdle(t.other)
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *httpTransport) with(f func(rt *roundTripTrace)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil {
		f(t.current)
	}
}

func (t *httpTransport) dnsStart(httptrace.DNSStartInfo) {
	t.with(func(rt *roundTripTrace) { rt.start = time.Now() })
}

func (t *httpTransport) dnsDone(httptrace.DNSDoneInfo) {
	t.with(func(rt *roundTripTrace) { rt.dnsDone = time.Now() })
}

func (t *httpTransport) connectStart(_, _ string) {
	t.with(func(rt *roundTripTrace) {
		// No lookup happened: the URL held an address.
		if rt.dnsDone.IsZero() {
			rt.start = time.Now()
			rt.dnsDone = rt.start
		}
	})
}

func (t *httpTransport) connectDone(_, _ string, _ error) {
	t.with(func(rt *roundTripTrace) { rt.connDone = time.Now() })
}

func (t *httpTransport) gotConn(httptrace.GotConnInfo) {
	t.with(func(rt *roundTripTrace) {
		rt.gotConn = time.Now()
		// A reused connection: no resolve, connect or TLS time.
		if rt.dnsDone.IsZero() {
			rt.start, rt.dnsDone, rt.connDone = rt.gotConn, rt.gotConn, rt.gotConn
			rt.tlsStart, rt.tlsDone = rt.gotConn, rt.gotConn
		}
	})
}

func (t *httpTransport) gotFirstResponseByte() {
	t.with(func(rt *roundTripTrace) { rt.firstByte = time.Now() })
}

func (t *httpTransport) tlsHandshakeStart() {
	t.with(func(rt *roundTripTrace) { rt.tlsStart = time.Now() })
}

func (t *httpTransport) tlsHandshakeDone(state tls.ConnectionState, err error) {
	t.with(func(rt *roundTripTrace) {
		rt.tlsDone = time.Now()
		rt.tlsState, rt.tlsErr = state, err
	})
}

// end marks the final response's body as read.
func (t *httpTransport) end() {
	t.with(func(rt *roundTripTrace) { rt.end = time.Now() })
}

func (t *httpTransport) finalURL() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastURL
}

func (t *httpTransport) lastServerName() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current == nil {
		return t.serverName
	}
	return t.current.serverName
}

// failedHandshake describes the last TLS handshake that failed, with the
// certificates the server sent when verification was what failed.
func (t *httpTransport) failedHandshake() *TLSInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.traces) - 1; i >= 0; i-- {
		if rt := t.traces[i]; rt.tlsErr != nil {
			return NewTLSInfo(&rt.tlsState, rt.tlsErr, rt.serverName)
		}
	}
	return nil
}

// addPhases sums the phases over the redirect chain as blackbox_exporter
// does. The first request's resolve time comes from ResolveTarget.
func (t *httpTransport) addPhases(phases map[string]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, rt := range t.traces {
		if i > 0 && !rt.dnsDone.IsZero() {
			phases["resolve"] += rt.dnsDone.Sub(rt.start).Seconds()
		}
		if rt.gotConn.IsZero() {
			continue
		}
		if rt.tls && !rt.tlsDone.IsZero() {
			phases["connect"] += rt.connDone.Sub(rt.dnsDone).Seconds()
			phases["tls"] += rt.tlsDone.Sub(rt.tlsStart).Seconds()
		} else {
			phases["connect"] += rt.gotConn.Sub(rt.dnsDone).Seconds()
		}
		if rt.firstByte.IsZero() {
			continue
		}
		phases["processing"] += rt.firstByte.Sub(rt.gotConn).Seconds()
		if rt.end.IsZero() {
			continue
		}
		phases["transfer"] += rt.end.Sub(rt.firstByte).Seconds()
	}
}
