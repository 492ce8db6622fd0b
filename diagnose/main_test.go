package diagnose

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/isp-checker/isp-checker/internal/netlab"
)

// loopbackCert is a certificate for 127.0.0.1 that this test process
// trusts as its system roots (SSL_CERT_FILE, read when TLS first verifies
// a chain): the checks of a run have no tls_config, and a loopback HTTPS
// far end must pass them as a real one would.
var loopbackCert tls.Certificate

func TestMain(m *testing.M) {
	netlab.Isolate() // lab tests: see the netlab package documentation
	dir, err := os.MkdirTemp("", "diagnose-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := trustLoopbackCert(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(cleanup{m, dir})
}

type cleanup struct {
	m   *testing.M
	dir string
}

func (c cleanup) Run() int {
	defer func() { _ = os.RemoveAll(c.dir) }()
	return c.m.Run()
}

func trustLoopbackCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "diagnose test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	loopbackCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return os.Setenv("SSL_CERT_FILE", file)
}
