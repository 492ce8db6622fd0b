package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"time"

	"github.com/gorilla/websocket"
	pconfig "github.com/prometheus/common/config"

	"github.com/isp-checker/isp-checker/config"
)

// WebsocketPhases are the phases of probe_websocket_duration_seconds, in order.
var WebsocketPhases = []string{"resolve", "connect", "processing", "transfer"}

// WebsocketResult is the outcome of a websocket probe.
type WebsocketResult struct {
	Common
	// StatusCode of the upgrade response; 0 when there was none.
	StatusCode int `json:"status_code"`
	// Upgraded is true once the server accepted the upgrade.
	Upgraded bool `json:"upgraded"`
	// FailedDueToRegex is true when a query_response step failed: its
	// regexp did not match the message, or the message could not be read
	// or the reply sent (blackbox_exporter counts those too).
	FailedDueToRegex bool `json:"failed_due_to_regex"`
	// PhaseSeconds holds probe_websocket_duration_seconds by phase, with
	// blackbox_exporter's presence rules: resolve once resolved, connect
	// once the TCP connection was made, processing (TLS and the upgrade)
	// once a dial was attempted, transfer when query_response ran.
	PhaseSeconds map[string]float64 `json:"phase_seconds,omitempty"`
	// TLS describes the wss:// handshake, failed or not.
	TLS *TLSInfo `json:"tls,omitempty"`
}

type websocketProbe struct {
	req    Request
	cfg    config.WebsocketProbe
	logger *slog.Logger
	res    *WebsocketResult
	head   headGuard
}

// ProbeWebsocket is the websocket prober.
func ProbeWebsocket(ctx context.Context, req *Request) Result {
	p := &websocketProbe{req: *req, cfg: req.Module.Websocket, logger: req.Logger, res: &WebsocketResult{}}
	p.run(ctx)
	p.head.release()
	return p.res
}

// websocketURL parses a ws:// or wss:// target. Unlike http's, a target
// without a scheme is refused, as blackbox_exporter refuses it.
func websocketURL(target string) (*url.URL, error) {
	s := targetScheme(target)
	if s != "ws" && s != "wss" {
		return nil, errors.New("want a ws:// or wss:// URL")
	}
	u, err := url.Parse(target)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL, password and all
	}
	if err != nil {
		return nil, err
	}
	u.Scheme = s
	if u.Host == "" {
		return nil, errors.New("the URL has no host")
	}
	return u, nil
}

func (p *websocketProbe) run(ctx context.Context) {
	u, err := websocketURL(p.req.Target)
	if err != nil {
		p.res.Fail(p.logger, "Could not parse target URL", err)
		return
	}
	hc := p.cfg.HTTPClientConfig
	if hc.ProxyConnectHeader != nil {
		p.res.Fail(p.logger, "proxy_connect_header is not supported by the websocket prober", nil)
		return
	}
	headers, err := p.headers(ctx, u)
	if err != nil {
		p.res.Fail(p.logger, "Error building the upgrade request headers", err)
		return
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"ws": "80", "wss": "443"}[u.Scheme]
	}
	ip, ok := p.req.resolve(ctx, &p.res.Common, host, p.cfg.IPOptions)
	if !ok {
		return
	}
	p.res.PhaseSeconds = map[string]float64{"resolve": p.res.DNSLookupSeconds}

	tlsConfig, err := pconfig.NewTLSConfigWithContext(ctx, &hc.TLSConfig)
	if err != nil {
		p.res.Fail(p.logger, "Error creating TLS configuration", err)
		return
	}
	// The dial goes to the address just resolved; the name the user wrote
	// stays in the Host header and the TLS server name.
	if tlsConfig.ServerName == "" {
		tlsConfig.ServerName = host
	}
	if headers.Get("Host") == "" {
		headers.Set("Host", u.Host)
	}
	dialURL := *u
	dialURL.Host = net.JoinHostPort(ip.String(), port)

	conn, ok := p.dial(ctx, &dialURL, headers, tlsConfig)
	if !ok {
		return
	}
	defer func() { _ = conn.Close() }()
	p.res.Success = p.queryResponse(ctx, conn)
}

// headers builds the upgrade request's headers with prometheus/common's own
// round trippers (basic_auth, authorization, http_headers, headers), so
// secrets and files are read as the http prober reads them: a file that
// cannot be read fails the probe rather than sending no credential.
func (p *websocketProbe) headers(ctx context.Context, u *url.URL) (http.Header, error) {
	hc := p.cfg.HTTPClientConfig
	capture := &headerCapture{}
	// Innermost, oauth2 fetches its token (through the target policy) with
	// the User-Agent the upgrade will carry, and sets the Authorization.
	rt, err := withOAuth2(ctx, hc, capture, p.req.Policy, p.cfg.SourceIPAddress)
	if err != nil {
		return nil, err
	}
	rt = defaultUserAgent{next: rt}
	rt = pconfig.NewHeadersRoundTripper(&p.cfg.Headers, rt)
	if hc.HTTPHeaders != nil {
		rt = pconfig.NewHeadersRoundTripper(hc.HTTPHeaders, rt)
	}
	if rt, err = withAuth(hc, rt); err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, (&url.URL{Scheme: "http", Host: u.Host, Path: "/"}).String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	return capture.header, nil
}

// defaultUserAgent sets isp-checker's User-Agent on a request that has
// none from the configured headers.
type defaultUserAgent struct{ next http.RoundTripper }

func (d defaultUserAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", userAgent())
	}
	return d.next.RoundTrip(r)
}

// headerCapture ends a round-tripper chain: it keeps the headers the
// chain set and answers nothing was sent.
type headerCapture struct{ header http.Header }

func (c *headerCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.header = r.Header.Clone()
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
}

// dial makes the upgrade: TCP (or the proxy's) connect through the target
// policy, TLS for wss://, then the HTTP/1.1 upgrade request.
func (p *websocketProbe) dial(ctx context.Context, u *url.URL, headers http.Header, tlsConfig *tls.Config) (*websocket.Conn, bool) {
	hc := p.cfg.HTTPClientConfig
	base, err := p.req.Policy.Dialer("tcp", p.cfg.SourceIPAddress)
	if err != nil {
		p.res.Fail(p.logger, "Error creating dialer", err)
		return nil, false
	}
	proxy := hc.Proxy()
	var connectSeconds float64
	connected := false
	timed := func(ctx context.Context, network, address string) (net.Conn, error) {
		start := time.Now()
		c, err := base.DialContext(ctx, network, address)
		if err == nil {
			connected = true
			connectSeconds += time.Since(start).Seconds()
		}
		return c, err
	}
	d := websocket.Dialer{
		NetDialContext:  p.head.dial(p.req.Policy.DialExempting(proxy, timed)),
		Proxy:           proxy,
		TLSClientConfig: tlsConfig,
	}
	trace := &httptrace.ClientTrace{
		TLSHandshakeDone: func(state tls.ConnectionState, err error) {
			p.res.TLS = NewTLSInfo(&state, err, tlsConfig.ServerName)
		},
	}
	p.logger.Info("Dialing websocket", "url", u.Redacted(), "host", headers.Get("Host"))
	start := time.Now()
	p.head.start(u.Scheme == "wss")
	conn, resp, err := d.DialContext(httptrace.WithClientTrace(ctx, trace), u.String(), headers)
	p.head.end()
	if connected {
		p.res.PhaseSeconds["connect"] = connectSeconds
	}
	p.res.PhaseSeconds["processing"] = max(0, time.Since(start).Seconds()-connectSeconds)
	if resp != nil {
		p.res.StatusCode = resp.StatusCode
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrDenied):
			p.res.FailDenied(p.logger, err)
		case errors.Is(err, websocket.ErrBadHandshake) && resp != nil:
			p.res.Fail(p.logger, fmt.Sprintf("Websocket upgrade refused: HTTP status %d", resp.StatusCode), err)
		case ctx.Err() != nil:
			p.res.Fail(p.logger, "Websocket upgrade did not complete before the probe timeout", err)
		default:
			p.res.Fail(p.logger, "Error dialing websocket", err)
		}
		return nil, false
	}
	p.res.Upgraded = true
	p.logger.Info("Websocket connection upgraded", "status_code", p.res.StatusCode)
	return conn, true
}

// queryResponse runs the query_response steps over messages: an expect
// step reads one message, text or binary, and matches it whole; send goes
// as one text message (binary for a !!binary send: blackbox_exporter sends
// text), without the newline tcp adds. labels, starttls and
// expect_bytes do not apply to messages and are ignored, as blackbox_exporter
// ignores them.
func (p *websocketProbe) queryResponse(ctx context.Context, conn *websocket.Conn) bool {
	steps := p.cfg.QueryResponse
	if len(steps) == 0 {
		return true
	}
	// The upgrade cleared the connection's deadlines: nothing below may
	// outlive the probe (blackbox_exporter's waits for the server).
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
		_ = conn.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.NetConn().SetDeadline(time.Now()) })
	defer stop()
	conn.SetReadLimit(maxBufferedBody)

	start := time.Now()
	defer func() { p.res.PhaseSeconds["transfer"] = time.Since(start).Seconds() }()
	for i, qr := range steps {
		p.logger.Info("Processing query response entry", "entry_number", i)
		send := qr.Send
		if qr.Expect.Regexp != nil {
			var ok bool
			if send, ok = p.expect(conn, qr); !ok {
				p.res.FailedDueToRegex = true
				return false
			}
		}
		if send != "" {
			// A !!binary send is not text: a text message must be UTF-8.
			kind := websocket.TextMessage
			if qr.SendBinary {
				kind = websocket.BinaryMessage
			}
			p.logger.Debug("Sending message", "message", send, "binary", qr.SendBinary)
			if err := conn.WriteMessage(kind, []byte(send)); err != nil {
				p.res.FailedDueToRegex = true
				p.res.Fail(p.logger, "Error sending websocket message", err)
				return false
			}
		}
	}
	return true
}

// expect reads one message, into memory reserved from the process-wide
// budget, and matches qr's regexp against it; it returns the step's send
// expanded from the match.
func (p *websocketProbe) expect(conn *websocket.Conn, qr config.QueryResponse) (string, bool) {
	body := &heldBody{budget: budget}
	defer body.release()
	_, r, err := conn.NextReader()
	if err == nil {
		err = body.read(r, maxBufferedBody)
	}
	if errors.Is(err, errBodyLimit) || errors.Is(err, websocket.ErrReadLimit) {
		err = fmt.Errorf("message is larger than %d bytes", maxBufferedBody)
	}
	var msg []byte
	if err == nil {
		msg, err = body.bytes()
	}
	if err != nil {
		p.res.Fail(p.logger, "Error reading websocket message", err)
		return "", false
	}
	match := qr.Expect.FindSubmatchIndex(msg)
	if match == nil {
		p.res.Fail(p.logger, fmt.Sprintf("Regexp %q did not match the message %q", qr.Expect.String(), clipText(string(msg), 200)), nil)
		return "", false
	}
	p.logger.Info("Regexp matched", "regexp", qr.Expect.String(), "message", clipText(string(msg), 200))
	return string(qr.Expect.Expand(nil, []byte(qr.Send), msg, match)), true
}
