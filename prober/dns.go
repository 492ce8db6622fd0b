package prober

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	pconfig "github.com/prometheus/common/config"
	"golang.org/x/net/idna"

	"github.com/isp-checker/isp-checker/config"
)

// DNS transports, as DNSResult.Transport names them.
const (
	DNSTransportUDP   = "udp"
	DNSTransportTCP   = "tcp"
	DNSTransportTLS   = "tls"   // DNS over TLS, RFC 7858
	DNSTransportHTTPS = "https" // DNS over HTTPS, RFC 8484 (also plain http:// for tests)
)

const (
	// dnsMaxMessage is the largest DNS message there is (16-bit length).
	dnsMaxMessage = 65535
	// dnsMaxAnswerStrings caps how many answer records a result keeps.
	dnsMaxAnswerStrings = 32
	// dnsMaxRRString caps the length of one kept record or log value.
	dnsMaxRRString = 512
	dohContentType = "application/dns-message"
	dohDefaultPath = "/dns-query"
)

// DNSResult is what the dns prober found. Its metrics keep
// blackbox_exporter's names and meanings (probe_dns_*).
type DNSResult struct {
	Common
	// Transport is udp, tcp, tls (DoT) or https (DoH).
	Transport string `json:"transport,omitempty"`
	// Server is the address (ip:port) or URL queried.
	Server     string    `json:"server,omitempty"`
	QueryName  string    `json:"query_name,omitempty"`
	QueryType  string    `json:"query_type,omitempty"`
	QueryClass string    `json:"query_class,omitempty"`
	Phases     DNSPhases `json:"phases"`
	// QuerySucceeded is true once a well-formed response to the query
	// arrived, whatever its rcode and records (probe_dns_query_succeeded).
	QuerySucceeded bool `json:"query_succeeded"`
	// Rcode is the response code's name (NOERROR, NXDOMAIN, …) and
	// RcodeValue its number, including the EDNS0 extended bits.
	Rcode         string `json:"rcode,omitempty"`
	RcodeValue    *int   `json:"rcode_value,omitempty"`
	AnswerRRs     int    `json:"answer_rrs"`
	AuthorityRRs  int    `json:"authority_rrs"`
	AdditionalRRs int    `json:"additional_rrs"`
	// Answer holds the answer records in presentation format (at most 32).
	Answer []string `json:"answer,omitempty"`
	// Serial is set when the query type is SOA and a response arrived: the
	// serial of the SOA record in the answer, or 0 if there is none (as
	// blackbox_exporter reports probe_dns_serial).
	Serial *uint32 `json:"serial,omitempty"`
	// AnswerMinTTLSeconds is the smallest TTL in the answer section, when
	// the answer has records.
	AnswerMinTTLSeconds *uint32 `json:"answer_min_ttl_seconds,omitempty"`
	// DNSSECRequested says the query carried the DO bit; only then does
	// AuthenticatedData (the AD flag of the response) mean anything.
	DNSSECRequested   bool `json:"dnssec_requested,omitempty"`
	AuthenticatedData bool `json:"authenticated_data,omitempty"`
	// Truncated is the TC bit of the UDP response; RetriedOverTCP says the
	// query was then repeated over TCP (retry_truncated_over_tcp) and the
	// fields above describe the TCP response.
	Truncated      bool `json:"truncated,omitempty"`
	RetriedOverTCP bool `json:"retried_over_tcp,omitempty"`
	// ValidationFailures lists why validate_*_rrs or the rcode check failed.
	ValidationFailures []string `json:"validation_failures,omitempty"`
}

// DNSPhases are the probe_dns_duration_seconds phases. After a retry over
// TCP, connect and request hold the sum of both attempts.
type DNSPhases struct {
	ResolveSeconds float64 `json:"resolve_seconds"`
	ConnectSeconds float64 `json:"connect_seconds"`
	RequestSeconds float64 `json:"request_seconds"`
}

// dnsTarget is a parsed probe target.
type dnsTarget struct {
	transport string
	host      string // no brackets
	port      string
	url       *url.URL // DoH only
}

// ProbeDNS is the dns prober: one query to the target server over UDP, TCP,
// DoT or DoH, checked against the module's dns: options.
func ProbeDNS(ctx context.Context, req *Request) Result {
	p := &dnsProbe{req: *req, cfg: &req.Module.DNS, logger: req.Logger, res: &DNSResult{}}
	p.run(ctx)
	return p.res
}

// dnsProbe is one run of the dns prober.
type dnsProbe struct {
	req    Request
	cfg    *config.DNSProbe
	logger *slog.Logger
	res    *DNSResult
}

func (p *dnsProbe) run(ctx context.Context) {
	req, cfg, logger, res := p.req, p.cfg, p.logger, p.res
	query, err := buildDNSQuery(cfg, res, logger)
	if err != nil {
		res.Fail(logger, "invalid DNS query in module", err)
		return
	}
	tgt, err := parseDNSTarget(req.Target, cfg)
	if err != nil {
		res.Fail(logger, "invalid target", err)
		return
	}
	res.Transport = tgt.transport
	if tgt.transport == DNSTransportHTTPS {
		query.Id = 0 // RFC 8484 section 4.1: cache friendly.
	}

	ip, ok := req.resolve(ctx, &res.Common, tgt.host, cfg.IPOptions)
	res.Phases.ResolveSeconds = res.DNSLookupSeconds
	if !ok {
		return
	}
	addr := net.JoinHostPort(ip.IP.String(), tgt.port)
	res.Server = addr
	if tgt.url != nil {
		res.Server = tgt.url.String()
	}
	ex := &dnsExchange{
		req: req, cfg: cfg, logger: logger, res: res,
		ip: ip.IP, addr: addr, target: tgt,
	}
	logger.Info("making DNS query", "server", res.Server, "transport", tgt.transport,
		"query", res.QueryName, "type", res.QueryType, "class", res.QueryClass,
		"recursion_desired", query.RecursionDesired, "dnssec", res.DNSSECRequested)

	raw, err := ex.exchange(ctx, tgt.transport, query)
	if err != nil {
		res.FailStep(logger, "error while sending a DNS query", err)
		return
	}
	if tgt.transport == DNSTransportUDP && tcBit(raw) {
		res.Truncated = true
		if cfg.RetryTruncatedOverTCP {
			logger.Info("UDP response truncated (TC bit); retrying over TCP")
			res.RetriedOverTCP = true
			raw, err = ex.exchange(ctx, DNSTransportTCP, query)
			if err != nil {
				res.FailStep(logger, "error while retrying the truncated DNS query over TCP", err)
				return
			}
		} else {
			logger.Info("UDP response truncated (TC bit); judging it as it is (retry_truncated_over_tcp is off)")
		}
	}
	res.Success = judgeDNSResponse(raw, query, cfg, res, logger)
}

// buildDNSQuery makes the query message from the module and records the
// question in res.
func buildDNSQuery(cfg *config.DNSProbe, res *DNSResult, logger *slog.Logger) (*dns.Msg, error) {
	qc := uint16(dns.ClassINET)
	if cfg.QueryClass != "" {
		c, ok := dns.StringToClass[cfg.QueryClass]
		if !ok {
			return nil, fmt.Errorf("query class %q is not valid", cfg.QueryClass)
		}
		qc = c
	}
	qt := dns.TypeANY
	if cfg.QueryType != "" {
		t, ok := dns.StringToType[cfg.QueryType]
		if !ok {
			return nil, fmt.Errorf("query type %q is not valid", cfg.QueryType)
		}
		qt = t
	}
	name := dns.Fqdn(asciiDomain(cfg.QueryName, logger))
	if _, ok := dns.IsDomainName(name); !ok || cfg.QueryName == "" {
		return nil, fmt.Errorf("query name %q is not a valid domain name", cfg.QueryName)
	}
	res.QueryName = name
	res.QueryType = dns.Type(qt).String()
	res.QueryClass = dns.Class(qc).String()

	m := &dns.Msg{}
	m.Id = dns.Id()
	m.Opcode = dns.OpcodeQuery
	m.RecursionDesired = cfg.Recursion
	m.Question = []dns.Question{{Name: name, Qtype: qt, Qclass: qc}}
	size := cfg.EDNS0UDPSize
	if cfg.DNSSEC && size == 0 {
		size = config.DefaultDNSSECUDPSize
	}
	if size != 0 {
		m.SetEdns0(size, cfg.DNSSEC)
	}
	if cfg.DNSSEC {
		// RFC 6840 section 5.7: AD in a query asks the resolver to report
		// whether it validated the answer.
		m.AuthenticatedData = true
		res.DNSSECRequested = true
	}
	return m, nil
}

// asciiDomain turns an internationalised name into its A-label form, as
// blackbox_exporter does; ASCII names (including _service labels) pass
// untouched.
func asciiDomain(name string, logger *slog.Logger) string {
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return name
	}
	a, err := idna.Lookup.ToASCII(name)
	if err != nil {
		logger.Warn("cannot convert query name to ASCII (IDNA); using it as it is", "query", name, "err", err)
		return name
	}
	return a
}

// parseDNSTarget splits a target into transport, host and port: host,
// host:port, [v6]:port, a bare IPv6 address, or an http(s):// URL for DoH.
func parseDNSTarget(target string, cfg *config.DNSProbe) (dnsTarget, error) {
	if target == "" {
		return dnsTarget{}, errors.New("target is empty")
	}
	lower := strings.ToLower(target)
	if strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://") {
		if cfg.DNSOverTLS {
			return dnsTarget{}, errors.New("target is a URL (DNS over HTTPS) but the module sets dns_over_tls")
		}
		if cfg.TransportProtocol == "udp" {
			return dnsTarget{}, errors.New("target is a URL (DNS over HTTPS) but the module sets transport_protocol udp")
		}
		u, err := url.Parse(target)
		if err != nil {
			return dnsTarget{}, fmt.Errorf("cannot parse DNS over HTTPS URL: %w", err)
		}
		return dohTarget(u)
	}
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		// Only a host (or a bare IPv6 address): use the default port.
		host, port = strings.TrimSuffix(strings.TrimPrefix(target, "["), "]"), ""
	}
	if host == "" {
		return dnsTarget{}, fmt.Errorf("target %q has no host", target)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return dnsTarget{}, fmt.Errorf("target %q has an invalid port", target)
		}
	}
	switch {
	case cfg.DNSOverHTTPS:
		u := &url.URL{Scheme: "https", Host: host, Path: dohDefaultPath}
		if strings.Contains(host, ":") {
			u.Host = "[" + host + "]"
		}
		if port != "" {
			u.Host = net.JoinHostPort(host, port)
		}
		return dohTarget(u)
	case cfg.DNSOverTLS:
		if port == "" {
			port = "853"
		}
		return dnsTarget{transport: DNSTransportTLS, host: host, port: port}, nil
	case cfg.TransportProtocol == "tcp":
		if port == "" {
			port = "53"
		}
		return dnsTarget{transport: DNSTransportTCP, host: host, port: port}, nil
	default:
		if port == "" {
			port = "53"
		}
		return dnsTarget{transport: DNSTransportUDP, host: host, port: port}, nil
	}
}

func dohTarget(u *url.URL) (dnsTarget, error) {
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Hostname() == "" {
		return dnsTarget{}, fmt.Errorf("DNS over HTTPS URL %q has no host", u.Redacted())
	}
	if u.User != nil {
		return dnsTarget{}, errors.New("DNS over HTTPS URL must not carry user information")
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return dnsTarget{}, fmt.Errorf("DNS over HTTPS URL %q has an invalid port", u.Redacted())
	}
	if u.Path == "" {
		u.Path = dohDefaultPath
	}
	u.Fragment = ""
	return dnsTarget{transport: DNSTransportHTTPS, host: u.Hostname(), port: port, url: u}, nil
}

// dnsExchange sends one query over a transport and returns the raw answer,
// adding to the connect and request phases.
type dnsExchange struct {
	req    Request
	cfg    *config.DNSProbe
	logger *slog.Logger
	res    *DNSResult
	ip     net.IP
	addr   string // ip:port
	target dnsTarget
}

func (x *dnsExchange) network(base string) string {
	if x.ip.To4() != nil {
		return base + "4"
	}
	return base + "6"
}

func (x *dnsExchange) exchange(ctx context.Context, transport string, query *dns.Msg) ([]byte, error) {
	packed, err := query.Pack()
	if err != nil {
		return nil, fmt.Errorf("cannot pack the query: %w", err)
	}
	switch transport {
	case DNSTransportHTTPS:
		return x.exchangeHTTPS(ctx, packed)
	case DNSTransportUDP:
		return x.exchangeConn(ctx, "udp", packed, query.Id)
	default:
		return x.exchangeConn(ctx, "tcp", packed, query.Id)
	}
}

// exchangeConn runs a query over UDP, TCP or TLS (when the target is DoT
// and base is tcp).
func (x *dnsExchange) exchangeConn(ctx context.Context, base string, packed []byte, id uint16) ([]byte, error) {
	network := x.network(base)
	connectStart := time.Now()
	conn, err := x.req.Policy.DialContext(ctx, network, x.addr, x.cfg.SourceIPAddress)
	if err != nil {
		x.res.Phases.ConnectSeconds += time.Since(connectStart).Seconds()
		return nil, fmt.Errorf("connecting to %s over %s: %w", x.addr, network, err)
	}
	defer func() { _ = conn.Close() }()
	// Close the connection if ctx ends without a deadline (cancellation).
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if x.target.transport == DNSTransportTLS && base == "tcp" {
		tlsConn, err := x.tlsHandshake(ctx, conn)
		if err != nil {
			x.res.Phases.ConnectSeconds += time.Since(connectStart).Seconds()
			return nil, err
		}
		conn = tlsConn
	}
	x.res.Phases.ConnectSeconds += time.Since(connectStart).Seconds()

	requestStart := time.Now()
	defer func() { x.res.Phases.RequestSeconds += time.Since(requestStart).Seconds() }()
	var raw []byte
	if base == "udp" {
		raw, err = x.roundTripUDP(conn, packed, id)
	} else {
		raw, err = roundTripStream(conn, packed)
	}
	if err != nil && (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		return nil, &dnsNoAnswerError{server: x.addr, err: err}
	}
	return raw, err
}

// dnsNoAnswerError: the server did not answer in time. Its Cause leaves
// out the server, which a reader of the check names already, and the
// socket error, which depends on whether the read deadline or the probe's
// end closing the socket came first.
type dnsNoAnswerError struct {
	server string
	err    error
}

func (e *dnsNoAnswerError) Error() string {
	return fmt.Sprintf("no complete answer from %s before the probe timeout: %v", e.server, e.err)
}

func (e *dnsNoAnswerError) Unwrap() error { return e.err }
func (e *dnsNoAnswerError) cause() string { return "no complete answer: i/o timeout" }

func (x *dnsExchange) tlsConfig() (*tls.Config, error) {
	cfg, err := pconfig.NewTLSConfig(&x.cfg.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("invalid tls_config: %w", err)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = x.target.host
		if x.req.Hostname != "" {
			cfg.ServerName = x.req.Hostname
		}
	}
	return cfg, nil
}

func (x *dnsExchange) tlsHandshake(ctx context.Context, conn net.Conn) (net.Conn, error) {
	cfg, err := x.tlsConfig()
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s (server name %q): %w", x.addr, cfg.ServerName, err)
	}
	st := tc.ConnectionState()
	x.logger.Info("TLS handshake done", "version", tls.VersionName(st.Version), "server_name", cfg.ServerName)
	return tc, nil
}

// roundTripUDP sends the query and waits for a datagram with its ID;
// datagrams with another ID (late answers, spoofing attempts) are ignored
// as resolvers do.
func (x *dnsExchange) roundTripUDP(conn net.Conn, packed []byte, id uint16) ([]byte, error) {
	if _, err := conn.Write(packed); err != nil {
		return nil, fmt.Errorf("sending query: %w", err)
	}
	buf := make([]byte, dnsMaxMessage)
	ignored := 0
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ignored > 0 {
				return nil, fmt.Errorf("reading answer (%d datagrams with a wrong ID or too short ignored): %w", ignored, err)
			}
			return nil, fmt.Errorf("reading answer: %w", err)
		}
		if n < 2 || binary.BigEndian.Uint16(buf) != id {
			ignored++
			x.logger.Debug("ignoring a datagram that does not answer the query", "bytes", n)
			continue
		}
		return bytes.Clone(buf[:n]), nil
	}
}

// roundTripStream sends a query with its 2-byte length prefix (RFC 1035
// section 4.2.2) and reads one length-prefixed answer.
func roundTripStream(conn net.Conn, packed []byte) ([]byte, error) {
	msg := make([]byte, 2+len(packed))
	binary.BigEndian.PutUint16(msg, uint16(len(packed)))
	copy(msg[2:], packed)
	if _, err := conn.Write(msg); err != nil {
		return nil, fmt.Errorf("sending query: %w", err)
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, fmt.Errorf("reading answer length: %w", err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n == 0 {
		return nil, errors.New("server sent a zero-length answer")
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(conn, raw); err != nil {
		return nil, fmt.Errorf("reading %d-byte answer: %w", n, err)
	}
	return raw, nil
}

// exchangeHTTPS runs a query over DNS over HTTPS (RFC 8484). The dial goes
// to the address already resolved and checked by the target policy, and
// through Policy.Control again; redirects are not followed.
func (x *dnsExchange) exchangeHTTPS(ctx context.Context, packed []byte) ([]byte, error) {
	u := *x.target.url
	dialer, err := x.req.Policy.Dialer("tcp", x.cfg.SourceIPAddress)
	if err != nil {
		return nil, err
	}
	network := x.network("tcp")
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, x.addr)
		},
		ForceAttemptHTTP2:      true,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if u.Scheme == "https" {
		tcfg, err := x.tlsConfig()
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tcfg
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}

	var hreq *http.Request
	if x.cfg.DoHMethod == http.MethodGet {
		q := u.Query()
		q.Set("dns", base64.RawURLEncoding.EncodeToString(packed))
		u.RawQuery = q.Encode()
		hreq, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	} else {
		hreq, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(packed))
		if hreq != nil {
			hreq.Header.Set("Content-Type", dohContentType)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("building DNS over HTTPS request: %w", err)
	}
	hreq.Header.Set("Accept", dohContentType)
	if x.req.Hostname != "" {
		hreq.Host = x.req.Hostname
	}

	start := time.Now()
	var gotConn time.Time
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn = time.Now() }}
	hreq = hreq.WithContext(httptrace.WithClientTrace(hreq.Context(), trace))
	defer func() {
		end := time.Now()
		if gotConn.IsZero() {
			x.res.Phases.ConnectSeconds += end.Sub(start).Seconds()
			return
		}
		x.res.Phases.ConnectSeconds += gotConn.Sub(start).Seconds()
		x.res.Phases.RequestSeconds += end.Sub(gotConn).Seconds()
	}()

	resp, err := client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("DNS over HTTPS request to %s: %w", u.Redacted(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	x.logger.Info("DNS over HTTPS response", "status", resp.StatusCode, "proto", resp.Proto, "content_type", resp.Header.Get("Content-Type"))
	return dohAnswer(resp)
}

// dohAnswer checks a DNS over HTTPS response and reads its DNS message:
// status 200, Content-Type application/dns-message, at most the largest
// DNS message, read into memory reserved from the budget.
func dohAnswer(resp *http.Response) ([]byte, error) {
	if resp.StatusCode != http.StatusOK {
		if loc := resp.Header.Get("Location"); loc != "" {
			return nil, fmt.Errorf("DNS over HTTPS server answered HTTP %d redirecting to %q: redirects are not followed; use that URL as the target", resp.StatusCode, clip(RedactTarget(loc)))
		}
		return nil, fmt.Errorf("DNS over HTTPS server answered HTTP %d, want 200", resp.StatusCode)
	}
	ct, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || ct != dohContentType {
		return nil, fmt.Errorf("DNS over HTTPS answer has Content-Type %q, want %s", clip(resp.Header.Get("Content-Type")), dohContentType)
	}
	// The answer's size is the server's choice: reserve the largest.
	if err := budget.Reserve(dnsMaxMessage + 1); err != nil {
		return nil, fmt.Errorf("no memory to read the DNS over HTTPS answer: %w", err)
	}
	defer budget.Release(dnsMaxMessage + 1)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, dnsMaxMessage+1))
	if err != nil {
		return nil, fmt.Errorf("reading DNS over HTTPS answer: %w", err)
	}
	if len(raw) > dnsMaxMessage {
		return nil, fmt.Errorf("DNS over HTTPS answer is larger than %d bytes, the largest DNS message", dnsMaxMessage)
	}
	return raw, nil
}

// tcBit reports whether raw has a DNS header with the TC flag set.
func tcBit(raw []byte) bool {
	return len(raw) >= 12 && raw[2]&0x02 != 0
}

// parseDNSResponse unpacks raw and checks that it answers query: a response
// (QR set) with the query's ID and opcode, and, when it carries a question,
// the same question.
func parseDNSResponse(raw []byte, query *dns.Msg) (*dns.Msg, error) {
	if len(raw) < 12 {
		return nil, fmt.Errorf("answer is %d bytes, shorter than a 12-byte DNS header", len(raw))
	}
	resp := &dns.Msg{}
	if err := resp.Unpack(raw); err != nil {
		if tcBit(raw) {
			return nil, fmt.Errorf("truncated answer (TC bit) cannot be parsed: %w", err)
		}
		return nil, fmt.Errorf("malformed answer (%d bytes): %w", len(raw), err)
	}
	if resp.Id != query.Id {
		return nil, fmt.Errorf("answer ID %d does not match query ID %d", resp.Id, query.Id)
	}
	if !resp.Response {
		return nil, errors.New("message is not a response (QR bit clear): the server echoed or sent a query")
	}
	if resp.Opcode != query.Opcode {
		return nil, fmt.Errorf("answer opcode %s does not match the query's %s", opcodeName(resp.Opcode), opcodeName(query.Opcode))
	}
	if len(resp.Question) > 0 {
		q := query.Question[0]
		if len(resp.Question) != 1 {
			return nil, fmt.Errorf("answer carries %d questions, want 1", len(resp.Question))
		}
		r := resp.Question[0]
		if !strings.EqualFold(r.Name, q.Name) || r.Qtype != q.Qtype || r.Qclass != q.Qclass {
			return nil, fmt.Errorf("answer is for another question: %s, asked %s", clip(strings.TrimPrefix(r.String(), ";")), strings.TrimPrefix(q.String(), ";"))
		}
	}
	return resp, nil
}

func opcodeName(op int) string {
	if s, ok := dns.OpcodeToString[op]; ok {
		return s
	}
	return "OPCODE" + strconv.Itoa(op)
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

// judgeDNSResponse parses raw as the answer to query, records what it holds
// in res and judges it against the module (rcode, validate_*_rrs, AD). Every
// transport's answer goes through here, and so does FuzzDNSResponse: it must
// never panic, whatever raw holds.
func judgeDNSResponse(raw []byte, query *dns.Msg, cfg *config.DNSProbe, res *DNSResult, logger *slog.Logger) bool {
	resp, err := parseDNSResponse(raw, query)
	if err != nil {
		res.Fail(logger, "invalid DNS answer", err)
		return false
	}
	res.QuerySucceeded = true
	rc := resp.Rcode
	res.Rcode = rcodeName(rc)
	res.RcodeValue = &rc
	res.AnswerRRs = len(resp.Answer)
	res.AuthorityRRs = len(resp.Ns)
	res.AdditionalRRs = len(resp.Extra)
	if !res.Truncated && resp.Truncated {
		res.Truncated = true
	}
	res.AuthenticatedData = res.DNSSECRequested && resp.AuthenticatedData
	for i, rr := range resp.Answer {
		if rr == nil {
			continue
		}
		ttl := rr.Header().Ttl
		if res.AnswerMinTTLSeconds == nil || ttl < *res.AnswerMinTTLSeconds {
			res.AnswerMinTTLSeconds = &ttl
		}
		if i < dnsMaxAnswerStrings {
			res.Answer = append(res.Answer, clip(rr.String()))
		}
	}
	if query.Question[0].Qtype == dns.TypeSOA {
		var serial uint32
		for _, rr := range resp.Answer {
			if soa, ok := rr.(*dns.SOA); ok {
				serial = soa.Serial
			}
		}
		res.Serial = &serial
	}
	logger.Info("got DNS answer", "rcode", res.Rcode, "answer_rrs", res.AnswerRRs,
		"authority_rrs", res.AuthorityRRs, "additional_rrs", res.AdditionalRRs,
		"truncated", resp.Truncated, "authenticated_data", resp.AuthenticatedData)
	logger.Debug("DNS answer", "response", resp.String())

	if msg := checkRcode(rc, cfg.ValidRcodes); msg != "" {
		res.ValidationFailures = append(res.ValidationFailures, msg)
		res.Fail(logger, msg, nil)
		return false
	}
	logger.Info("rcode is valid", "rcode", res.Rcode)
	for _, s := range []struct {
		name string
		rrs  []dns.RR
		v    *config.DNSRRValidator
	}{
		{"answer", resp.Answer, &cfg.ValidateAnswer},
		{"authority", resp.Ns, &cfg.ValidateAuthority},
		{"additional", resp.Extra, &cfg.ValidateAdditional},
	} {
		for _, f := range validateRRs(s.name, s.rrs, s.v) {
			logger.Error("DNS record validation failed", "section", s.name, "problem", f)
			res.ValidationFailures = append(res.ValidationFailures, f)
		}
	}
	if res.DNSSECRequested && cfg.FailIfNotAuthenticated && !resp.AuthenticatedData {
		res.ValidationFailures = append(res.ValidationFailures,
			"answer is not DNSSEC-authenticated (AD flag clear) and fail_if_not_authenticated is set")
	}
	if n := len(res.ValidationFailures); n > 0 {
		res.Fail(logger, fmt.Sprintf("DNS answer validation failed: %s", res.ValidationFailures[0]), nil)
		if n > 1 {
			res.Error += fmt.Sprintf(" (and %d more)", n-1)
		}
		return false
	}
	return true
}

// checkRcode says why rc is not acceptable, or returns "". No valid_rcodes
// means NOERROR only, as in blackbox_exporter.
func checkRcode(rc int, valid []string) string {
	if len(valid) == 0 {
		valid = []string{"NOERROR"}
	}
	for _, v := range valid {
		if want, ok := dns.StringToRcode[strings.ToUpper(v)]; ok && want == rc {
			return ""
		}
	}
	return fmt.Sprintf("rcode %s is not one of the valid rcodes %s", rcodeName(rc), strings.Join(valid, ", "))
}

// validateRRs applies one section's validator with blackbox_exporter's
// semantics, matching each record's presentation form:
//   - fail_if_matches_regexp: fail if any record matches any regexp;
//   - fail_if_all_match_regexp: fail unless every record matches every
//     regexp (blackbox's behaviour, whatever the name suggests; no records
//     pass);
//   - fail_if_not_matches_regexp: fail if any record misses any regexp, or
//     if there are no records;
//   - fail_if_none_matches_regexp: fail if no record matches any regexp, or
//     if there are no records.
//
// It returns one message per failed rule.
func validateRRs(section string, rrs []dns.RR, v *config.DNSRRValidator) []string {
	var fails []string
	if len(rrs) == 0 {
		if len(v.FailIfNotMatchesRegexp) > 0 {
			fails = append(fails, section+": fail_if_not_matches_regexp is set but there are no records")
		}
		if len(v.FailIfNoneMatchesRegexp) > 0 {
			fails = append(fails, section+": fail_if_none_matches_regexp is set but there are no records")
		}
		return fails
	}
	texts := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr == nil {
			texts = append(texts, "")
			continue
		}
		texts = append(texts, rr.String())
	}
	for _, re := range v.FailIfMatchesRegexp {
		for _, t := range texts {
			if re.MatchString(t) {
				fails = append(fails, fmt.Sprintf("%s: record %q matched fail_if_matches_regexp %q", section, clip(t), re.String()))
				break
			}
		}
	}
	if len(v.FailIfAllMatchRegexp) > 0 {
	all:
		for _, re := range v.FailIfAllMatchRegexp {
			for _, t := range texts {
				if !re.MatchString(t) {
					fails = append(fails, fmt.Sprintf("%s: not all records matched fail_if_all_match_regexp %q (record %q did not)", section, re.String(), clip(t)))
					break all
				}
			}
		}
	}
	for _, re := range v.FailIfNotMatchesRegexp {
		for _, t := range texts {
			if !re.MatchString(t) {
				fails = append(fails, fmt.Sprintf("%s: record %q did not match fail_if_not_matches_regexp %q", section, clip(t), re.String()))
				break
			}
		}
	}
	if len(v.FailIfNoneMatchesRegexp) > 0 {
		matched := false
	none:
		for _, re := range v.FailIfNoneMatchesRegexp {
			for _, t := range texts {
				if re.MatchString(t) {
					matched = true
					break none
				}
			}
		}
		if !matched {
			fails = append(fails, fmt.Sprintf("%s: no record matched any fail_if_none_matches_regexp", section))
		}
	}
	return fails
}

// clip shortens s for logs and results, whatever a server sent.
func clip(s string) string {
	if len(s) <= dnsMaxRRString {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(s[:dnsMaxRRString], "\uFFFD") + "…"
}
