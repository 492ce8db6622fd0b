package prober

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TLSInfo is what a probe learnt about a TLS session and the certificates the
// server sent. The http and tcp probers fill it in even when the handshake
// failed certificate verification (expired, untrusted, wrong name), so the
// expiry of a broken certificate is still reported.
type TLSInfo struct {
	// Version is "TLS 1.0" … "TLS 1.3", or "unknown", as blackbox_exporter
	// names it. Empty when the handshake failed before it was known.
	Version string `json:"version,omitempty"`
	// Cipher is the negotiated cipher suite's IANA name, when known.
	Cipher string `json:"cipher,omitempty"`
	// ServerName is the name the certificate was checked against.
	ServerName string `json:"server_name,omitempty"`
	// HandshakeComplete is false when the handshake failed.
	HandshakeComplete bool `json:"handshake_complete"`
	// Verified is true when the chain verified against the trusted roots and
	// the server name. It is false when verification failed or was skipped
	// (insecure_skip_verify).
	Verified bool `json:"verified"`
	// VerifyError says why the chain did not verify.
	VerifyError string `json:"verify_error,omitempty"`
	// EarliestCertExpiry is the earliest NotAfter of any certificate the
	// server sent (probe_ssl_earliest_cert_expiry).
	EarliestCertExpiry time.Time `json:"earliest_cert_expiry,omitzero"`
	// LastChainExpiry is, over the verified chains, the latest of each
	// chain's earliest NotAfter (probe_ssl_last_chain_expiry_timestamp_seconds).
	// Zero when no chain was verified.
	LastChainExpiry time.Time `json:"last_chain_expiry,omitzero"`
	// Certificates are the certificates the server sent, leaf first.
	Certificates []CertInfo `json:"certificates,omitempty"`
}

// CertInfo describes one certificate.
type CertInfo struct {
	Subject           string    `json:"subject"`
	Issuer            string    `json:"issuer"`
	DNSNames          []string  `json:"dns_names,omitempty"`
	SerialNumber      string    `json:"serial_number"`
	FingerprintSHA256 string    `json:"fingerprint_sha256"`
	NotBefore         time.Time `json:"not_before"`
	NotAfter          time.Time `json:"not_after"`
}

// Leaf returns the server's own certificate, or nil.
func (t *TLSInfo) Leaf() *CertInfo {
	if t == nil || len(t.Certificates) == 0 {
		return nil
	}
	return &t.Certificates[0]
}

// NewTLSInfo describes a TLS handshake from its connection state and error.
// When the handshake failed certificate verification, crypto/tls returns a
// *tls.CertificateVerificationError that carries the unverified chain; the
// certificates are taken from it, so their expiry is known even though the
// connection was refused. serverName is what the certificate was checked
// against (the SNI in state is empty for IP addresses). It returns nil when
// the handshake got nowhere near a certificate or a version.
func NewTLSInfo(state *tls.ConnectionState, handshakeErr error, serverName string) *TLSInfo {
	if state == nil {
		state = &tls.ConnectionState{}
	}
	certs := state.PeerCertificates
	var verifyErr error
	var cve *tls.CertificateVerificationError
	if errors.As(handshakeErr, &cve) {
		certs = cve.UnverifiedCertificates
		verifyErr = cve.Err
	}
	if len(certs) == 0 && state.Version == 0 {
		return nil
	}
	info := &TLSInfo{
		ServerName:        serverName,
		HandshakeComplete: state.HandshakeComplete && handshakeErr == nil,
	}
	if state.ServerName != "" {
		info.ServerName = state.ServerName
	}
	if state.Version != 0 {
		info.Version = TLSVersionName(state.Version)
		if state.CipherSuite != 0 {
			info.Cipher = tls.CipherSuiteName(state.CipherSuite)
		}
	}
	switch {
	case verifyErr != nil:
		info.VerifyError = verifyErr.Error()
	case handshakeErr != nil:
		info.VerifyError = "handshake failed: " + handshakeErr.Error()
	case len(state.VerifiedChains) > 0:
		info.Verified = true
	default:
		info.VerifyError = "certificate not verified (insecure_skip_verify is set)"
	}
	for _, c := range certs {
		info.Certificates = append(info.Certificates, certInfo(c))
	}
	info.EarliestCertExpiry = earliestExpiry(certs)
	if info.Verified {
		for _, chain := range state.VerifiedChains {
			if e := earliestExpiry(chain); e.After(info.LastChainExpiry) {
				info.LastChainExpiry = e
			}
		}
	}
	return info
}

func earliestExpiry(certs []*x509.Certificate) time.Time {
	var earliest time.Time
	for _, c := range certs {
		if c.NotAfter.IsZero() {
			continue
		}
		if earliest.IsZero() || c.NotAfter.Before(earliest) {
			earliest = c.NotAfter
		}
	}
	return earliest
}

func certInfo(c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	info := CertInfo{
		Subject:           c.Subject.String(),
		Issuer:            c.Issuer.String(),
		DNSNames:          c.DNSNames,
		FingerprintSHA256: hex.EncodeToString(sum[:]),
		NotBefore:         c.NotBefore,
		NotAfter:          c.NotAfter,
	}
	if c.SerialNumber != nil {
		// Bytes, not Text(16): keeps leading zero bytes, as blackbox shows it.
		info.SerialNumber = fmt.Sprintf("%x", c.SerialNumber.Bytes())
	}
	return info
}

// SubjectAlternative is the leaf's DNS names joined with commas, the
// subjectalternative label of probe_ssl_last_chain_info.
func (c *CertInfo) SubjectAlternative() string { return strings.Join(c.DNSNames, ",") }

// TLSVersionName names a TLS version as blackbox_exporter's
// probe_tls_version_info label does.
func TLSVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS 1.0"
	case tls.VersionTLS11:
		return "TLS 1.1"
	case tls.VersionTLS12:
		return "TLS 1.2"
	case tls.VersionTLS13:
		return "TLS 1.3"
	}
	return "unknown"
}
