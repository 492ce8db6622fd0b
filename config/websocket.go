package config

import (
	"fmt"
	"net/textproto"
	"slices"
	"sort"

	pconfig "github.com/prometheus/common/config"
)

// WebsocketProbe is blackbox_exporter's websocket prober schema: an HTTP/1.1
// upgrade to ws:// or wss://, then query_response over messages.
type WebsocketProbe struct {
	// HTTPClientConfig carries tls_config, basic_auth, authorization,
	// http_headers and the proxy settings. Unlike http's, it starts empty
	// (no follow_redirects, no enable_http2), as blackbox_exporter's does:
	// an upgrade is one HTTP/1.1 request.
	HTTPClientConfig pconfig.HTTPClientConfig `yaml:"http_config,omitempty"`
	// Headers are added to the upgrade request: each name maps to values,
	// secrets and files (read at probe time), as http_headers does.
	Headers       pconfig.Headers `yaml:"headers,omitempty"`
	QueryResponse []QueryResponse `yaml:"query_response,omitempty"`
	IPOptions     `yaml:",inline"`
}

// DefaultWebsocketProbe returns the websocket defaults (blackbox's).
func DefaultWebsocketProbe() WebsocketProbe { return WebsocketProbe{IPOptions: DefaultIPOptions()} }

// handshakeHeaders are written by the websocket handshake itself; a
// configured value would be refused by every probe, so it is refused here.
var handshakeHeaders = []string{"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions"}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *WebsocketProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultWebsocketProbe()
	type websocketProbe WebsocketProbe
	if err := unmarshal((*websocketProbe)(s)); err != nil {
		return err
	}
	if err := s.HTTPClientConfig.Validate(); err != nil {
		return fmt.Errorf("http_config: %w", err)
	}
	if err := s.check(); err != nil {
		return err
	}
	names := make([]string, 0, len(s.Headers.Headers))
	for name := range s.Headers.Headers {
		names = append(names, name)
	}
	if hh := s.HTTPClientConfig.HTTPHeaders; hh != nil {
		for name := range hh.Headers {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if slices.Contains(handshakeHeaders, textproto.CanonicalMIMEHeaderKey(name)) {
			return fmt.Errorf("header %q is written by the websocket handshake and cannot be configured", name)
		}
	}
	return nil
}

// setDirectory makes the relative file paths of the section relative to dir.
func (s *WebsocketProbe) setDirectory(dir string) {
	s.HTTPClientConfig.SetDirectory(dir)
	s.Headers.SetDirectory(dir)
}
