package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// webTLS writes a self-signed certificate for 127.0.0.1 and a
// --web.config.file that serves it; it returns the file and a pool that
// trusts the certificate.
func webTLS(t *testing.T) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "isp-checker.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert := write("cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyf := write("key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	web := write("web.yml", "tls_server_config:\n  cert_file: "+cert+"\n  key_file: "+keyf+"\n")
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return web, pool
}

// `serve --speedtest.enable --web.config.file` is a responsiveness server a
// standard client can use: TLS with HTTP/2 negotiated by ALPN (the draft's
// MUST, and what goresponsiveness needs), the configuration at the
// well-known URI naming this listener, self probes multiplexed on a
// load-generating connection, and a foreign probe's connection let go.
func TestServeResponsivenessOverH2(t *testing.T) {
	web, pool := webTLS(t)
	addr := freePort(t)
	cmd := exec.Command(binary, "--speedtest.enable", "--web.config.file="+web, "--web.listen-address="+addr)
	cmd.Stderr = &testLog{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	newTransport := func() *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	}
	tr := newTransport()
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "https://" + addr
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err = c.Get(base + "/.well-known/nq"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var doc struct {
		Version int               `json:"version"`
		URLs    map[string]string `json:"urls"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" {
		t.Fatalf("config over %s (ALPN %v): %v", resp.Proto, resp.TLS, err)
	}
	small, large := doc.URLs["small_download_url"], doc.URLs["large_download_url"]
	if doc.Version != 1 || small != base+"/speedtest/rpm/small" || large != base+"/speedtest/rpm/large" ||
		doc.URLs["https_upload_url"] != base+"/speedtest/rpm/upload" {
		t.Fatalf("config %+v, want version 1 and both name sets under %s", doc, base)
	}

	// A load-generating download, and a self probe on its connection.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, large, nil)
	lgc, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer lgc.Body.Close()
	if _, err := io.ReadFull(lgc.Body, make([]byte, 1<<20)); err != nil || lgc.ProtoMajor != 2 {
		t.Fatalf("large over %s: %v", lgc.Proto, err)
	}
	reused := func(c *http.Client) bool {
		var r bool
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { r = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, small, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return r
	}
	for i := range 2 {
		if !reused(c) {
			t.Errorf("self probe %d did not ride on the load-generating connection", i)
		}
	}
	// A foreign probe: a new connection carrying nothing else. The server
	// sends GOAWAY with its answer and closes it, so the next request on
	// that client needs a new connection.
	ftr := newTransport()
	defer ftr.CloseIdleConnections()
	fc := &http.Client{Transport: ftr, Timeout: 10 * time.Second}
	reused(fc)
	time.Sleep(1500 * time.Millisecond) // the server closes a second after GOAWAY
	if reused(fc) {
		t.Error("a foreign probe's connection stayed open on the server")
	}
	cancel()

	_, metrics := fetchTLS(t, c, base+"/metrics")
	for _, want := range []string{`isp_checker_speedtest_rpm_requests_total{endpoint="small",result="success"} 4`, `isp_checker_speedtest_rpm_requests_total{endpoint="config",result="success"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func fetchTLS(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testLog sends a process's output to the test log.
type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
