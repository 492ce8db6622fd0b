package config

import (
	"errors"

	pconfig "github.com/prometheus/common/config"
)

// UnixProbe is blackbox_exporter's unix prober schema: connect to the Unix
// domain socket the target names (a path), optionally over TLS, and run a
// query_response dialogue as tcp does. There is no address to resolve, so
// no preferred_ip_protocol, fallback or source address. Which paths may be
// probed is target_policy.allow_unix_paths (none by default).
type UnixProbe struct {
	QueryResponse []QueryResponse `yaml:"query_response,omitempty"`
	// TLS starts TLS as soon as the socket is connected.
	TLS       bool              `yaml:"tls,omitempty"`
	TLSConfig pconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// DefaultUnixProbe returns the unix defaults (blackbox's: plain, no dialogue).
func DefaultUnixProbe() UnixProbe { return UnixProbe{} }

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *UnixProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultUnixProbe()
	type unixProbe UnixProbe
	if err := unmarshal((*unixProbe)(s)); err != nil {
		return err
	}
	return s.Validate()
}

// Validate checks what a unix module needs to run.
func (s *UnixProbe) Validate() error {
	// blackbox_exporter lets Go verify the certificate against the socket
	// path (tls: true), or against no name at all (starttls), so such a
	// module loads and then fails every probe. A path is not a name a
	// certificate holds: ask for the name, or for verification to be
	// skipped, at load time.
	if s.usesTLS() && s.TLSConfig.ServerName == "" && !s.TLSConfig.InsecureSkipVerify {
		return errors.New("tls over a unix socket needs tls_config.server_name (the name in the server's certificate) or tls_config.insecure_skip_verify: a socket path is not a host name to verify")
	}
	return nil
}

func (s *UnixProbe) usesTLS() bool {
	if s.TLS {
		return true
	}
	for _, qr := range s.QueryResponse {
		if qr.StartTLS {
			return true
		}
	}
	return false
}
