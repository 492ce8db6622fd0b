package prober

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/internal/syncbuf"
)

// tlsTestCert is a self-signed certificate made for one test: trusting
// its PEM (tls_config.ca) makes it a valid chain of one.
type tlsTestCert struct {
	TLS  tls.Certificate
	X509 *x509.Certificate
	PEM  string
}

// tlsTestNewCert makes a self-signed certificate for names (DNS names or IP
// addresses) that is valid until notAfter (in the past for an expired one).
func tlsTestNewCert(t testing.TB, notAfter time.Time, names ...string) tlsTestCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		// A serial with a leading zero byte, to check it is kept.
		SerialNumber:          new(big.Int).SetBytes([]byte{0x00, 0x0a, 0xbc, 0xde}),
		Subject:               pkix.Name{CommonName: "isp-checker test", Organization: []string{"isp-checker"}},
		NotBefore:             notAfter.Add(-400 * 24 * time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tlsTestCert{
		TLS:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed},
		X509: parsed,
		PEM:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}
}

// tlsTestValid and tlsTestExpired are made once: key generation is the
// slow part of these tests.
var (
	tlsTestOnce                  sync.Once
	tlsTestValidIP, tlsTestNamed tlsTestCert
	tlsTestExpiredIP             tlsTestCert
)

func tlsTestCerts(t testing.TB) (validIP, named, expiredIP tlsTestCert) {
	tlsTestOnce.Do(func() {
		future := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
		tlsTestValidIP = tlsTestNewCert(t, future, "127.0.0.1", "::1", "localhost")
		tlsTestNamed = tlsTestNewCert(t, future, "probe.test")
		tlsTestExpiredIP = tlsTestNewCert(t, time.Now().Add(-24*time.Hour).Truncate(time.Second), "127.0.0.1")
	})
	return tlsTestValidIP, tlsTestNamed, tlsTestExpiredIP
}

// tlsTestLogger logs to a buffer that is shown only when the test fails,
// so late log lines can never reach a finished test.
func tlsTestLogger(t testing.TB) *slog.Logger {
	t.Helper()
	buf := &syncbuf.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("probe logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tlsTestHandshake runs a real handshake over loopback TCP and returns what
// the client saw.
func tlsTestHandshake(t *testing.T, serverCert tlsTestCert, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(30 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		_ = s.SetDeadline(deadline)
		srv := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{serverCert.TLS}})
		if srv.Handshake() == nil {
			// Read until the client hangs up (TLS 1.3 tickets are sent here).
			_, _ = srv.Read(make([]byte, 1))
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(deadline)
	tc := tls.Client(c, client)
	err = tc.Handshake()
	state := tc.ConnectionState()
	_ = c.Close()
	<-done
	return state, err
}

func TestNewTLSInfo(t *testing.T) {
	valid, named, expired := tlsTestCerts(t)
	pool := func(certs ...tlsTestCert) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range certs {
			p.AddCert(c.X509)
		}
		return p
	}
	tests := []struct {
		name         string
		cert         tlsTestCert
		client       *tls.Config
		wantVerified bool
		wantErr      string // in VerifyError
		wantComplete bool
		wantChain    bool
	}{
		{"trusted", valid, &tls.Config{RootCAs: pool(valid), ServerName: "127.0.0.1"}, true, "", true, true},
		{"expired", expired, &tls.Config{RootCAs: pool(expired), ServerName: "127.0.0.1"}, false, "expired", false, false},
		{"untrusted", valid, &tls.Config{RootCAs: pool(), ServerName: "127.0.0.1"}, false, "unknown authority", false, false},
		{"wrong name", named, &tls.Config{RootCAs: pool(named), ServerName: "other.test"}, false, "other.test", false, false},
		{"insecure", valid, &tls.Config{InsecureSkipVerify: true}, false, "insecure_skip_verify", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state, err := tlsTestHandshake(t, tc.cert, tc.client)
			if tc.wantComplete != (err == nil) {
				t.Fatalf("handshake error = %v", err)
			}
			info := NewTLSInfo(&state, err, tc.client.ServerName)
			if info == nil {
				t.Fatal("NewTLSInfo returned nil")
			}
			if info.Verified != tc.wantVerified || info.HandshakeComplete != tc.wantComplete {
				t.Errorf("verified=%v complete=%v, want %v %v", info.Verified, info.HandshakeComplete, tc.wantVerified, tc.wantComplete)
			}
			if tc.wantErr != "" && !strings.Contains(info.VerifyError, tc.wantErr) {
				t.Errorf("VerifyError = %q, want it to contain %q", info.VerifyError, tc.wantErr)
			}
			if tc.wantErr == "" && tc.wantVerified && info.VerifyError != "" {
				t.Errorf("VerifyError = %q on a verified chain", info.VerifyError)
			}
			// The certificate is known whether or not it verified.
			if !info.EarliestCertExpiry.Equal(tc.cert.X509.NotAfter) {
				t.Errorf("EarliestCertExpiry = %v, want %v", info.EarliestCertExpiry, tc.cert.X509.NotAfter)
			}
			leaf := info.Leaf()
			if leaf == nil || leaf.Subject != tc.cert.X509.Subject.String() || leaf.SerialNumber != "0abcde" {
				t.Errorf("leaf = %+v", leaf)
			}
			if got := !info.LastChainExpiry.IsZero(); got != tc.wantChain {
				t.Errorf("LastChainExpiry = %v, want set=%v", info.LastChainExpiry, tc.wantChain)
			}
			if tc.wantChain && !info.LastChainExpiry.Equal(tc.cert.X509.NotAfter) {
				t.Errorf("LastChainExpiry = %v, want %v", info.LastChainExpiry, tc.cert.X509.NotAfter)
			}
			if tc.wantComplete && (info.Version != "TLS 1.3" || info.Cipher == "") {
				t.Errorf("version %q cipher %q", info.Version, info.Cipher)
			}
		})
	}
}

func TestNewTLSInfoNothing(t *testing.T) {
	if info := NewTLSInfo(nil, errors.New("connection reset"), "x"); info != nil {
		t.Errorf("NewTLSInfo without certificates or version = %+v, want nil", info)
	}
}

func TestTLSVersionName(t *testing.T) {
	for v, want := range map[uint16]string{
		tls.VersionTLS10: "TLS 1.0", tls.VersionTLS11: "TLS 1.1", tls.VersionTLS12: "TLS 1.2",
		tls.VersionTLS13: "TLS 1.3", 0x0300: "unknown",
	} {
		if got := TLSVersionName(v); got != want {
			t.Errorf("TLSVersionName(%#x) = %q, want %q", v, got, want)
		}
	}
}
