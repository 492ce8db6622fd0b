package collector

import (
	"github.com/isp-checker/isp-checker/prober"
)

// renderTLS writes the TLS metrics of an http or tcp probe: blackbox_exporter's
// probe_ssl_* and probe_tls_* with their meanings, plus isp-checker's
// probe_ssl_verified. Certificate metrics are written whenever the server
// sent certificates, even when verification failed and blackbox_exporter
// would show none; probe_ssl_last_chain_expiry_timestamp_seconds only when
// a chain verified (blackbox_exporter shows year 1 then).
func renderTLS(t *prober.TLSInfo, e *Emitter) {
	if t == nil {
		return
	}
	if leaf := t.Leaf(); leaf != nil {
		e.Gauge("probe_ssl_earliest_cert_expiry",
			"Returns the earliest expiry of any certificate the server sent, as a Unix timestamp in seconds",
			float64(t.EarliestCertExpiry.Unix()))
		e.Gauge("probe_ssl_last_chain_info", "Contains SSL leaf certificate information", 1,
			"fingerprint_sha256", leaf.FingerprintSHA256,
			"subject", leaf.Subject,
			"issuer", leaf.Issuer,
			"subjectalternative", leaf.SubjectAlternative(),
			"serialnumber", leaf.SerialNumber)
		e.Bool("probe_ssl_verified",
			"Whether the server's certificate chain verified against the trusted roots and the server name (0 when verification failed or was skipped)",
			t.Verified)
	}
	if !t.LastChainExpiry.IsZero() {
		e.Gauge("probe_ssl_last_chain_expiry_timestamp_seconds",
			"Returns the expiry of the verified certificate chain that lasts longest (the earliest expiry within each chain), as a Unix timestamp in seconds",
			float64(t.LastChainExpiry.Unix()))
	}
	if t.Version != "" {
		e.Gauge("probe_tls_version_info", "Returns the TLS version used, in the version label", 1, "version", t.Version)
	}
	if t.Cipher != "" {
		e.Gauge("probe_tls_cipher_info", "Returns the TLS cipher suite negotiated during the handshake, in the cipher label", 1, "cipher", t.Cipher)
	}
}
