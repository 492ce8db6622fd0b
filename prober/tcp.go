package prober

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

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
	Dialogue
}

type tcpProbe struct {
	req    Request
	cfg    config.TCPProbe
	logger *slog.Logger
	res    *TCPResult
	dlg    *dialogue
}

// ProbeTCP is the tcp prober: a connection to host:port, optionally TLS, and
// the module's query_response dialogue.
func ProbeTCP(ctx context.Context, req *Request) Result {
	p := &tcpProbe{req: *req, cfg: req.Module.TCP, logger: req.Logger, res: &TCPResult{}}
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
	serverName := p.cfg.TLSConfig.ServerName
	if serverName == "" {
		serverName = p.req.Hostname
	}
	if serverName == "" {
		serverName = host
	}
	p.dlg = &dialogue{
		steps: p.cfg.QueryResponse, tlsConfig: &p.cfg.TLSConfig, serverName: serverName,
		logger: p.logger, common: &p.res.Common, out: &p.res.Dialogue,
	}
	ip, ok := p.req.resolve(ctx, &p.res.Common, host, p.cfg.IPOptions)
	if !ok {
		return
	}
	conn, err := p.dial(ctx, ip, port)
	if err != nil {
		return
	}
	if p.dlg.converse(ctx, conn, p.cfg.TLS) {
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
			p.res.FailDenied(p.logger, err)
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
