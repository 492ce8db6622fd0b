package config

import (
	"errors"
	"fmt"
	"net/textproto"
	"time"

	"github.com/alecthomas/units"
	pconfig "github.com/prometheus/common/config"
)

// ThroughputProbe holds the throughput prober's options: an HTTP download
// from (or upload to) the target URL over several parallel connections,
// with the latency to the target's host measured while the link is idle and
// again while the transfer loads it (bufferbloat).
type ThroughputProbe struct {
	// Direction is download (the default: GET the target URL) or upload
	// (POST generated data to it).
	Direction string `yaml:"direction,omitempty"`
	// Duration is how long the transfer runs; it stops earlier when
	// max_bytes is reached. It is shortened (and the probe logs it) when it
	// does not fit in the probe's timeout. Default 5s.
	Duration time.Duration `yaml:"duration,omitempty"`
	// Connections is the number of parallel TCP connections (streams),
	// each with its own HTTP client, so HTTP/2 cannot fold them into one.
	// Default 4.
	Connections int `yaml:"connections,omitempty"`
	// MaxBytes caps the bytes transferred by the whole probe (all
	// connections); 0 (the default) means no cap besides duration.
	MaxBytes units.Base2Bytes `yaml:"max_bytes,omitempty"`
	// UploadRequestBytes is the body size of one upload request; a
	// connection sends the next request when one completes. Default 256MiB.
	UploadRequestBytes units.Base2Bytes `yaml:"upload_request_bytes,omitempty"`
	// RampUp is the start of the transfer left out of the rate (TCP slow
	// start, the queue filling) and before which no loaded-latency sample
	// is taken. Default 1s; it must be shorter than duration. 0 is no
	// ramp-up: the rate over the whole transfer (not omitempty, so /config
	// keeps a 0 that would load as the default).
	RampUp time.Duration `yaml:"ramp_up"`
	// Method overrides the HTTP method (default GET for download, POST for
	// upload).
	Method string `yaml:"method,omitempty"`
	// Headers are added to every transfer request.
	Headers map[string]string `yaml:"headers,omitempty"`

	// IPOptions: source_ip_address binds the transfer and the TCP latency
	// probes.
	IPOptions `yaml:",inline"`
	// CongestionControl sets the TCP congestion control of the transfer
	// connections (Linux, e.g. cubic, bbr, reno; it must be available in
	// net.ipv4.tcp_available_congestion_control, and one not in
	// tcp_allowed_congestion_control needs CAP_NET_ADMIN). Empty (the
	// default) keeps the system's. It matters for uploads, where the probe
	// is the sender: BBR keeps the bottleneck queue short, so it shows less
	// bufferbloat than the loss-based cubic most systems and apps use.
	CongestionControl string `yaml:"congestion_control,omitempty"`

	// LatencyProtocol measures latency to the target's host with tcp
	// connects to latency_port (the default: needs no privileges and gets
	// through firewalls that drop ping), icmp echo requests, or none.
	LatencyProtocol string `yaml:"latency_protocol,omitempty"`
	// LatencyPort is the TCP port for latency_protocol tcp; 0 (the default)
	// means the target URL's port.
	LatencyPort int `yaml:"latency_port,omitempty"`
	// LatencyInterval is the time between two latency samples, idle and
	// loaded. Default 100ms.
	LatencyInterval time.Duration `yaml:"latency_interval,omitempty"`
	// IdleLatencySamples is the number of samples taken before the transfer
	// starts. Default 10.
	IdleLatencySamples int `yaml:"idle_latency_samples,omitempty"`

	// HTTPClientConfig is the client for the transfer (TLS, auth, proxy).
	HTTPClientConfig pconfig.HTTPClientConfig `yaml:"http_client_config,inline"`
}

// Throughput option values and limits.
const (
	ThroughputDownload              = "download"
	ThroughputUpload                = "upload"
	LatencyProtocolTCP              = "tcp"
	LatencyProtocolICMP             = "icmp"
	LatencyProtocolNone             = "none"
	DefaultThroughputDuration       = 5 * time.Second
	DefaultThroughputConnections    = 4
	DefaultThroughputRampUp         = time.Second
	DefaultThroughputUploadRequest  = 256 * units.MiB
	DefaultLatencyInterval          = 100 * time.Millisecond
	DefaultIdleLatencySamples       = 10
	ThroughputMaxConnections        = 64
	ThroughputMaxDuration           = 10 * time.Minute
	ThroughputMinLatencyInterval    = 10 * time.Millisecond
	ThroughputMaxIdleLatencySamples = 1000
	ThroughputMinUploadRequestBytes = 64 * units.KiB
	ThroughputMaxUploadRequestBytes = units.Base2Bytes(1 << 40) // 1 TiB: a sanity bound
)

// DefaultThroughputProbe returns the throughput defaults.
func DefaultThroughputProbe() ThroughputProbe {
	return ThroughputProbe{
		Direction:          ThroughputDownload,
		Duration:           DefaultThroughputDuration,
		Connections:        DefaultThroughputConnections,
		UploadRequestBytes: DefaultThroughputUploadRequest,
		RampUp:             DefaultThroughputRampUp,
		IPOptions:          DefaultIPOptions(),
		LatencyProtocol:    LatencyProtocolTCP,
		LatencyInterval:    DefaultLatencyInterval,
		IdleLatencySamples: DefaultIdleLatencySamples,
		HTTPClientConfig:   pconfig.DefaultHTTPClientConfig,
	}
}

// hideSecrets is the options as /config shows them.
func (s *ThroughputProbe) hideSecrets() any {
	tp := *s
	tp.Headers = hideSecretHeaders(tp.Headers)
	return tp
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ThroughputProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultThroughputProbe()
	type throughputProbe ThroughputProbe
	if err := unmarshal((*throughputProbe)(s)); err != nil {
		return err
	}
	if err := s.HTTPClientConfig.Validate(); err != nil {
		return err
	}
	return s.Validate()
}

// Validate checks the options; UnmarshalYAML and Module.Check call it.
func (s *ThroughputProbe) Validate() error {
	switch s.Direction {
	case ThroughputDownload, ThroughputUpload:
	default:
		return fmt.Errorf("direction %q is not valid (download or upload)", s.Direction)
	}
	if s.Duration <= 0 || s.Duration > ThroughputMaxDuration {
		return fmt.Errorf("duration %s is out of range (above 0, at most %s)", s.Duration, ThroughputMaxDuration)
	}
	if s.Connections < 1 || s.Connections > ThroughputMaxConnections {
		return fmt.Errorf("connections %d is out of range 1-%d", s.Connections, ThroughputMaxConnections)
	}
	if s.MaxBytes < 0 {
		return errors.New("max_bytes cannot be negative (0 means no cap)")
	}
	if s.UploadRequestBytes < ThroughputMinUploadRequestBytes || s.UploadRequestBytes > ThroughputMaxUploadRequestBytes {
		return fmt.Errorf("upload_request_bytes %d is out of range %d-%d", int64(s.UploadRequestBytes),
			int64(ThroughputMinUploadRequestBytes), int64(ThroughputMaxUploadRequestBytes))
	}
	if s.RampUp < 0 || s.RampUp >= s.Duration {
		return fmt.Errorf("ramp_up %s must be at least 0 and shorter than duration %s", s.RampUp, s.Duration)
	}
	if err := s.check(); err != nil {
		return err
	}
	if !validCongestionControl(s.CongestionControl) {
		return fmt.Errorf("congestion_control %q is not a congestion control name (like cubic or bbr)", s.CongestionControl)
	}
	for key := range s.Headers {
		if textproto.CanonicalMIMEHeaderKey(key) == "Content-Length" {
			return errors.New("headers: Content-Length is set by the prober")
		}
	}
	switch s.LatencyProtocol {
	case LatencyProtocolTCP, LatencyProtocolICMP, LatencyProtocolNone:
	default:
		return fmt.Errorf("latency_protocol %q is not valid (tcp, icmp or none)", s.LatencyProtocol)
	}
	if s.LatencyPort < 0 || s.LatencyPort > 65535 {
		return fmt.Errorf("latency_port %d is out of range 1-65535 (0: the URL's port)", s.LatencyPort)
	}
	if s.LatencyPort != 0 && s.LatencyProtocol != LatencyProtocolTCP {
		return errors.New("latency_port is only used with latency_protocol: tcp")
	}
	if s.LatencyInterval < ThroughputMinLatencyInterval {
		return fmt.Errorf("latency_interval %s is below the minimum of %s", s.LatencyInterval, ThroughputMinLatencyInterval)
	}
	if s.IdleLatencySamples < 1 || s.IdleLatencySamples > ThroughputMaxIdleLatencySamples {
		return fmt.Errorf("idle_latency_samples %d is out of range 1-%d", s.IdleLatencySamples, ThroughputMaxIdleLatencySamples)
	}
	return nil
}

// validCongestionControl accepts "" and names the kernel could know:
// lower-case letters, digits and _, at most 15 bytes (TCP_CA_NAME_MAX).
func validCongestionControl(name string) bool {
	if len(name) > 15 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
