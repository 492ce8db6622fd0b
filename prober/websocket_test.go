package prober

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/isp-checker/isp-checker/config"
)

// websocketTestServer is a real websocket server (gorilla's Upgrader, as
// blackbox_exporter's client is gorilla's) with a few endpoints:
//
//	/hello   sends "Hello, <name>", wants "name: <name>" back, then sends "ok"
//	/silent  upgrades and never sends
//	/deny    refuses the upgrade with 403
//	/big     sends one message of ?n bytes
//
// It records the headers of the last upgrade request.
type websocketTestServer struct {
	mu     sync.Mutex
	header http.Header
	got    []string
	done   chan struct{}
}

func (s *websocketTestServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.header = r.Header.Clone()
	s.header.Set("Host", r.Host)
	s.header.Set("X-Test-Remote-Addr", r.RemoteAddr)
	s.mu.Unlock()
	if r.URL.Path == "/deny" {
		http.Error(w, "no", http.StatusForbidden)
		return
	}
	up := websocket.Upgrader{}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer func() { _ = c.Close() }()
	switch r.URL.Path {
	case "/hello":
		_ = c.WriteMessage(websocket.TextMessage, []byte("Hello, isp"))
		kind, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if kind == websocket.BinaryMessage {
			msg = append([]byte("binary:"), msg...)
		}
		s.mu.Lock()
		s.got = append(s.got, string(msg))
		s.mu.Unlock()
		_ = c.WriteMessage(websocket.BinaryMessage, []byte("ok"))
		_, _, _ = c.ReadMessage() // until the client closes
	case "/silent":
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
		}
	case "/big":
		var n int
		_, _ = fmt.Sscan(r.URL.Query().Get("n"), &n)
		_ = c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", n)))
		_, _, _ = c.ReadMessage()
	}
}

func (s *websocketTestServer) last() (http.Header, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return s.header, got
}

func websocketTestStart(t *testing.T, tlsCert *tlsTestCert) (*websocketTestServer, string) {
	t.Helper()
	s := &websocketTestServer{done: make(chan struct{})}
	t.Cleanup(func() { close(s.done) })
	if tlsCert != nil {
		srv := httpTestTLSServer(t, *tlsCert, false, s)
		return s, "wss://" + strings.TrimPrefix(srv.URL, "https://")
	}
	srv := httpTestServer(t, s)
	return s, "ws://" + strings.TrimPrefix(srv.URL, "http://")
}

func websocketTestRun(t *testing.T, timeout time.Duration, target string, m config.Module, opts ...httpTestOpt) *WebsocketResult {
	t.Helper()
	return probeTestRun[*WebsocketResult](t, timeout, target, m, opts...)
}

func websocketTestPhases(r *WebsocketResult) string {
	var names []string
	for n := range r.PhaseSeconds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

const websocketHello = `
query_response:
  - expect: "^Hello, (.+)$"
    send: "name: ${1}"
  - expect: "^ok$"
`

func TestWebsocketDialogue(t *testing.T) {
	srv, base := websocketTestStart(t, nil)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := probeTestModule(t, "websocket", 0, `
http_config:
  basic_auth: {username: probe, password: s3cret}
headers:
  X-Some-Header:
    values: [plain]
    secrets: [hidden]
    files: [`+filepath.Join(dir, "token")+`]`+websocketHello)
	res := websocketTestRun(t, httpTestTimeout, base+"/hello", m)
	probeTestCheck(t, res, "")
	if res.StatusCode != 101 || !res.Upgraded || res.FailedDueToRegex {
		t.Errorf("status %d upgraded %v failed_due_to_regex %v, want 101 true false", res.StatusCode, res.Upgraded, res.FailedDueToRegex)
	}
	if got := websocketTestPhases(res); got != "connect,processing,resolve,transfer" {
		t.Errorf("phases %s", got)
	}
	h, got := srv.last()
	if fmt.Sprint(got) != "[name: isp]" {
		t.Errorf("server got %q, want the expanded send without a newline", got)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("probe:s3cret")); h.Get("Authorization") != want {
		t.Errorf("Authorization %q, want %q", h.Get("Authorization"), want)
	}
	if v := h.Values("X-Some-Header"); fmt.Sprint(v) != "[plain hidden from-file]" {
		t.Errorf("X-Some-Header %q", v)
	}
	if h.Get("Host") != strings.TrimPrefix(base, "ws://") || !strings.HasPrefix(h.Get("User-Agent"), "isp-checker") {
		t.Errorf("Host %q User-Agent %q", h.Get("Host"), h.Get("User-Agent"))
	}
}

func TestWebsocketSourceIPAddress(t *testing.T) {
	srv, base := websocketTestStart(t, nil)
	m := probeTestModule(t, "websocket", 0, "source_ip_address: 127.0.0.2")
	probeTestCheck(t, websocketTestRun(t, httpTestTimeout, base+"/hello", m), "")
	if h, _ := srv.last(); !strings.HasPrefix(h.Get("X-Test-Remote-Addr"), "127.0.0.2:") {
		t.Errorf("server saw the upgrade from %s, want 127.0.0.2", h.Get("X-Test-Remote-Addr"))
	}
}

func TestWebsocketBinarySend(t *testing.T) {
	srv, base := websocketTestStart(t, nil)
	// 0xff is not UTF-8: as a text message it would break the protocol.
	m := probeTestModule(t, "websocket", 0, "query_response:\n  - expect: '^Hello'\n    send: !!binary /wAB\n  - expect: '^ok$'\n")
	probeTestCheck(t, websocketTestRun(t, httpTestTimeout, base+"/hello", m), "")
	if _, got := srv.last(); fmt.Sprint(got) != "[binary:\xff\x00\x01]" {
		t.Errorf("server got %q, want one binary message of the three bytes", got)
	}
}

func TestWebsocketBearerAndHTTPHeaders(t *testing.T) {
	srv, base := websocketTestStart(t, nil)
	m := probeTestModule(t, "websocket", 0, `
http_config:
  authorization: {credentials: tok}
  http_headers:
    X-Extra: {values: [one]}
`)
	res := websocketTestRun(t, httpTestTimeout, base+"/hello", m)
	probeTestCheck(t, res, "")
	h, _ := srv.last()
	if h.Get("Authorization") != "Bearer tok" || h.Get("X-Extra") != "one" {
		t.Errorf("Authorization %q X-Extra %q", h.Get("Authorization"), h.Get("X-Extra"))
	}
	t.Run("Host and User-Agent from headers", func(t *testing.T) {
		m := probeTestModule(t, "websocket", 0, "headers: {Host: {values: [chat.example]}, User-Agent: {values: [mine]}}")
		probeTestCheck(t, websocketTestRun(t, httpTestTimeout, base+"/hello", m), "")
		h, _ := srv.last()
		if h.Get("Host") != "chat.example" || fmt.Sprint(h.Values("User-Agent")) != "[mine]" {
			t.Errorf("Host %q User-Agent %q", h.Get("Host"), h.Values("User-Agent"))
		}
	})
	if got := websocketTestPhases(res); got != "connect,processing,resolve" {
		t.Errorf("phases %s: transfer only with query_response", got)
	}
}

// oauth2 fetches a token (client credentials, through the target policy)
// and sends it with the upgrade; a token endpoint that refuses fails the
// probe before any upgrade is tried.
func TestWebsocketOAuth2(t *testing.T) {
	srv, base := websocketTestStart(t, nil)
	var mu sync.Mutex
	var forms []string
	token := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		forms = append(forms, r.PostForm.Get("grant_type")+" "+r.PostForm.Get("scope"))
		mu.Unlock()
		user, pass, _ := r.BasicAuth()
		if r.URL.Path != "/token" || user != "probe" || pass != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"tok-42","token_type":"Bearer","expires_in":3600}`)
	}))
	oauth := func(secret, path string) config.Module {
		return probeTestModule(t, "websocket", 0, fmt.Sprintf(`
http_config:
  oauth2:
    client_id: probe
    client_secret: %s
    token_url: %s%s
    scopes: [chat]
`, secret, token.URL, path))
	}
	res := websocketTestRun(t, httpTestTimeout, base+"/hello", oauth("s3cret", "/token"))
	probeTestCheck(t, res, "")
	if h, _ := srv.last(); h.Get("Authorization") != "Bearer tok-42" {
		t.Errorf("upgrade Authorization %q, want the token", h.Get("Authorization"))
	}
	mu.Lock()
	if len(forms) != 1 || forms[0] != "client_credentials chat" {
		t.Errorf("token requests %q, want one client_credentials request for scope chat", forms)
	}
	mu.Unlock()

	res = websocketTestRun(t, httpTestTimeout, base+"/hello", oauth("wrong", "/token"))
	probeTestCheck(t, res, "Error building the upgrade request headers")
	if !strings.Contains(res.Error+res.Cause, "invalid_client") || res.Upgraded || res.StatusCode != 0 {
		t.Errorf("a refused token: error %q cause %q, status %d upgraded %v", res.Error, res.Cause, res.StatusCode, res.Upgraded)
	}

	// The token request goes through the target policy: link-local is
	// denied by default, so nothing is sent there.
	m := probeTestModule(t, "websocket", 0, "http_config: {oauth2: {client_id: probe, client_secret: s3cret, token_url: 'http://169.254.169.254/token'}}")
	res = websocketTestRun(t, httpTestTimeout, base+"/hello", m)
	if !strings.Contains(res.Error+res.Cause, "denied network 169.254.0.0/16") || res.Upgraded {
		t.Errorf("a token URL the policy denies: error %q cause %q, upgraded %v", res.Error, res.Cause, res.Upgraded)
	}
}

func TestWebsocketFailures(t *testing.T) {
	_, base := websocketTestStart(t, nil)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "ws://" + closed.Addr().String() + "/"
	_ = closed.Close()
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name, target, yaml, err string
		status                  int
		upgraded, regex         bool
		phases                  string
	}{
		{"upgrade refused", base + "/deny", "", "Websocket upgrade refused: HTTP status 403", 403, false, false, "connect,processing,resolve"},
		{"connection refused", refused, "", "Error dialing websocket", 0, false, false, "processing,resolve"},
		{"regexp mismatch", base + "/hello", "query_response: [{expect: '^Bye'}]", `Regexp "^Bye" did not match the message "Hello, isp"`, 101, true, true, "connect,processing,resolve,transfer"},
		{"http target", "http" + strings.TrimPrefix(base, "ws") + "/hello", "", "want a ws:// or wss:// URL", 0, false, false, ""},
		{"bare target", strings.TrimPrefix(base, "ws://"), "", "want a ws:// or wss:// URL", 0, false, false, ""},
		{"missing header file", base + "/hello", "headers: {X-A: {files: [" + missing + "]}}", "unable to read headers file", 0, false, false, ""},
		{"missing password file", base + "/hello", "http_config: {basic_auth: {username: u, password_file: " + missing + "}}", "unable to read basic auth password", 0, false, false, ""},
		{"message too large", base + "/big?n=2000", "query_response: [{expect: x}]", "message is larger than 1000 bytes", 101, true, true, "connect,processing,resolve,transfer"},
	}
	defer func(old int64) { maxBufferedBody = old }(maxBufferedBody)
	maxBufferedBody = 1000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := websocketTestRun(t, httpTestTimeout, tc.target, probeTestModule(t, "websocket", 0, tc.yaml))
			probeTestCheck(t, res, tc.err)
			if res.StatusCode != tc.status || res.Upgraded != tc.upgraded || res.FailedDueToRegex != tc.regex {
				t.Errorf("status %d upgraded %v regex %v, want %d %v %v", res.StatusCode, res.Upgraded, res.FailedDueToRegex, tc.status, tc.upgraded, tc.regex)
			}
			if got := websocketTestPhases(res); got != tc.phases {
				t.Errorf("phases %q, want %q", got, tc.phases)
			}
		})
	}
}

// A server that upgrades and then says nothing must not hold the probe past
// its timeout (blackbox_exporter's waits until the server closes).
func TestWebsocketSilentServerTimeout(t *testing.T) {
	_, base := websocketTestStart(t, nil)
	m := probeTestModule(t, "websocket", 0, "query_response: [{expect: hello}]")
	start := time.Now()
	res := websocketTestRun(t, time.Second, base+"/silent", m)
	elapsed := time.Since(start)
	probeTestCheck(t, res, "Error reading websocket message")
	if !res.FailedDueToRegex || !res.Upgraded {
		t.Errorf("failed_due_to_regex %v upgraded %v", res.FailedDueToRegex, res.Upgraded)
	}
	if elapsed > 5*time.Second {
		t.Errorf("probe took %v under a 1s timeout", elapsed)
	}
}

func TestWebsocketTLS(t *testing.T) {
	valid, named, _ := tlsTestCerts(t)
	_, base := websocketTestStart(t, &valid)
	t.Run("trusted", func(t *testing.T) {
		res := websocketTestRun(t, httpTestTimeout, base+"/hello", probeTestModule(t, "websocket", 0, "http_config:\n"+httpTestIndent(httpTestCA(valid), 2)+websocketHello))
		probeTestCheck(t, res, "")
		if res.TLS == nil || !res.TLS.Verified || res.TLS.Version != "TLS 1.3" || res.TLS.ServerName != "127.0.0.1" {
			t.Fatalf("TLS %+v", res.TLS)
		}
		if !res.TLS.EarliestCertExpiry.Equal(valid.X509.NotAfter) {
			t.Errorf("expiry %v, want %v", res.TLS.EarliestCertExpiry, valid.X509.NotAfter)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		res := websocketTestRun(t, httpTestTimeout, base+"/hello", probeTestModule(t, "websocket", 0, ""))
		probeTestCheck(t, res, "certificate")
		if res.TLS == nil || res.TLS.Verified || res.TLS.Leaf() == nil || res.Upgraded {
			t.Errorf("TLS %+v upgraded %v: want the unverified certificate", res.TLS, res.Upgraded)
		}
	})
	t.Run("server_name", func(t *testing.T) {
		_, nbase := websocketTestStart(t, &named)
		res := websocketTestRun(t, httpTestTimeout, nbase+"/hello", probeTestModule(t, "websocket", 0,
			"http_config:\n"+httpTestIndent(httpTestCA(named)+"  server_name: probe.test\n", 2)))
		probeTestCheck(t, res, "")
		if res.TLS == nil || !res.TLS.Verified || res.TLS.ServerName != "probe.test" {
			t.Errorf("TLS %+v", res.TLS)
		}
	})
}

// websocketTestProxy is an HTTP CONNECT proxy that tunnels to loopback
// only and records what it was asked for.
func websocketTestProxy(t *testing.T) (string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Host)
		mu.Unlock()
		ap, err := netip.ParseAddrPort(r.Host)
		if r.Method != http.MethodConnect || err != nil || !ap.Addr().IsLoopback() {
			http.Error(w, "loopback only", http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			_ = up.Close()
			return
		}
		go func() { _, _ = io.Copy(up, buf); _ = up.Close() }()
		_, _ = io.Copy(c, bufio.NewReader(up))
		_ = c.Close()
	}))
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		s := seen
		seen = nil
		return s
	}
}

func TestWebsocketProxyAndPolicy(t *testing.T) {
	_, base := websocketTestStart(t, nil)
	proxy, seen := websocketTestProxy(t)
	t.Run("through proxy", func(t *testing.T) {
		res := websocketTestRun(t, httpTestTimeout, base+"/hello", probeTestModule(t, "websocket", 0, "http_config: {proxy_url: "+proxy+"}\n"+websocketHello))
		probeTestCheck(t, res, "")
		if got := seen(); fmt.Sprint(got) != "[CONNECT "+strings.TrimPrefix(base, "ws://")+"]" {
			t.Errorf("proxy saw %v", got)
		}
	})
	for _, tc := range []struct{ name, target, yaml string }{
		{"denied target", "ws://169.254.169.254/", ""},
		{"denied target through proxy", "ws://169.254.169.254/", "http_config: {proxy_url: " + proxy + "}"},
		{"denied v6 link-local", "wss://[fe80::1]:8443/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var denied atomic.Int32
			policy := NewPolicy(config.DefaultTargetPolicy(), func() { denied.Add(1) })
			res := websocketTestRun(t, httpTestTimeout, tc.target, probeTestModule(t, "websocket", 0, tc.yaml), httpTestPolicy(policy))
			probeTestCheck(t, res, "Target refused by target_policy")
			if denied.Load() != 1 || len(seen()) != 0 {
				t.Errorf("denied %d times; the proxy must not be asked", denied.Load())
			}
		})
	}
	t.Run("denied proxy address", func(t *testing.T) {
		tp := config.DefaultTargetPolicy()
		tp.DenyNetworks = append(tp.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.2/32")})
		policy := NewPolicy(tp, nil)
		res := websocketTestRun(t, httpTestTimeout, base+"/hello", probeTestModule(t, "websocket", 0, "http_config: {proxy_url: 'http://127.0.0.2:1'}"), httpTestPolicy(policy))
		probeTestCheck(t, res, "refused by target_policy")
	})
}
