package prober

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	pconfig "github.com/prometheus/common/config"

	"github.com/isp-checker/isp-checker/config"
)

// TCPResult is the outcome of a tcp probe.
type TCPResult struct {
	Common
	// Connected is true once the TCP connection was established.
	Connected bool `json:"connected"`
	// ConnectSeconds is how long the TCP connect took
	// (probe_tcp_connect_duration_seconds, isp-checker's own).
	ConnectSeconds float64 `json:"connect_seconds"`
	// TLSHandshakeSeconds sums the TLS handshakes (tls: true, starttls).
	TLSHandshakeSeconds float64 `json:"tls_handshake_seconds,omitempty"`
	// TLS describes the last TLS handshake, failed or not.
	TLS *TLSInfo `json:"tls,omitempty"`
	// FailedDueToRegex is true when an expect regexp matched no line.
	FailedDueToRegex bool `json:"failed_due_to_regex"`
	// ExpectLabels are the query_response labels, expanded from the expect
	// regexps' submatches (probe_expect_info). Labels of later steps
	// override earlier ones of the same name.
	ExpectLabels map[string]string `json:"expect_labels,omitempty"`
}

type tcpProbe struct {
	req        Request
	cfg        config.TCPProbe
	logger     *slog.Logger
	res        *TCPResult
	serverName string
}

// ProbeTCP is the tcp prober: a connection to host:port, optionally TLS, and
// the module's query_response dialogue.
func ProbeTCP(ctx context.Context, req Request) Result {
	p := &tcpProbe{req: req, cfg: req.Module.TCP, logger: req.Logger, res: &TCPResult{}}
	p.run(ctx)
	return p.res
}

func (p *tcpProbe) run(ctx context.Context) {
	host, port, err := net.SplitHostPort(p.req.Target)
	if err != nil {
		p.res.Fail(p.logger, "Error splitting target address and port (want host:port)", err)
		return
	}
	// As blackbox_exporter: tls_config.server_name, else the hostname
	// parameter, else the target's host.
	p.serverName = p.cfg.TLSConfig.ServerName
	if p.serverName == "" {
		p.serverName = p.req.Hostname
	}
	if p.serverName == "" {
		p.serverName = host
	}
	ip, err := ResolveTarget(ctx, &p.res.Common, host, p.cfg.IPProtocol, p.cfg.IPProtocolFallback, p.req.Policy, p.logger)
	if err != nil {
		p.res.Fail(p.logger, resolveFailure(err), err)
		return
	}
	conn, err := p.dial(ctx, ip, port)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()

	// Nothing below may block past the probe's deadline.
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			p.res.Fail(p.logger, "Error setting deadline", err)
			return
		}
	}
	if p.cfg.TLS {
		tc, err := p.handshake(ctx, conn)
		if err != nil {
			return
		}
		conn = tc
	}
	if p.queryResponse(ctx, &conn) {
		p.res.Success = true
	}
}

func (p *tcpProbe) dial(ctx context.Context, ip *net.IPAddr, port string) (net.Conn, error) {
	network := "tcp6"
	if ip.IP.To4() != nil {
		network = "tcp4"
	}
	dialer, err := p.req.Policy.Dialer(network, p.cfg.SourceIPAddress)
	if err != nil {
		p.res.Fail(p.logger, "Error creating dialer", err)
		return nil, err
	}
	if p.cfg.SourceIPAddress != "" {
		p.logger.Info("Using local address", "source_ip_address", p.cfg.SourceIPAddress)
	}
	addr := net.JoinHostPort(ip.String(), port)
	p.logger.Info("Dialing TCP", "address", addr, "tls", p.cfg.TLS)
	start := time.Now()
	conn, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		if errors.Is(err, ErrDenied) {
			p.res.Fail(p.logger, "Connection refused by target_policy", err)
		} else {
			p.res.Fail(p.logger, "Dialing TCP failed", err)
		}
		return nil, err
	}
	p.res.Connected = true
	p.res.ConnectSeconds = time.Since(start).Seconds()
	p.logger.Info("Successfully dialed", "connect_seconds", p.res.ConnectSeconds)
	return conn, nil
}

// handshake runs a TLS client handshake on conn and records what it saw,
// including the certificates of a server that failed verification.
func (p *tcpProbe) handshake(ctx context.Context, conn net.Conn) (*tls.Conn, error) {
	cfg, err := pconfig.NewTLSConfigWithContext(ctx, &p.cfg.TLSConfig)
	if err != nil {
		p.res.Fail(p.logger, "Error creating TLS configuration", err)
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg.ServerName = p.serverName
	}
	tc := tls.Client(conn, cfg)
	start := time.Now()
	err = tc.HandshakeContext(ctx)
	p.res.TLSHandshakeSeconds += time.Since(start).Seconds()
	state := tc.ConnectionState()
	p.res.TLS = NewTLSInfo(&state, err, cfg.ServerName)
	if err != nil {
		p.res.Fail(p.logger, "TLS handshake failed", err)
		return nil, err
	}
	p.logger.Info("TLS handshake succeeded", "version", p.res.TLS.Version, "cipher", p.res.TLS.Cipher)
	return tc, nil
}

// queryResponse runs the query_response dialogue. conn is replaced by the
// TLS connection after a starttls step.
func (p *tcpProbe) queryResponse(ctx context.Context, conn *net.Conn) bool {
	scanner := bufio.NewScanner(*conn)
	for i, qr := range p.cfg.QueryResponse {
		p.logger.Info("Processing query response entry", "entry_number", i)
		send := qr.Send
		if qr.Expect.Regexp != nil {
			var match []int
			var line []byte
			for scanner.Scan() {
				line = scanner.Bytes()
				p.logger.Debug("Read line", "line", string(line))
				if match = qr.Expect.FindSubmatchIndex(line); match != nil {
					p.logger.Info("Regexp matched", "regexp", qr.Expect.String(), "line", string(line))
					break
				}
			}
			if err := scanner.Err(); err != nil {
				p.res.Fail(p.logger, "Error reading from connection", err)
				return false
			}
			if match == nil {
				p.res.FailedDueToRegex = true
				p.res.Fail(p.logger, fmt.Sprintf("Regexp %q did not match any line before the connection closed", qr.Expect.String()), nil)
				return false
			}
			send = string(qr.Expect.Expand(nil, []byte(send), line, match))
			for _, l := range qr.Labels {
				if p.res.ExpectLabels == nil {
					p.res.ExpectLabels = map[string]string{}
				}
				p.res.ExpectLabels[l.Name] = string(qr.Expect.Expand(nil, []byte(l.Value), line, match))
			}
		}
		if send != "" {
			p.logger.Debug("Sending line", "line", send)
			if _, err := fmt.Fprintf(*conn, "%s\n", send); err != nil {
				p.res.Fail(p.logger, "Failed to send", err)
				return false
			}
		}
		if qr.StartTLS {
			tc, err := p.handshake(ctx, *conn)
			if err != nil {
				return false
			}
			*conn = tc
			scanner = bufio.NewScanner(tc)
		}
	}
	return true
}
