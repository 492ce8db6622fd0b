package config

import (
	"errors"
	"fmt"
	"math"
	"net/textproto"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"github.com/alecthomas/units"
	pconfig "github.com/prometheus/common/config"
)

// HTTPProbe is blackbox_exporter's http prober schema, plus source_ip_address.
type HTTPProbe struct {
	ValidStatusCodes             []int    `yaml:"valid_status_codes,omitempty"` // Defaults to 2xx.
	ValidHTTPVersions            []string `yaml:"valid_http_versions,omitempty"`
	IPOptions                    `yaml:",inline"`
	SkipResolvePhaseWithProxy    bool                     `yaml:"skip_resolve_phase_with_proxy,omitempty"`
	NoFollowRedirects            *bool                    `yaml:"no_follow_redirects,omitempty"` // Deprecated: follow_redirects.
	FailIfSSL                    bool                     `yaml:"fail_if_ssl,omitempty"`
	FailIfNotSSL                 bool                     `yaml:"fail_if_not_ssl,omitempty"`
	Method                       string                   `yaml:"method,omitempty"`
	Headers                      map[string]string        `yaml:"headers,omitempty"`
	FailIfBodyMatchesRegexp      []Regexp                 `yaml:"fail_if_body_matches_regexp,omitempty"`
	FailIfBodyNotMatchesRegexp   []Regexp                 `yaml:"fail_if_body_not_matches_regexp,omitempty"`
	FailIfBodyJSONMatchesCEL     *CELProgram              `yaml:"fail_if_body_json_matches_cel,omitempty"`
	FailIfBodyJSONNotMatchesCEL  *CELProgram              `yaml:"fail_if_body_json_not_matches_cel,omitempty"`
	FailIfHeaderMatchesRegexp    []HeaderMatch            `yaml:"fail_if_header_matches,omitempty"`
	FailIfHeaderNotMatchesRegexp []HeaderMatch            `yaml:"fail_if_header_not_matches,omitempty"`
	Body                         string                   `yaml:"body,omitempty"`
	BodyFile                     string                   `yaml:"body_file,omitempty"`
	HTTPClientConfig             pconfig.HTTPClientConfig `yaml:"http_client_config,inline"`
	Compression                  string                   `yaml:"compression,omitempty"`
	BodySizeLimit                units.Base2Bytes         `yaml:"body_size_limit,omitempty"`
	// EnableHTTP3 makes every request over QUIC (HTTP/3, https only), as
	// blackbox_exporter main's enable_http3 does; see checkHTTP3.
	EnableHTTP3 bool `yaml:"enable_http3,omitempty"`
}

// DefaultHTTPProbe returns the http defaults (blackbox's).
func DefaultHTTPProbe() HTTPProbe {
	return HTTPProbe{IPOptions: DefaultIPOptions(), HTTPClientConfig: pconfig.DefaultHTTPClientConfig}
}

// hideSecrets is the options as /config shows them.
func (s *HTTPProbe) hideSecrets() any {
	h := *s
	h.Headers = hideSecretHeaders(h.Headers)
	if h.Body != "" {
		h.Body = "<secret>" // a request body can carry credentials
	}
	return h
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *HTTPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultHTTPProbe()
	type httpProbe HTTPProbe
	if err := unmarshal((*httpProbe)(s)); err != nil {
		return err
	}
	// 0 means no limit; MaxInt64 would overflow http.MaxBytesReader's +1.
	if s.BodySizeLimit < 0 || s.BodySizeLimit == math.MaxInt64 {
		s.BodySizeLimit = math.MaxInt64 - 1
	}
	if err := s.HTTPClientConfig.Validate(); err != nil {
		return err
	}
	if s.NoFollowRedirects != nil {
		s.HTTPClientConfig.FollowRedirects = !*s.NoFollowRedirects
		s.NoFollowRedirects = nil
	}
	if s.Body != "" && s.BodyFile != "" {
		return errors.New("setting body and body_file both are not allowed")
	}
	if err := s.check(); err != nil {
		return err
	}
	for _, code := range s.ValidStatusCodes {
		if code < 100 || code > 999 {
			return fmt.Errorf("valid_status_codes: %d is not an HTTP status code", code)
		}
	}
	for _, v := range s.ValidHTTPVersions {
		switch v {
		case "HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/2", "HTTP/3.0", "HTTP/3":
		default:
			return fmt.Errorf("valid_http_versions: %q is not one of HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0", v)
		}
	}
	if err := s.checkHTTP3(); err != nil {
		return err
	}
	for key, value := range s.Headers {
		if textproto.CanonicalMIMEHeaderKey(key) == "Accept-Encoding" && !compressionAccepted(s.Compression, value) {
			return fmt.Errorf(`invalid configuration "%s: %s", "compression: %s"`, key, value, s.Compression)
		}
	}
	switch s.Compression {
	case "", "gzip", "br", "deflate", "identity":
	default:
		return fmt.Errorf("compression %q is not one of gzip, br, deflate, identity", s.Compression)
	}
	return nil
}

// checkHTTP3 applies blackbox_exporter's rules for enable_http3, in its
// order and with its messages: HTTP/3.0 is a valid version only over HTTP/3,
// which then admits no HTTP/2 or HTTP/1.1 response and wants enable_http2
// off, the way a reader of the module sees it. ("HTTP/2" and "HTTP/3" are
// the same versions as "HTTP/2.0" and "HTTP/3.0" here.)
func (s *HTTPProbe) checkHTTP3() error {
	if !s.EnableHTTP3 {
		if slices.Contains(s.ValidHTTPVersions, "HTTP/3.0") || slices.Contains(s.ValidHTTPVersions, "HTTP/3") {
			return errors.New("HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false")
		}
		return nil
	}
	for _, v := range s.ValidHTTPVersions {
		if v == "HTTP/2.0" || v == "HTTP/2" || v == "HTTP/1.1" {
			return errors.New("HTTP/3 and HTTP/2.0/1.1 cannot be used together - only HTTP/3.0 is allowed when enable_http3 is true")
		}
	}
	if s.HTTPClientConfig.EnableHTTP2 {
		return errors.New("when enable_http3 is true, enable_http2 must be set to false")
	}
	return nil
}

// compressionAccepted reports whether an explicit Accept-Encoding header
// still admits the configured compression, so the check can succeed.
func compressionAccepted(compression, acceptEncoding string) bool {
	if compression == "" {
		return true
	}
	type enc struct {
		name string
		q    string
	}
	var encs []enc
	for _, part := range strings.Split(acceptEncoding, ",") {
		fields := strings.Split(strings.TrimSpace(part), ";")
		e := enc{name: strings.TrimSpace(fields[0])}
		for _, f := range fields[1:] {
			f = strings.TrimSpace(f)
			if strings.HasPrefix(f, "q=") {
				e.q = strings.TrimPrefix(f, "q=")
			}
		}
		encs = append(encs, e)
	}
	for _, e := range encs {
		if strings.EqualFold(e.name, compression) {
			return e.q != "0" && e.q != "0.0" && e.q != "0.00" && e.q != "0.000"
		}
	}
	for _, e := range encs {
		if e.name == "*" {
			return e.q != "0" && e.q != "0.0" && e.q != "0.00" && e.q != "0.000"
		}
	}
	return false
}

// HeaderMatch matches a response header against a regexp.
type HeaderMatch struct {
	Header       string `yaml:"header,omitempty"`
	Regexp       Regexp `yaml:"regexp,omitempty"`
	AllowMissing bool   `yaml:"allow_missing,omitempty"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *HeaderMatch) UnmarshalYAML(unmarshal func(any) error) error {
	type headerMatch HeaderMatch
	if err := unmarshal((*headerMatch)(s)); err != nil {
		return err
	}
	if s.Header == "" {
		return errors.New("header name must be set for HTTP header matchers")
	}
	if s.Regexp.Regexp == nil {
		return errors.New("regexp must be set for HTTP header matchers")
	}
	return nil
}

// CELProgram is a CEL expression over the JSON body (variable `body`),
// compiled at load time.
type CELProgram struct {
	cel.Program
	expression string
}

// NewCELProgram compiles a CEL expression that must evaluate to a bool.
func NewCELProgram(expr string) (CELProgram, error) {
	env, err := cel.NewEnv(cel.Variable("body", cel.DynType))
	if err != nil {
		return CELProgram{}, err
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return CELProgram{}, iss.Err()
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return CELProgram{}, fmt.Errorf("expression has type %s, want bool", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.InterruptCheckFrequency(100))
	if err != nil {
		return CELProgram{}, err
	}
	return CELProgram{Program: prg, expression: expr}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (c *CELProgram) UnmarshalYAML(unmarshal func(any) error) error {
	var expr string
	if err := unmarshal(&expr); err != nil {
		return err
	}
	p, err := NewCELProgram(expr)
	if err != nil {
		return fmt.Errorf("could not compile CEL expression %q: %w", expr, err)
	}
	*c = p
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (c CELProgram) MarshalYAML() (any, error) { return c.expression, nil }

// String returns the expression.
func (c CELProgram) String() string { return c.expression }
