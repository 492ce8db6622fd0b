package prober

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/isp-checker/isp-checker/config"
)

// http3TestServer is a real HTTP/3 server (quic-go's) on a loopback UDP
// port, with the test certificate for 127.0.0.1, ::1 and localhost.
func http3TestServer(t testing.TB, h http.Handler) (port int) {
	return http3TestServerSlowHandshake(t, h, 0)
}

// http3TestServerSlowHandshake holds every QUIC handshake for delay
// before it presents the certificate: a known share of the tls phase.
func http3TestServerSlowHandshake(t testing.TB, h http.Handler, delay time.Duration) (port int) {
	t.Helper()
	valid, _, _ := tlsTestCerts(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert := valid.TLS
	srv := &http3.Server{
		Handler: h,
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			time.Sleep(delay)
			return &cert, nil
		}}),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(pc) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = pc.Close()
		<-done
	})
	return pc.LocalAddr().(*net.UDPAddr).Port
}

const http3TestModule = `
enable_http3: true
enable_http2: false
valid_http_versions: ["HTTP/3.0"]
preferred_ip_protocol: ip4
`

func http3TestCA(t testing.TB) string {
	valid, _, _ := tlsTestCerts(t)
	return httpTestCA(valid)
}

func TestHTTP3(t *testing.T) {
	var mu sync.Mutex
	var seen *http.Request
	const handshake = 100 * time.Millisecond
	port := http3TestServerSlowHandshake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r
		mu.Unlock()
		_, _ = io.WriteString(w, "hello over h3")
	}), handshake)
	hostport := "127.0.0.1:" + strconv.Itoa(port)
	m := httpTestModule(t, http3TestModule+http3TestCA(t)+`
basic_auth: {username: probe, password: s3cret}
http_headers:
  X-H3: {values: [yes]}
fail_if_body_not_matches_regexp: ["over h3"]
`)
	for _, target := range []string{"https://" + hostport + "/x", "http://" + hostport + "/x", hostport + "/x"} {
		t.Run(target, func(t *testing.T) {
			res := httpTestRun(t, target, m)
			httpTestCheck(t, res, "")
			if res.HTTPVersion != "HTTP/3.0" || !res.SSL || res.StatusCode != 200 {
				t.Errorf("version %q ssl %v status %d", res.HTTPVersion, res.SSL, res.StatusCode)
			}
			if res.TLS == nil || res.TLS.Version != "TLS 1.3" || !res.TLS.Verified || res.TLS.Cipher == "" {
				t.Errorf("TLS %+v", res.TLS)
			}
			if res.URL != "https://"+hostport+"/x" {
				t.Errorf("URL %q: want the https form", res.URL)
			}
			mu.Lock()
			r := seen
			mu.Unlock()
			if r == nil || r.Proto != "HTTP/3.0" {
				t.Fatalf("server saw %+v", r)
			}
			if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("probe:s3cret")); r.Header.Get("Authorization") != want || r.Header.Get("X-H3") != "yes" {
				t.Errorf("Authorization %q X-H3 %q: auth and http_headers must reach an HTTP/3 server", r.Header.Get("Authorization"), r.Header.Get("X-H3"))
			}
			if !strings.HasPrefix(r.Header.Get("User-Agent"), "isp-checker") || r.Host != hostport {
				t.Errorf("User-Agent %q Host %q", r.Header.Get("User-Agent"), r.Host)
			}
			// The handshake, which the server holds for 100 ms, is the tls
			// phase, and only there.
			ph := res.PhaseSeconds
			if ph["tls"] < handshake.Seconds() || ph["connect"] >= handshake.Seconds() || ph["processing"] <= 0 {
				t.Errorf("phases %v: want the QUIC handshake in tls, connect only the socket setup", ph)
			}
		})
	}
}

func TestHTTP3Redirects(t *testing.T) {
	// The handler reads the port the server was given (atomically: it is
	// set once the server runs).
	var portOf atomic.Int64
	var denied atomic.Int32
	p := http3TestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		port := int(portOf.Load())
		switch r.URL.Path {
		case "/to-metadata":
			http.Redirect(w, r, "https://169.254.169.254:"+strconv.Itoa(port)+"/", http.StatusFound)
		case "/to-evil-name":
			http.Redirect(w, r, "https://evil.test:"+strconv.Itoa(port)+"/", http.StatusFound)
		case "/to-blocked":
			http.Redirect(w, r, "https://blocked.test:"+strconv.Itoa(port)+"/", http.StatusFound)
		case "/to-localhost":
			http.Redirect(w, r, "https://localhost:"+strconv.Itoa(port)+"/done", http.StatusFound)
		default:
			_, _ = io.WriteString(w, "ok "+r.Host)
		}
	}))
	probeTestResolver(t, map[string][]netip.Addr{
		"evil.test":      {netip.MustParseAddr("169.254.169.254")},
		"localhost.test": {netip.MustParseAddr("127.0.0.1")},
		"localhost":      {netip.MustParseAddr("127.0.0.1")},
	})
	portOf.Store(int64(p))
	port := p
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	tp := config.DefaultTargetPolicy()
	tp.DenyHosts = []string{"blocked.test"}
	policy := NewPolicy(tp, func() { denied.Add(1) })
	m := httpTestModule(t, http3TestModule+http3TestCA(t))
	tests := []struct{ name, target, err string }{
		{"target denied", "https://169.254.169.254:" + strconv.Itoa(port) + "/", "address 169.254.169.254 is in denied network"},
		{"redirect to a denied address", base + "/to-metadata", "address 169.254.169.254 is in denied network"},
		{"redirect to a name of a denied address", base + "/to-evil-name", "address 169.254.169.254 is in denied network"},
		{"redirect to a denied name", base + "/to-blocked", "blocked.test matches denied host pattern"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			denied.Store(0)
			res := httpTestRun(t, tc.target, m, httpTestPolicy(policy))
			httpTestCheck(t, res, tc.err)
			if !strings.Contains(res.Error, "refused by target_policy") {
				t.Errorf("error %q does not name the target policy", res.Error)
			}
			if denied.Load() == 0 {
				t.Error("the policy was never asked")
			}
		})
	}
	t.Run("name target", func(t *testing.T) {
		// The handler answers "ok <Host>".
		mHost := httpTestModule(t, http3TestModule+http3TestCA(t)+"fail_if_body_not_matches_regexp: ['^ok localhost:']\n")
		res := httpTestRun(t, "https://localhost:"+strconv.Itoa(port)+"/host", mHost, httpTestPolicy(policy))
		httpTestCheck(t, res, "")
		if res.IPAddr != "127.0.0.1" || res.TLS == nil || res.TLS.ServerName != "localhost" || res.Redirects != 0 {
			t.Errorf("ip %q TLS %+v: the name is the server name, the resolved address is dialled", res.IPAddr, res.TLS)
		}
	})
	t.Run("redirect to an allowed name", func(t *testing.T) {
		res := httpTestRun(t, base+"/to-localhost", m, httpTestPolicy(policy))
		httpTestCheck(t, res, "")
		if res.Redirects != 1 || res.FinalURL != "https://localhost:"+strconv.Itoa(port)+"/done" || res.HTTPVersion != "HTTP/3.0" {
			t.Errorf("redirects %d final %q version %q", res.Redirects, res.FinalURL, res.HTTPVersion)
		}
		if res.TLS == nil || res.TLS.ServerName != "localhost" {
			t.Errorf("TLS %+v: the redirect's own name must be the server name", res.TLS)
		}
	})
}

func TestHTTP3Failures(t *testing.T) {
	// A UDP port where nothing speaks QUIC: the probe must end at its
	// timeout, and its goroutines with it (TestMain checks for leaks).
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	m := httpTestModule(t, http3TestModule)
	start := time.Now()
	res := httpTestRunTimeout(t, time.Second, "https://"+silent.LocalAddr().String()+"/", m)
	httpTestCheck(t, res, "HTTP request did not complete before the probe timeout")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("probe took %v under a 1s timeout", d)
	}

	port := http3TestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	target := "https://127.0.0.1:" + strconv.Itoa(port) + "/"
	t.Run("untrusted certificate", func(t *testing.T) {
		res := httpTestRun(t, target, m)
		httpTestCheck(t, res, "certificate signed by unknown authority")
		// As over TCP: the expiry of a certificate that failed is known.
		valid, _, _ := tlsTestCerts(t)
		if res.TLS == nil || res.TLS.Verified || !res.TLS.EarliestCertExpiry.Equal(valid.X509.NotAfter) {
			t.Errorf("TLS %+v: want the unverified certificate's expiry", res.TLS)
		}
	})
	t.Run("proxy", func(t *testing.T) {
		res := httpTestRun(t, target, httpTestModule(t, http3TestModule+"proxy_url: http://127.0.0.1:3128\n"))
		httpTestCheck(t, res, "cannot be used with enable_http3")
	})
	t.Run("bad version", func(t *testing.T) {
		res := httpTestRun(t, target, httpTestModule(t, "enable_http3: true\nenable_http2: false\nvalid_http_versions: [\"HTTP/1.0\"]\n"+http3TestCA(t)))
		httpTestCheck(t, res, "Invalid HTTP version HTTP/3.0")
	})
}
