package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	pconfig "github.com/prometheus/common/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/isp-checker/isp-checker/config"
)

// GRPCServingStatuses are the serving statuses of the gRPC health checking
// protocol, the serving_status values of probe_grpc_healthcheck_response.
var GRPCServingStatuses = []string{"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"}

// GRPCResult is the outcome of a grpc probe: one call of the standard health
// checking protocol (grpc.health.v1.Health/Check).
type GRPCResult struct {
	Common
	// Called is true once the health check call was attempted (after the
	// target was parsed and resolved); the fields below are meaningful then.
	Called bool `json:"called"`
	// CheckSeconds is how long the call took, connection and TLS handshake
	// included (probe_grpc_duration_seconds{phase="check"}).
	CheckSeconds float64 `json:"check_seconds"`
	// StatusCode is the gRPC status code of the call (0 OK, 4
	// DeadlineExceeded, 5 NotFound, 14 Unavailable, …) and Status its name.
	StatusCode int    `json:"status_code"`
	Status     string `json:"status,omitempty"`
	// ServingStatus is the status in the health check response (one of
	// GRPCServingStatuses), empty when no response arrived.
	ServingStatus string `json:"serving_status,omitempty"`
	// SSL is true when the connection to the server was made over TLS.
	SSL bool `json:"ssl"`
	// TLS describes the last TLS handshake, failed or not.
	TLS *TLSInfo `json:"tls,omitempty"`
}

type grpcProbe struct {
	req    Request
	cfg    config.GRPCProbe
	logger *slog.Logger
	res    *GRPCResult
}

// ProbeGRPC is the grpc prober: the gRPC health checking protocol against
// host:port.
func ProbeGRPC(ctx context.Context, req *Request) Result {
	p := &grpcProbe{req: *req, cfg: req.Module.GRPC, logger: req.Logger, res: &GRPCResult{}}
	p.run(ctx)
	return p.res
}

func (p *grpcProbe) run(ctx context.Context) {
	host, port, err := grpcTarget(p.req.Target, p.cfg.TLS)
	if err != nil {
		p.res.Fail(p.logger, "Error parsing target (want host:port)", err)
		return
	}
	creds := insecure.NewCredentials()
	var tlsCreds *grpcTLSCreds
	if p.cfg.TLS {
		if tlsCreds, err = p.tlsCredentials(ctx, host); err != nil {
			p.res.Fail(p.logger, "Error creating TLS configuration", err)
			return
		}
		creds = tlsCreds
	}
	ip, ok := p.req.resolve(ctx, &p.res.Common, host, p.cfg.IPOptions)
	if !ok {
		return
	}

	// As blackbox_exporter: the :authority is the target's host and port;
	// the hostname parameter overrides it, as it does the Host header.
	authority := p.req.Hostname
	if authority == "" {
		authority = net.JoinHostPort(host, port)
	}
	network := "tcp6"
	if ip.IP.To4() != nil {
		network = "tcp4"
	}
	dialer := &grpcDialer{policy: p.req.Policy, network: network}
	addr := net.JoinHostPort(ip.String(), port)
	p.logger.Info("Dialing gRPC", "address", addr, "tls", p.cfg.TLS, "authority", authority)

	start := time.Now()
	// passthrough: the address is already resolved (and allowed); gRPC must
	// not resolve it again. A custom dialer also keeps gRPC from using a
	// proxy from the environment, which would dodge the target policy.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dialer.dial),
		grpc.WithAuthority(authority),
		grpc.WithUserAgent(userAgent()),
		grpc.WithDisableServiceConfig(),
		grpc.WithNoProxy(),
		// A health answer is a few bytes; gRPC's default would take 4 MiB
		// per probe from a server that sends more.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(grpcMaxAnswer)),
		grpc.WithMaxHeaderListSize(grpcMaxAnswer),
	)
	if err != nil {
		p.res.Fail(p.logger, "Error creating gRPC client", err)
		return
	}
	defer func() {
		if err := conn.Close(); err != nil {
			p.logger.Debug("Closing gRPC connection", "err", err)
		}
	}()

	p.res.Called = true
	callCtx := ctx
	if len(p.cfg.Metadata) > 0 {
		callCtx = metadata.NewOutgoingContext(ctx, metadata.MD(p.cfg.Metadata))
	}
	resp, err := grpc_health_v1.NewHealthClient(conn).Check(callCtx, &grpc_health_v1.HealthCheckRequest{Service: p.cfg.Service})
	p.res.CheckSeconds = time.Since(start).Seconds()
	if tlsCreds != nil {
		p.res.TLS, p.res.SSL = tlsCreds.rec.get()
	}
	st := status.Convert(err)
	p.res.StatusCode = int(st.Code())
	p.res.Status = st.Code().String()
	if err != nil {
		switch {
		case errors.Is(dialer.lastErr(), ErrDenied):
			p.res.FailDenied(p.logger, dialer.lastErr())
		case st.Code() == codes.DeadlineExceeded && ctx.Err() != nil:
			p.res.Fail(p.logger, "gRPC health check timed out", err)
		default:
			p.res.Fail(p.logger, "gRPC health check failed", err)
		}
		return
	}
	p.res.ServingStatus = resp.GetStatus().String()
	if p.res.TLS != nil {
		p.logger.Info("TLS handshake succeeded", "version", p.res.TLS.Version, "cipher", p.res.TLS.Cipher)
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		p.res.Fail(p.logger, fmt.Sprintf("Health check of service %q answered %s, want SERVING", p.cfg.Service, p.res.ServingStatus), nil)
		return
	}
	p.logger.Info("Health check succeeded", "service", p.cfg.Service, "serving_status", p.res.ServingStatus)
	p.res.Success = true
}

// grpcMaxAnswer bounds a health check's answer and its header list.
const grpcMaxAnswer = 64 << 10

// grpcTarget splits a grpc target as blackbox_exporter does: host:port, an
// http:// or https:// prefix is allowed and ignored (tls decides), and
// without a port the port is 443 with TLS, else 80.
func grpcTarget(target string, useTLS bool) (host, port string, err error) {
	u, err := targetURL(target)
	if err != nil {
		return "", "", err
	}
	host, port = u.Hostname(), u.Port()
	if host == "" {
		return "", "", errors.New("the target has no host")
	}
	if port == "" {
		port = "80"
		if useTLS {
			port = "443"
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", "", fmt.Errorf("invalid port %q", port)
	}
	return host, port, nil
}

// tlsCredentials builds the TLS credentials: the module's tls_config, with
// the server name from tls_config.server_name, else the hostname parameter
// (without a port), else the target's host (as the tcp prober does).
func (p *grpcProbe) tlsCredentials(ctx context.Context, host string) (*grpcTLSCreds, error) {
	cfg, err := pconfig.NewTLSConfigWithContext(ctx, &p.cfg.TLSConfig)
	if err != nil {
		return nil, err
	}
	if cfg.ServerName == "" {
		cfg.ServerName = p.req.Hostname
		// The hostname parameter is also the :authority, which may carry a
		// port; a server name does not.
		if h, _, err := net.SplitHostPort(cfg.ServerName); err == nil {
			cfg.ServerName = h
		}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	// gRPC runs over HTTP/2, which over TLS is negotiated with ALPN and
	// needs TLS 1.2 or later (RFC 9113, section 9.2).
	if !slices.Contains(cfg.NextProtos, "h2") {
		cfg.NextProtos = append(cfg.NextProtos, "h2")
	}
	if cfg.MinVersion == 0 && (cfg.MaxVersion == 0 || cfg.MaxVersion >= tls.VersionTLS12) {
		cfg.MinVersion = tls.VersionTLS12
	}
	return &grpcTLSCreds{cfg: cfg, rec: &grpcTLSRecord{}}, nil
}

// grpcDialer dials every connection gRPC makes through the target policy
// and keeps the last dial error, which gRPC turns into a status message.
type grpcDialer struct {
	policy  *Policy
	network string

	mu  sync.Mutex
	err error
}

func (d *grpcDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := d.policy.DialContext(ctx, d.network, addr, "")
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
	return conn, err
}

func (d *grpcDialer) lastErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// grpcTLSCreds are gRPC transport credentials that run the client TLS
// handshake themselves, so the probe learns what the server sent even when
// verification failed: gRPC reports a failed handshake only as text in a
// status message, which has lost the *tls.CertificateVerificationError and
// its certificates. Unlike grpc-go's credentials.NewTLS, they keep the
// configured server name instead of taking it from the :authority.
type grpcTLSCreds struct {
	cfg *tls.Config
	rec *grpcTLSRecord
}

// grpcTLSRecord holds what the last handshake showed; gRPC handshakes on its
// own goroutines.
type grpcTLSRecord struct {
	mu          sync.Mutex
	info        *TLSInfo
	established bool
}

func (r *grpcTLSRecord) set(info *TLSInfo, established bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.info, r.established = info, established
}

func (r *grpcTLSRecord) get() (*TLSInfo, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info, r.established
}

// ClientHandshake implements credentials.TransportCredentials.
func (c *grpcTLSCreds) ClientHandshake(ctx context.Context, _ string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn := tls.Client(raw, c.cfg)
	err := conn.HandshakeContext(ctx)
	state := conn.ConnectionState()
	info := NewTLSInfo(&state, err, c.cfg.ServerName)
	if err == nil && state.NegotiatedProtocol != "h2" {
		// As grpc-go: a server that does not select h2 with ALPN does not
		// speak gRPC over TLS.
		err = errors.New("the server did not select HTTP/2 (h2) with ALPN, which gRPC over TLS requires")
	}
	c.rec.set(info, err == nil)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, credentials.TLSInfo{
		State:          state,
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

// ServerHandshake implements credentials.TransportCredentials; these
// credentials are for clients only.
func (c *grpcTLSCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("grpc prober: server handshake is not supported")
}

// Info implements credentials.TransportCredentials. It names no server, so
// the :authority comes from grpc.WithAuthority.
func (c *grpcTLSCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone implements credentials.TransportCredentials. The clone records into
// the same place: it serves the same probe.
func (c *grpcTLSCreds) Clone() credentials.TransportCredentials {
	return &grpcTLSCreds{cfg: c.cfg.Clone(), rec: c.rec}
}

// OverrideServerName implements credentials.TransportCredentials (unused by
// gRPC).
func (c *grpcTLSCreds) OverrideServerName(string) error {
	return errors.New("grpc prober: the server name comes from tls_config.server_name or the hostname parameter")
}
