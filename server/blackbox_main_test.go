package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go/http3"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/probers"
)

// The metric names (and phases) blackbox_exporter main (e39d7d4) wrote for
// its own blackbox.yml's websocket and http_3xx modules, run side by side
// with isp-checker against gorilla and quic-go peers on loopback, plus the
// names isp-checker adds on purpose (docs/blackbox-compatibility.md).
var blackboxMainNames = map[string]struct{ blackbox, ours string }{
	"websocket": {
		blackbox: "probe_dns_lookup_time_seconds probe_duration_seconds probe_ip_addr_hash probe_ip_protocol probe_success probe_timeout_seconds " +
			"probe_websocket_connection_upgraded probe_websocket_duration_seconds:connect probe_websocket_duration_seconds:processing " +
			"probe_websocket_duration_seconds:resolve probe_websocket_failed_due_to_regex probe_websocket_status_code",
	},
	"ws_dialogue": {
		blackbox: "probe_dns_lookup_time_seconds probe_duration_seconds probe_ip_addr_hash probe_ip_protocol probe_success probe_timeout_seconds " +
			"probe_websocket_connection_upgraded probe_websocket_duration_seconds:connect probe_websocket_duration_seconds:processing " +
			"probe_websocket_duration_seconds:resolve probe_websocket_duration_seconds:transfer probe_websocket_failed_due_to_regex probe_websocket_status_code",
	},
	"http_3xx": {
		blackbox: "probe_dns_lookup_time_seconds probe_duration_seconds probe_failed_due_to_regex probe_http_content_length " +
			"probe_http_duration_seconds:connect probe_http_duration_seconds:processing probe_http_duration_seconds:resolve " +
			"probe_http_duration_seconds:tls probe_http_duration_seconds:transfer probe_http_redirects probe_http_ssl probe_http_status_code " +
			"probe_http_uncompressed_body_length probe_http_version probe_ip_addr_hash probe_ip_protocol probe_ssl_earliest_cert_expiry " +
			"probe_ssl_last_chain_expiry_timestamp_seconds probe_ssl_last_chain_info probe_success probe_timeout_seconds probe_tls_cipher_info probe_tls_version_info",
		ours: "probe_ssl_verified",
	},
}

// blackboxMainPeerCert is a self-signed certificate for 127.0.0.1.
func blackboxMainPeerCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(17), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestBlackboxMainWebsocketAndHTTP3 runs the shapes of blackbox main's
// websocket and http_3xx modules (only a CA added, so the peer's
// certificate verifies), and a websocket dialogue, through /probe against
// real peers, and compares the metric names with blackbox main's.
func TestBlackboxMainWebsocketAndHTTP3(t *testing.T) {
	cert, caPEM := blackboxMainPeerCert(t)
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		_ = c.WriteMessage(websocket.TextMessage, []byte("Hello, isp"))
		_, _, _ = c.ReadMessage()
	}))
	defer ws.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h3 := &http3.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }),
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = h3.Serve(pc) }()
	defer func() { _ = h3.Close(); _ = pc.Close(); <-done }()

	ca := "      tls_config:\n        ca: |\n" + indent(caPEM, "          ")
	cfg, err := config.Load([]byte(`
modules:
  websocket:
    prober: websocket
  ws_dialogue:
    prober: websocket
    websocket:
      query_response:
        - expect: "^Hello, (.+)$"
          send: "name: ${1}"
  http_3xx:
    prober: http
    http:
      preferred_ip_protocol: "ip4"
      enable_http3: true
      enable_http2: false
      valid_http_versions: ["HTTP/3.0"]
`+ca), "")
	if err != nil {
		t.Fatal(err)
	}
	holder := config.NewHolder("", prometheus.NewRegistry())
	holder.Set(cfg)
	s := httptest.NewServer(NewProbeHandler(ProbeOptions{Config: holder, Probers: probers.All()}))
	defer s.Close()

	wsTarget := "ws://" + strings.TrimPrefix(ws.URL, "http://") + "/"
	targets := map[string]string{
		"websocket": wsTarget, "ws_dialogue": wsTarget,
		"http_3xx": "https://127.0.0.1:" + strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port) + "/",
	}
	for module, want := range blackboxMainNames {
		t.Run(module, func(t *testing.T) {
			body := blackboxMainScrape(t, s.URL+"/probe?module="+module+"&target="+targets[module])
			if !strings.Contains(body, "\nprobe_success 1\n") {
				t.Fatalf("probe failed:\n%s", body)
			}
			if got, w := metricNames(body), sortedFields(want.blackbox+" "+want.ours); got != w {
				t.Errorf("metric names\n got: %s\nwant: %s", got, w)
			}
		})
	}
}

func blackboxMainScrape(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return "\n" + string(b)
}

var phaseLabel = regexp.MustCompile(`\{phase="(\w+)"\}`)

// metricNames lists the exposition's metric names, a phase label as
// name:phase, other labels dropped.
func metricNames(body string) string {
	seen := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.LastIndexByte(line, ' ')]
		name = phaseLabel.ReplaceAllString(name, ":$1")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		seen[name] = true
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func sortedFields(s string) string {
	f := strings.Fields(s)
	sort.Strings(f)
	return strings.Join(f, " ")
}

func indent(s, pad string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pad + l + "\n")
	}
	return b.String()
}
