package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"

	"github.com/isp-checker/isp-checker/config"
)

// UnixResult is the outcome of a unix probe: a connection to a Unix domain
// socket and the query_response dialogue over it.
type UnixResult struct {
	Common
	// Connected is true once the socket was connected.
	Connected bool `json:"connected"`
	Dialogue
}

type unixProbe struct {
	req    Request
	cfg    config.UnixProbe
	logger *slog.Logger
	res    *UnixResult
}

// ProbeUnix is the unix prober: a connection to the socket the target names
// (a path), optionally TLS, and the module's query_response dialogue.
func ProbeUnix(ctx context.Context, req *Request) Result {
	p := &unixProbe{req: *req, cfg: req.Module.Unix, logger: req.Logger, res: &UnixResult{}}
	p.run(ctx)
	return p.res
}

func (p *unixProbe) run(ctx context.Context) {
	// A path has no address to resolve, and the target policy cannot judge
	// it by its networks: allow_unix_paths does (see
	// config.TargetPolicy.CheckUnixPath), in resolve's place.
	sock := p.req.Target
	if s := targetScheme(sock); s != "" {
		p.res.Fail(p.logger, fmt.Sprintf("Unsupported scheme %q in target: a unix module probes a socket, give the socket's path (e.g. /run/app.sock)", clipText(s, 20)), nil)
		return
	}
	if err := p.req.Policy.AllowUnixPath(sock); err != nil {
		p.res.FailDenied(p.logger, err)
		return
	}
	conn, err := p.dial(ctx, sock)
	if err != nil {
		return
	}
	// The config requires tls_config.server_name or insecure_skip_verify
	// with TLS: there is no host name to fall back on.
	dlg := &dialogue{
		steps: p.cfg.QueryResponse, tlsConfig: &p.cfg.TLSConfig,
		logger: p.logger, common: &p.res.Common, out: &p.res.Dialogue,
	}
	if dlg.converse(ctx, conn, p.cfg.TLS) {
		p.res.Success = true
	}
}

func (p *unixProbe) dial(ctx context.Context, sock string) (net.Conn, error) {
	p.logger.Info("Dialing unix socket", "path", sock, "tls", p.cfg.TLS)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			// Connecting needs write permission on the socket file.
			p.res.Fail(p.logger, fmt.Sprintf("Permission denied connecting to unix socket %s", sock), err)
		} else {
			p.res.Fail(p.logger, "Dialing unix socket failed", err)
		}
		return nil, err
	}
	p.res.Connected = true
	p.logger.Info("Successfully dialed")
	return conn, nil
}
