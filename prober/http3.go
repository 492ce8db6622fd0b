package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"

	pconfig "github.com/prometheus/common/config"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// HTTP/3 (enable_http3): requests go over QUIC with quic-go's http3
// Transport. Unlike blackbox_exporter's, the transport here
//   - dials the address ResolveTarget chose (preferred_ip_protocol, target
//     policy) and, for redirects to other hosts, resolves through Resolver
//     and checks the policy before a packet is sent: quic-go's own dial
//     would look the name up again, IPv4 first, with no policy;
//   - ends every dial at the probe's deadline (quic-go's outlives the
//     request that started it);
//   - is wrapped in prometheus/common's auth and header round trippers, so
//     basic_auth, authorization, oauth2 and http_headers are sent;
//   - times the QUIC handshake as the tls phase, with a connect phase of
//     only the socket's setup, rather than counting it in both.

// http3Transport is the base round tripper of an HTTP/3 probe: one
// http3.Transport, and the QUIC transports (one UDP socket each) its dials
// opened, all closed when the probe ends.
type http3Transport struct {
	probe *httpProbe
	ctx   context.Context // the probe's: dials end with it
	rt    *http3.Transport

	mu      sync.Mutex
	sockets []*quic.Transport
}

func (p *httpProbe) newHTTP3Transport(ctx context.Context, hc pconfig.HTTPClientConfig, serverName string) (*http3Transport, error) {
	tlsConfig, err := pconfig.NewTLSConfigWithContext(ctx, &hc.TLSConfig)
	if err != nil {
		return nil, err
	}
	tlsConfig.ServerName = serverName
	tlsConfig.MinVersion = tls.VersionTLS13 // QUIC has no other
	qc := &quic.Config{}
	if dl, ok := ctx.Deadline(); ok {
		// A server that does not speak QUIC never answers. The probe's
		// context ends the dial (see dial); this only bounds a dial that
		// outlived it, and must not fire first, or the failure would not
		// read as the probe's timeout.
		qc.HandshakeIdleTimeout = max(time.Until(dl), 0) + time.Second
	}
	t := &http3Transport{probe: p, ctx: ctx}
	t.rt = &http3.Transport{
		TLSClientConfig: tlsConfig,
		QUICConfig:      qc,
		Dial:            t.dial,
		// As the HTTP/1.1 and HTTP/2 paths: compression is the module's.
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxResponseHead,
	}
	return t, nil
}

func (t *http3Transport) RoundTrip(r *http.Request) (*http.Response, error) { return t.rt.RoundTrip(r) }

// CloseIdleConnections closes the transport and every socket it opened: a
// probe's transport is never reused.
func (t *http3Transport) CloseIdleConnections() {
	_ = t.rt.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sockets {
		_ = s.Close()
		_ = s.Conn.Close()
	}
	t.sockets = nil
}

// dial opens a QUIC connection to addr (host:port from the request URL:
// the address already chosen for the target, or a redirect's host).
func (t *http3Transport) dial(ctx context.Context, addr string, tlsCfg *tls.Config, qc *quic.Config) (*quic.Conn, error) {
	// ctx carries the request's trace but not its deadline (quic-go shares
	// a dial between requests); the probe's context bounds it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(t.ctx, cancel)()
	trace := httptrace.ContextClientTrace(ctx)

	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip, err := t.resolve(ctx, host, trace)
	if err != nil {
		return nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		return nil, err
	}
	if trace != nil && trace.ConnectStart != nil {
		trace.ConnectStart("udp", raddr.String())
	}
	sock, err := t.socket(raddr)
	if trace != nil && trace.ConnectDone != nil {
		trace.ConnectDone("udp", raddr.String(), err)
	}
	if err != nil {
		return nil, err
	}
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	conn, err := sock.Dial(ctx, raddr, tlsCfg, qc)
	if trace != nil && trace.TLSHandshakeDone != nil {
		var state tls.ConnectionState
		if conn != nil {
			state = conn.ConnectionState().TLS
		}
		trace.TLSHandshakeDone(state, err)
	}
	if err != nil && t.ctx.Err() != nil {
		return nil, fmt.Errorf("QUIC handshake with %s: %w", raddr, t.ctx.Err())
	}
	return conn, err
}

// resolve returns the address to dial for host, checked against the target
// policy: an IP literal as it is, a name (a redirect's) looked up as the
// target was, with the module's preferred IP protocol.
func (t *http3Transport) resolve(ctx context.Context, host string, trace *httptrace.ClientTrace) (net.IP, error) {
	policy, cfg := t.probe.req.Policy, t.probe.cfg
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return ip, policy.AllowIP(ip)
	}
	if trace != nil && trace.DNSStart != nil {
		trace.DNSStart(httptrace.DNSStartInfo{Host: host})
	}
	var scratch Common
	addr, err := ResolveTarget(ctx, &scratch, host, cfg.IPProtocol, cfg.IPProtocolFallback, policy, t.probe.logger)
	if trace != nil && trace.DNSDone != nil {
		trace.DNSDone(httptrace.DNSDoneInfo{Err: err})
	}
	if err != nil {
		return nil, err
	}
	return addr.IP, nil
}

// socket opens the UDP socket of one QUIC connection, bound to
// source_ip_address when set. quic-go wants an unconnected socket, so no
// dialer Control sees the destination: resolve checked it.
func (t *http3Transport) socket(raddr *net.UDPAddr) (*quic.Transport, error) {
	laddr := &net.UDPAddr{}
	if src := t.probe.cfg.SourceIPAddress; src != "" {
		laddr.IP = net.ParseIP(src)
	}
	network := "udp6"
	if raddr.IP.To4() != nil {
		network = "udp4"
	}
	conn, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	sock := &quic.Transport{Conn: conn}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sockets = append(t.sockets, sock)
	return sock, nil
}

// newHTTP3Transports is newTransport for enable_http3: the same two round
// trippers (the configured server name for the first host, the URL's for
// the others), each over its own http3.Transport.
func (p *httpProbe) newHTTP3Transports(ctx context.Context, hc pconfig.HTTPClientConfig, serverName string) (*httpTransport, error) {
	tr := &httpTransport{probe: p, serverName: serverName}
	first := func() string { return tr.firstHost }
	orig := func() string { return tr.origHost }
	for i, name := range []string{serverName, ""} {
		base, err := p.newHTTP3Transport(ctx, hc, name)
		if err != nil {
			tr.CloseIdleConnections()
			return nil, err
		}
		rt, err := p.http3RoundTripper(ctx, hc, base, first, orig)
		if err != nil {
			base.CloseIdleConnections()
			tr.CloseIdleConnections()
			return nil, err
		}
		if i == 0 {
			tr.first = rt
		} else {
			tr.other = rt
		}
	}
	return tr, nil
}

// http3RoundTripper wraps base in the round trippers prometheus/common puts
// around its own transport, so an HTTP/3 request carries the same
// credentials and headers an HTTP/1.1 or HTTP/2 one would. first is the
// first request's URL host and origHost the name it stands for: a request
// to another host is a cross-host redirect, which loses the sensitive
// headers http_headers may have added, as net/http drops them.
func (p *httpProbe) http3RoundTripper(ctx context.Context, hc pconfig.HTTPClientConfig, base http.RoundTripper, first, origHost func() string) (http.RoundTripper, error) {
	rt, err := withAuth(hc, base)
	if err != nil {
		return nil, err
	}
	if rt, err = withOAuth2(ctx, hc, rt, p.req.Policy, p.cfg.SourceIPAddress); err != nil {
		return nil, err
	}
	if hc.HTTPHeaders != nil {
		if hc.FollowRedirects {
			rt = &crossHostStrip{next: rt, first: first, origHost: origHost}
		}
		rt = pconfig.NewHeadersRoundTripper(hc.HTTPHeaders, rt)
	}
	return rt, nil
}

// crossHostStrip drops credentials from a redirect to another host.
type crossHostStrip struct {
	next            http.RoundTripper
	first, origHost func() string
}

func (c *crossHostStrip) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Response != nil && r.URL.Host != c.first() && !strings.EqualFold(r.URL.Hostname(), stripPort(c.origHost())) {
		r = r.Clone(r.Context())
		for _, h := range []string{"Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization", "Proxy-Authenticate"} {
			r.Header.Del(h)
		}
	}
	return c.next.RoundTrip(r)
}

func (c *crossHostStrip) CloseIdleConnections() { closeIdle(c.next) }

// errHTTP3Proxy: QUIC cannot go through an HTTP proxy, and probing around
// the proxy would bypass what the operator configured.
var errHTTP3Proxy = errors.New("proxy_url and proxy_from_environment cannot be used with enable_http3: QUIC does not go through an HTTP proxy, and isp-checker does not probe around it")
