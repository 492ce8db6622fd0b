package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// UnixResult is the outcome of a unix probe: a connection to a Unix domain
// socket and the query_response dialogue over it.
type UnixResult struct {
	Common
	// Connected is true once the socket was connected.
	Connected bool `json:"connected"`
	Dialogue
}

// ProbeUnix connects to the socket the target names. The target policy
// cannot judge a path by its networks: allow_unix_paths does (see
// config.TargetPolicy.CheckUnixPath).
func ProbeUnix(ctx context.Context, req Request) Result {
	res := &UnixResult{}
	cfg, logger, sock := req.Module.Unix, req.Logger, req.Target
	if err := req.Policy.AllowUnixPath(sock); err != nil {
		res.FailDenied(logger, err)
		return res
	}
	logger.Info("Dialing unix socket", "path", sock, "tls", cfg.TLS)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			// Connecting needs write permission on the socket file.
			res.Fail(logger, fmt.Sprintf("Permission denied connecting to unix socket %s", sock), err)
		} else {
			res.Fail(logger, "Dialing unix socket failed", err)
		}
		return res
	}
	defer func() { _ = conn.Close() }()
	res.Connected = true
	logger.Info("Successfully dialed")
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			res.Fail(logger, "Error setting deadline", err)
			return res
		}
	}
	// The config requires tls_config.server_name or insecure_skip_verify
	// with TLS: there is no host name to fall back on.
	dlg := &dialogue{
		steps: cfg.QueryResponse, tlsConfig: &cfg.TLSConfig,
		logger: logger, common: &res.Common, out: &res.Dialogue,
	}
	if cfg.TLS {
		tc, err := dlg.handshake(ctx, conn)
		if err != nil {
			return res
		}
		conn = tc
	}
	res.Success = dlg.run(ctx, &conn)
	return res
}
