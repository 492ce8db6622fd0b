package prober

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/isp-checker/isp-checker/config"
)

// httpTestTimeout is generous: CI machines are slow and shared.
const httpTestTimeout = 30 * time.Second

// httpTestModule loads an http module from the YAML of its http: section,
// through the real config loader.
func httpTestModule(t testing.TB, httpYAML string) config.Module {
	t.Helper()
	return httpTestLoad(t, "http", httpYAML)
}

func httpTestLoad(t testing.TB, prober, yamlBody string) config.Module {
	t.Helper()
	return probeTestModule(t, prober, 0, yamlBody)
}

// httpTestDedent removes the indentation common to all non-blank lines.
func httpTestDedent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// httpTestCA is the tls_config that trusts cert.
func httpTestCA(cert tlsTestCert) string {
	return "tls_config:\n  ca: |\n" + httpTestIndent(cert.PEM, 4)
}

func httpTestIndent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pad + l + "\n")
	}
	return b.String()
}

type httpTestOpt func(*Request)

func httpTestHostname(h string) httpTestOpt { return func(r *Request) { r.Hostname = h } }

func httpTestPolicy(p *Policy) httpTestOpt { return func(r *Request) { r.Policy = p } }

func httpTestRun(t testing.TB, target string, m config.Module, opts ...httpTestOpt) *HTTPResult {
	t.Helper()
	return httpTestRunTimeout(t, httpTestTimeout, target, m, opts...)
}

func httpTestRunTimeout(t testing.TB, timeout time.Duration, target string, m config.Module, opts ...httpTestOpt) *HTTPResult {
	t.Helper()
	return probeTestRun[*HTTPResult](t, timeout, target, m, opts...)
}

// httpTestCheck fails the test unless the result succeeded (errSubstr == "")
// or failed with an error containing errSubstr.
func httpTestCheck(t testing.TB, res *HTTPResult, errSubstr string) {
	t.Helper()
	probeTestCheck(t, res, errSubstr)
}

func httpTestServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func httpTestTLSServer(t testing.TB, cert tlsTestCert, http2 bool, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.EnableHTTP2 = http2
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPStatusCodes(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	tests := []struct {
		name, path, yaml, err string
	}{
		{"200 is 2xx", "/200", "", ""},
		{"204 is 2xx", "/204", "", ""},
		{"404 is not 2xx", "/404", "", "Invalid HTTP response status code 404, wanted 2xx"},
		{"500 is not 2xx", "/500", "", "status code 500"},
		{"404 listed", "/404", "valid_status_codes: [404, 410]", ""},
		{"200 not listed", "/200", "valid_status_codes: [204]", "status code 200, wanted one of [204]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, srv.URL+tc.path, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if want, _ := strconv.Atoi(tc.path[1:]); res.StatusCode != want {
				t.Errorf("StatusCode = %d, want %d", res.StatusCode, want)
			}
			if res.HTTPVersion != "HTTP/1.1" || res.SSL || res.TLS != nil {
				t.Errorf("version %q ssl %v tls %v", res.HTTPVersion, res.SSL, res.TLS)
			}
		})
	}
}

func TestHTTPVersions(t *testing.T) {
	valid, _, _ := tlsTestCerts(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	plain := httpTestServer(t, ok)
	h2 := httpTestTLSServer(t, valid, true, ok)
	ca := httpTestCA(valid)
	tests := []struct {
		name, url, yaml, wantProto, err string
	}{
		{"plain is 1.1", plain.URL, `valid_http_versions: ["HTTP/1.1"]`, "HTTP/1.1", ""},
		{"plain is not 2", plain.URL, `valid_http_versions: ["HTTP/2.0"]`, "HTTP/1.1", "Invalid HTTP version HTTP/1.1"},
		{"h2 negotiated", h2.URL, ca + `valid_http_versions: ["HTTP/2.0"]`, "HTTP/2.0", ""},
		{"h2 short name", h2.URL, ca + `valid_http_versions: ["HTTP/2"]`, "HTTP/2.0", ""},
		{"h2 disabled", h2.URL, ca + "enable_http2: false\nvalid_http_versions: [\"HTTP/1.1\"]", "HTTP/1.1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, tc.url, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if res.HTTPVersion != tc.wantProto {
				t.Errorf("HTTPVersion = %q, want %q", res.HTTPVersion, tc.wantProto)
			}
		})
	}
}

// httpTestRecorder remembers the last request a server saw.
type httpTestRecorder struct {
	mu     sync.Mutex
	method string
	body   string
	header http.Header
	host   string
	sni    string
	count  int
}

func (rec *httpTestRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.method, rec.body, rec.header, rec.host = r.Method, string(body), r.Header.Clone(), r.Host
	if r.TLS != nil {
		rec.sni = r.TLS.ServerName
	}
	rec.count++
	rec.mu.Unlock()
	_, _ = io.WriteString(w, "recorded")
}

func (rec *httpTestRecorder) get() httpTestRecorder {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return httpTestRecorder{method: rec.method, body: rec.body, header: rec.header, host: rec.host, sni: rec.sni, count: rec.count}
}

func TestHTTPRequestShape(t *testing.T) {
	rec := &httpTestRecorder{}
	srv := httpTestServer(t, rec)
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(bodyFile, []byte(`{"from":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml            string
		method, body          string
		header, value, wantUA string
	}{
		{"defaults", "", "GET", "", "User-Agent", "isp-checker", ""},
		{"post body", "method: POST\nbody: 'hello=world'", "POST", "hello=world", "", "", ""},
		{"post body_file", "method: PUT\nbody_file: " + bodyFile, "PUT", `{"from":"file"}`, "", "", ""},
		{"headers", "headers:\n  X-Test: yes\n  User-Agent: custom/1.0", "GET", "", "X-Test", "yes", "custom/1.0"},
		{"http_headers", "http_headers:\n  X-From-Common:\n    values: [common]", "GET", "", "X-From-Common", "common", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, srv.URL+"/shape", httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, "")
			got := rec.get()
			if got.method != tc.method || got.body != tc.body {
				t.Errorf("server saw %s %q, want %s %q", got.method, got.body, tc.method, tc.body)
			}
			if tc.header != "" && got.header.Get(tc.header) != tc.value {
				t.Errorf("header %s = %q, want %q", tc.header, got.header.Get(tc.header), tc.value)
			}
			if tc.wantUA != "" && got.header.Get("User-Agent") != tc.wantUA {
				t.Errorf("User-Agent = %q, want %q", got.header.Get("User-Agent"), tc.wantUA)
			}
			if want := strings.TrimPrefix(srv.URL, "http://"); got.host != want {
				t.Errorf("Host = %q, want %q", got.host, want)
			}
		})
	}
}

func TestHTTPBodyRegexp(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "<html>Status: all systems operational</html>")
	}))
	tests := []struct {
		name, yaml, err string
		regex           bool
	}{
		{"no regexps", "", "", false},
		{"matches is bad", "fail_if_body_matches_regexp: ['operational']", `body matched regular expression "operational"`, true},
		{"no match is fine", "fail_if_body_matches_regexp: ['database error']", "", false},
		{"not matches is fine", "fail_if_body_not_matches_regexp: ['Status: (all|some)']", "", false},
		{"not matches is bad", "fail_if_body_not_matches_regexp: ['degraded']", `body did not match regular expression "degraded"`, true},
		{"both", "fail_if_body_matches_regexp: ['error']\nfail_if_body_not_matches_regexp: ['systems']", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, srv.URL, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if res.FailedDueToRegex != tc.regex {
				t.Errorf("FailedDueToRegex = %v, want %v", res.FailedDueToRegex, tc.regex)
			}
			if res.UncompressedBodyLength != int64(len("<html>Status: all systems operational</html>")) {
				t.Errorf("UncompressedBodyLength = %d", res.UncompressedBodyLength)
			}
		})
	}
}

func TestHTTPHeaderRegexp(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Version", "1.2.3")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2; Secure")
		_, _ = io.WriteString(w, "ok")
	}))
	tests := []struct {
		name, yaml, err string
		regex           bool
	}{
		{"matches is bad", "fail_if_header_matches: [{header: X-Version, regexp: '^1\\.'}]", `header "X-Version" matched`, true},
		{"matches other", "fail_if_header_matches: [{header: x-version, regexp: '^2\\.'}]", "", false},
		{"any value matches is bad", "fail_if_header_matches: [{header: Set-Cookie, regexp: 'Secure'}]", `header "Set-Cookie" matched`, true},
		{"not matches is fine", "fail_if_header_not_matches: [{header: X-Version, regexp: '^1\\.'}]", "", false},
		{"any value is enough", "fail_if_header_not_matches: [{header: Set-Cookie, regexp: '^b='}]", "", false},
		{"not matches is bad", "fail_if_header_not_matches: [{header: X-Version, regexp: '^2\\.'}]", "did not match", true},
		{"missing is bad", "fail_if_header_not_matches: [{header: X-Missing, regexp: '.*'}]", `missing required header "X-Missing"`, true},
		{"missing allowed", "fail_if_header_not_matches: [{header: X-Missing, regexp: '.*', allow_missing: true}]", "", false},
		{"missing allowed in matches", "fail_if_header_matches: [{header: X-Missing, regexp: '.*', allow_missing: true}]", "", false},
		{"missing in matches is bad", "fail_if_header_matches: [{header: X-Missing, regexp: '.*'}]", "missing required header", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, srv.URL, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if res.FailedDueToRegex != tc.regex {
				t.Errorf("FailedDueToRegex = %v, want %v", res.FailedDueToRegex, tc.regex)
			}
		})
	}
}

func TestHTTPCEL(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/text" {
			_, _ = io.WriteString(w, "not json")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok","count":3,"items":["a","b"]}`)
	}))
	tests := []struct {
		name, path, yaml, err string
		cel, regex            bool
	}{
		{"not matches is fine", "/", `fail_if_body_json_not_matches_cel: 'body.status == "ok"'`, "", false, false},
		{"not matches is bad", "/", `fail_if_body_json_not_matches_cel: 'body.status == "down"'`, "body did not match CEL expression", true, false},
		{"matches is bad", "/", `fail_if_body_json_matches_cel: 'body.count > 2.0'`, "body matched CEL expression", true, false},
		{"matches list", "/", `fail_if_body_json_matches_cel: 'size(body.items) == 5'`, "", false, false},
		{"not json", "/text", `fail_if_body_json_not_matches_cel: 'body.status == "ok"'`, "body is not JSON", true, false},
		{"missing field", "/", `fail_if_body_json_not_matches_cel: 'body.nope == "x"'`, "evaluating CEL expression", true, false},
		{"with regexp on the same body", "/", "fail_if_body_not_matches_regexp: ['status']\nfail_if_body_json_not_matches_cel: 'body.count == 3.0'", "", false, false},
		{"regexp fails first", "/", "fail_if_body_matches_regexp: ['status']\nfail_if_body_json_not_matches_cel: 'body.count == 3.0'", "body matched regular expression", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, srv.URL+tc.path, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if res.FailedDueToCEL == nil || *res.FailedDueToCEL != tc.cel {
				t.Errorf("FailedDueToCEL = %v, want %v", res.FailedDueToCEL, tc.cel)
			}
			if res.FailedDueToRegex != tc.regex {
				t.Errorf("FailedDueToRegex = %v, want %v", res.FailedDueToRegex, tc.regex)
			}
		})
	}
	t.Run("unset without CEL", func(t *testing.T) {
		if res := httpTestRun(t, srv.URL, httpTestModule(t, "")); res.FailedDueToCEL != nil {
			t.Error("FailedDueToCEL is set without CEL expressions")
		}
	})
}

const httpTestPlainBody = "hello, compressed world! hello, compressed world! hello, compressed world!"

func httpTestCompress(t testing.TB, enc string) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "deflate-zlib":
		w = zlib.NewWriter(&b)
	case "deflate-raw":
		fw, err := flate.NewWriter(&b, flate.DefaultCompression)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	case "br":
		w = brotli.NewWriter(&b)
	default:
		return []byte(httpTestPlainBody)
	}
	if _, err := io.WriteString(w, httpTestPlainBody); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestHTTPCompression(t *testing.T) {
	bodies := map[string][]byte{}
	for _, enc := range []string{"gzip", "deflate-zlib", "deflate-raw", "br", "identity"} {
		bodies[enc] = httpTestCompress(t, enc)
	}
	var acceptEncoding atomic.Value
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acceptEncoding.Store(r.Header.Get("Accept-Encoding"))
		enc := strings.TrimPrefix(r.URL.Path, "/")
		if enc != "identity" {
			w.Header().Set("Content-Encoding", strings.SplitN(enc, "-", 2)[0])
		}
		_, _ = w.Write(bodies[enc])
	}))
	tests := []struct {
		name, path, yaml, err, wantAccept string
	}{
		{"gzip", "/gzip", "compression: gzip", "", "gzip"},
		{"deflate zlib", "/deflate-zlib", "compression: deflate", "", "deflate"},
		{"deflate raw", "/deflate-raw", "compression: deflate", "", "deflate"},
		{"br", "/br", "compression: br", "", "br"},
		{"identity", "/identity", "compression: identity", "", "identity"},
		{"explicit accept header", "/gzip", "compression: gzip\nheaders:\n  Accept-Encoding: 'br;q=1.0, gzip;q=0.9'", "", "br;q=1.0, gzip;q=0.9"},
		{"gzip expected, plain sent", "/identity", "compression: gzip", "Failed to get decompressor", "gzip"},
		{"br expected, gzip sent", "/gzip", "compression: br", "Failed to read HTTP response body", "br"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := tc.yaml + "\nfail_if_body_not_matches_regexp: ['compressed world']"
			res := httpTestRun(t, srv.URL+tc.path, httpTestModule(t, yaml))
			httpTestCheck(t, res, tc.err)
			if got, _ := acceptEncoding.Load().(string); got != tc.wantAccept {
				t.Errorf("Accept-Encoding = %q, want %q", got, tc.wantAccept)
			}
			if tc.err == "" {
				if res.UncompressedBodyLength != int64(len(httpTestPlainBody)) {
					t.Errorf("UncompressedBodyLength = %d, want %d", res.UncompressedBodyLength, len(httpTestPlainBody))
				}
				if res.ContentLength != int64(len(bodies[strings.TrimPrefix(tc.path, "/")])) {
					t.Errorf("ContentLength = %d", res.ContentLength)
				}
			}
		})
	}
}

// httpTestEndless sends a body that never ends, until the client goes away.
func httpTestEndless(w http.ResponseWriter, r *http.Request) {
	chunk := bytes.Repeat([]byte("x"), 16<<10)
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHTTPBodySizeLimit(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			_, _ = io.WriteString(w, strings.Repeat("y", 1000))
			return
		}
		httpTestEndless(w, r)
	}))
	t.Run("endless body stops at the limit", func(t *testing.T) {
		res := httpTestRun(t, srv.URL+"/endless", httpTestModule(t, "body_size_limit: 64KiB"))
		httpTestCheck(t, res, "larger than body_size_limit (65536 bytes)")
		if res.UncompressedBodyLength != 64<<10 {
			t.Errorf("UncompressedBodyLength = %d, want %d", res.UncompressedBodyLength, 64<<10)
		}
	})
	t.Run("endless body with a regexp stops at the limit", func(t *testing.T) {
		res := httpTestRun(t, srv.URL+"/endless", httpTestModule(t, "body_size_limit: 64KiB\nfail_if_body_not_matches_regexp: [x]"))
		httpTestCheck(t, res, "larger than body_size_limit")
	})
	t.Run("body within the limit", func(t *testing.T) {
		res := httpTestRun(t, srv.URL+"/small", httpTestModule(t, "body_size_limit: 1000B"))
		httpTestCheck(t, res, "")
		if res.UncompressedBodyLength != 1000 {
			t.Errorf("UncompressedBodyLength = %d", res.UncompressedBodyLength)
		}
	})
	t.Run("body one byte over the limit", func(t *testing.T) {
		res := httpTestRun(t, srv.URL+"/small", httpTestModule(t, "body_size_limit: 999B"))
		httpTestCheck(t, res, "larger than body_size_limit (999 bytes)")
	})
	t.Run("no limit: regexps never buffer an endless body", func(t *testing.T) {
		old := maxBufferedBody
		maxBufferedBody = 256 << 10
		defer func() { maxBufferedBody = old }()
		res := httpTestRun(t, srv.URL+"/endless", httpTestModule(t, "fail_if_body_matches_regexp: ['never']"))
		httpTestCheck(t, res, "too large to match; set body_size_limit")
	})
	t.Run("no limit: the probe deadline ends the read", func(t *testing.T) {
		res := httpTestRunTimeout(t, 2*time.Second, srv.URL+"/endless", httpTestModule(t, ""))
		httpTestCheck(t, res, "Failed to read HTTP response body")
		if res.UncompressedBodyLength == 0 || res.StatusCode != 200 {
			t.Errorf("UncompressedBodyLength = %d, status %d", res.UncompressedBodyLength, res.StatusCode)
		}
		if res.DurationSeconds > 20 {
			t.Errorf("probe ran %.1fs past its 2s deadline", res.DurationSeconds)
		}
	})
}

func TestHTTPRedirects(t *testing.T) {
	var srvURL string
	mux := http.NewServeMux()
	mux.HandleFunc("/r/2", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/r/1", http.StatusFound) })
	mux.HandleFunc("/r/1", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/final", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "done") })
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/other-host", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(srvURL, "127.0.0.1", "localhost", 1)+"/final", http.StatusFound)
	})
	srv := httpTestServer(t, mux)
	srvURL = srv.URL
	localhost := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	tests := []struct {
		name, path, yaml, err string
		redirects, status     int
		final                 string
	}{
		{"followed", "/r/2", "", "", 2, 200, srv.URL + "/final"},
		{"not followed", "/r/2", "follow_redirects: false", "status code 302", 1, 302, srv.URL + "/r/2"},
		{"no_follow_redirects", "/r/2", "no_follow_redirects: true\nvalid_status_codes: [302]", "", 1, 302, srv.URL + "/r/2"},
		{"loop ends", "/loop", "", "Redirect loop: stopped after 10 redirects", maxRedirects + 1, 302, srv.URL + "/loop"},
		{"other host", "/other-host", "", "", 1, 200, localhost + "/final"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, srv.URL+tc.path, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if res.Redirects != tc.redirects || res.StatusCode != tc.status || res.FinalURL != tc.final {
				t.Errorf("redirects %d status %d final %q, want %d %d %q", res.Redirects, res.StatusCode, res.FinalURL, tc.redirects, tc.status, tc.final)
			}
		})
	}
}

func TestHTTPTargetPolicy(t *testing.T) {
	var hits atomic.Int32
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	}))
	tests := []struct{ name, target string }{
		{"redirect to metadata", srv.URL + "/"},
		{"metadata itself", "http://169.254.169.254/latest/meta-data/"},
		{"link-local v6", "http://[fe80::1]/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var denied atomic.Int32
			policy := NewPolicy(config.DefaultTargetPolicy(), func() { denied.Add(1) })
			start := time.Now()
			res := httpTestRun(t, tc.target, httpTestModule(t, ""), httpTestPolicy(policy))
			httpTestCheck(t, res, "by target_policy: ")
			if !strings.Contains(res.Error, "refused by target_policy") {
				t.Errorf("error %q does not say the target policy refused it", res.Error)
			}
			if denied.Load() != 1 {
				t.Errorf("policy refused %d times, want 1", denied.Load())
			}
			// Refused before connect: no connect timeout to an unreachable address.
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("denied probe took %v", d)
			}
		})
	}
	if hits.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", hits.Load())
	}
	t.Run("deny_hosts on a redirect", func(t *testing.T) {
		redir := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://blocked.test/", http.StatusFound)
		}))
		tp := config.DefaultTargetPolicy()
		tp.DenyHosts = []string{"*.test"}
		res := httpTestRun(t, redir.URL, httpTestModule(t, ""), httpTestPolicy(NewPolicy(tp, nil)))
		httpTestCheck(t, res, "blocked.test matches denied host pattern")
	})
}

func TestHTTPSSLChecks(t *testing.T) {
	valid, _, _ := tlsTestCerts(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	plain := httpTestServer(t, ok)
	secure := httpTestTLSServer(t, valid, false, ok)
	ca := httpTestCA(valid)
	tests := []struct{ name, url, yaml, err string }{
		{"fail_if_ssl on https", secure.URL, ca + "fail_if_ssl: true", "Final request was over SSL"},
		{"fail_if_ssl on http", plain.URL, "fail_if_ssl: true", ""},
		{"fail_if_not_ssl on http", plain.URL, "fail_if_not_ssl: true", "Final request was not over SSL"},
		{"fail_if_not_ssl on https", secure.URL, ca + "fail_if_not_ssl: true", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, tc.url, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if res.SSL != strings.HasPrefix(tc.url, "https") {
				t.Errorf("SSL = %v", res.SSL)
			}
		})
	}
}

func TestHTTPTLS(t *testing.T) {
	valid, _, expired := tlsTestCerts(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	good := httpTestTLSServer(t, valid, false, ok)
	old := httpTestTLSServer(t, expired, false, ok)
	tests := []struct {
		name, url, yaml, err string
		cert                 tlsTestCert
		verified, chain      bool
	}{
		{"trusted", good.URL, httpTestCA(valid), "", valid, true, true},
		{"expired", old.URL, httpTestCA(expired), "certificate has expired", expired, false, false},
		{"untrusted", good.URL, "", "certificate signed by unknown authority", valid, false, false},
		{"insecure_skip_verify", good.URL, "tls_config: {insecure_skip_verify: true}", "", valid, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, tc.url, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if res.TLS == nil {
				t.Fatal("no TLS info")
			}
			if !res.TLS.EarliestCertExpiry.Equal(tc.cert.X509.NotAfter) {
				t.Errorf("EarliestCertExpiry = %v, want %v", res.TLS.EarliestCertExpiry, tc.cert.X509.NotAfter)
			}
			if res.TLS.Verified != tc.verified || res.TLS.LastChainExpiry.IsZero() == tc.chain {
				t.Errorf("verified %v last chain %v (verify error %q)", res.TLS.Verified, res.TLS.LastChainExpiry, res.TLS.VerifyError)
			}
			if res.TLS.ServerName != "127.0.0.1" {
				t.Errorf("ServerName = %q", res.TLS.ServerName)
			}
			if res.SSL != (tc.err == "") {
				t.Errorf("SSL = %v", res.SSL)
			}
			if tc.err == "" && (res.TLS.Version == "" || res.TLS.Cipher == "") {
				t.Errorf("version %q cipher %q", res.TLS.Version, res.TLS.Cipher)
			}
			if res.TLS.Leaf().FingerprintSHA256 == "" {
				t.Error("no leaf fingerprint")
			}
		})
	}
}

func TestHTTPHostname(t *testing.T) {
	_, named, _ := tlsTestCerts(t)
	rec := &httpTestRecorder{}
	srv := httpTestTLSServer(t, named, false, rec)
	ca := httpTestCA(named)
	t.Run("hostname sets Host and server name", func(t *testing.T) {
		res := httpTestRun(t, srv.URL, httpTestModule(t, ca), httpTestHostname("probe.test"))
		httpTestCheck(t, res, "")
		got := rec.get()
		if got.host != "probe.test" || got.sni != "probe.test" {
			t.Errorf("server saw Host %q SNI %q, want probe.test", got.host, got.sni)
		}
		if !res.TLS.Verified || res.TLS.ServerName != "probe.test" {
			t.Errorf("TLS = %+v", res.TLS)
		}
	})
	t.Run("without hostname the name does not match", func(t *testing.T) {
		res := httpTestRun(t, srv.URL, httpTestModule(t, ca))
		httpTestCheck(t, res, "127.0.0.1")
		if res.TLS == nil || res.TLS.Verified || res.TLS.EarliestCertExpiry.IsZero() {
			t.Errorf("TLS = %+v", res.TLS)
		}
	})
	t.Run("Host header sets the server name", func(t *testing.T) {
		res := httpTestRun(t, srv.URL, httpTestModule(t, ca+"headers: {Host: 'probe.test:443'}"))
		httpTestCheck(t, res, "")
	})
	t.Run("conflicting Host header", func(t *testing.T) {
		res := httpTestRun(t, srv.URL, httpTestModule(t, ca+"headers: {host: other.test}"), httpTestHostname("probe.test"))
		httpTestCheck(t, res, "host header defined both in module configuration (other.test) and with URL-parameter 'hostname' (probe.test)")
	})
}

func TestHTTPBasicAuth(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "welcome")
	}))
	tests := []struct{ name, yaml, err string }{
		{"right password", "basic_auth: {username: alice, password: s3cret}", ""},
		{"wrong password", "basic_auth: {username: alice, password: nope}", "status code 401"},
		{"no credentials", "", "status code 401"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			httpTestCheck(t, httpTestRun(t, srv.URL, httpTestModule(t, tc.yaml)), tc.err)
		})
	}
}

func TestHTTPProxy(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	proxy := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.String())
		mu.Unlock()
		if r.URL.Path == "/to-metadata" {
			http.Redirect(w, r, "http://169.254.169.254/latest/", http.StatusFound)
			return
		}
		// The proxy answers itself: no traffic leaves the machine.
		_, _ = io.WriteString(w, "via proxy")
	}))
	seenNow := func() []string {
		mu.Lock()
		defer mu.Unlock()
		s := seen
		seen = nil
		return s
	}
	tests := []struct {
		name, target, yaml, err string
		proxied                 []string
		resolved                bool
	}{
		{"resolved address through proxy", "http://192.0.2.10/x", "proxy_url: " + proxy.URL, "", []string{"http://192.0.2.10/x"}, true},
		{"skip resolve", "http://origin.invalid/x", "proxy_url: " + proxy.URL + "\nskip_resolve_phase_with_proxy: true", "", []string{"http://origin.invalid/x"}, false},
		{"denied target", "http://169.254.169.254/", "proxy_url: " + proxy.URL, "by target_policy: ", nil, true},
		{"denied redirect through proxy", "http://origin.invalid/to-metadata", "proxy_url: " + proxy.URL + "\nskip_resolve_phase_with_proxy: true", "by target_policy: ", []string{"http://origin.invalid/to-metadata"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := httpTestRun(t, tc.target, httpTestModule(t, tc.yaml))
			httpTestCheck(t, res, tc.err)
			if got := seenNow(); fmt.Sprint(got) != fmt.Sprint(tc.proxied) {
				t.Errorf("proxy saw %v, want %v", got, tc.proxied)
			}
			if _, ok := res.PhaseSeconds["resolve"]; ok != tc.resolved || res.Resolved != tc.resolved {
				t.Errorf("resolve phase present=%v resolved=%v, want %v", ok, res.Resolved, tc.resolved)
			}
			if tc.err == "" && res.FinalURL != tc.target {
				t.Errorf("FinalURL = %q, want %q", res.FinalURL, tc.target)
			}
		})
	}
}

func TestHTTPNoProxy(t *testing.T) {
	var proxied atomic.Int32
	proxy := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxied.Add(1)
		_, _ = io.WriteString(w, "via proxy")
	}))
	origin := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "direct")
	}))
	m := httpTestModule(t, "proxy_url: "+proxy.URL+"\nno_proxy: 127.0.0.0/8\nfail_if_body_not_matches_regexp: ['^direct$']")
	httpTestCheck(t, httpTestRun(t, origin.URL, m), "")
	if proxied.Load() != 0 {
		t.Errorf("proxy saw %d requests for a no_proxy target", proxied.Load())
	}
}

func TestHTTPSourceIPAddress(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = io.WriteString(w, "from "+host)
	}))
	t.Run("loopback source", func(t *testing.T) {
		res := httpTestRun(t, srv.URL, httpTestModule(t, "source_ip_address: 127.0.0.1\nfail_if_body_not_matches_regexp: ['from 127\\.0\\.0\\.1']"))
		httpTestCheck(t, res, "")
	})
	t.Run("address not on this host", func(t *testing.T) {
		start := time.Now()
		res := httpTestRun(t, srv.URL, httpTestModule(t, "source_ip_address: 192.0.2.1"))
		httpTestCheck(t, res, "192.0.2.1")
		if !strings.Contains(res.Error, "bind") {
			t.Errorf("error %q does not say the bind failed", res.Error)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("failing bind took %v", time.Since(start))
		}
	})
}

func TestHTTPTimeout(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/trickle" {
			w.WriteHeader(http.StatusOK)
			for r.Context().Err() == nil {
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	}))
	for _, path := range []string{"/slow-headers", "/trickle"} {
		t.Run(path, func(t *testing.T) {
			start := time.Now()
			res := httpTestRunTimeout(t, time.Second, srv.URL+path, httpTestModule(t, ""))
			if res.Success {
				t.Fatal("slow server probe succeeded")
			}
			if !strings.Contains(res.Error, "probe timeout") && !strings.Contains(res.Error, "deadline exceeded") {
				t.Errorf("error %q does not say the probe timed out", res.Error)
			}
			// Well inside the slow server's minute; generous for slow CI.
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("probe with a 1s timeout took %v", d)
			}
		})
	}
}

func TestHTTPTargetForms(t *testing.T) {
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
		_, _ = io.WriteString(w, "ok")
	}))
	hostport := strings.TrimPrefix(srv.URL, "http://")
	t.Run("no scheme means http", func(t *testing.T) {
		res := httpTestRun(t, hostport+"/path", httpTestModule(t, ""))
		httpTestCheck(t, res, "")
		if res.URL != srv.URL+"/path" || res.FinalURL != srv.URL+"/path" {
			t.Errorf("URL %q final %q", res.URL, res.FinalURL)
		}
		if want := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC); !res.LastModified.Equal(want) {
			t.Errorf("LastModified = %v", res.LastModified)
		}
	})
	t.Run("password not shown", func(t *testing.T) {
		res := httpTestRun(t, "http://user:hunter2@"+hostport+"/", httpTestModule(t, ""))
		httpTestCheck(t, res, "")
		if strings.Contains(res.URL+res.FinalURL, "hunter2") {
			t.Errorf("URL %q final %q show the password", res.URL, res.FinalURL)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		httpTestCheck(t, httpTestRun(t, "http://[::1", httpTestModule(t, "")), "Could not parse target URL")
	})
	t.Run("no host", func(t *testing.T) {
		httpTestCheck(t, httpTestRun(t, "http:///path", httpTestModule(t, "")), "Could not parse target URL")
	})
	t.Run("name resolves", func(t *testing.T) {
		res := httpTestRun(t, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1), httpTestModule(t, "preferred_ip_protocol: ip4"))
		httpTestCheck(t, res, "")
		if !res.Resolved || res.IPProtocol != 4 || res.IPAddr != "127.0.0.1" {
			t.Errorf("resolved %v protocol %d addr %q", res.Resolved, res.IPProtocol, res.IPAddr)
		}
	})
	t.Run("no policy", func(t *testing.T) {
		httpTestCheck(t, httpTestRun(t, srv.URL, httpTestModule(t, ""), httpTestPolicy(nil)), "")
	})
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		res := httpTestRun(t, "http://"+addr, httpTestModule(t, ""))
		httpTestCheck(t, res, "connection refused")
		if res.StatusCode != 0 || res.TLS != nil {
			t.Errorf("status %d tls %v", res.StatusCode, res.TLS)
		}
		if res.Cause != "connect: connection refused" {
			t.Errorf("cause %q of error %q, want what the diagnosis shows", res.Cause, res.Error)
		}
	})
}

func TestHTTPPhases(t *testing.T) {
	valid, _, _ := tlsTestCerts(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	secure := httpTestTLSServer(t, valid, true, ok)
	res := httpTestRun(t, secure.URL, httpTestModule(t, httpTestCA(valid)))
	httpTestCheck(t, res, "")
	for _, phase := range HTTPPhases {
		v, ok := res.PhaseSeconds[phase]
		if !ok || v < 0 {
			t.Errorf("phase %s = %v (present %v)", phase, v, ok)
		}
	}
	if res.PhaseSeconds["tls"] <= 0 || res.PhaseSeconds["connect"] <= 0 {
		t.Errorf("phases = %v", res.PhaseSeconds)
	}
	var sum float64
	for _, v := range res.PhaseSeconds {
		sum += v
	}
	if sum > res.DurationSeconds {
		t.Errorf("phases sum to %v, more than the probe's %v", sum, res.DurationSeconds)
	}

	t.Run("resolve failure shows only resolve", func(t *testing.T) {
		probeTestResolver(t, nil) // name.invalid: NXDOMAIN
		res := httpTestRun(t, "http://name.invalid/", httpTestModule(t, ""))
		httpTestCheck(t, res, "Error resolving address")
		if _, ok := res.PhaseSeconds["resolve"]; !ok || len(res.PhaseSeconds) != 1 {
			t.Errorf("phases = %v", res.PhaseSeconds)
		}
	})
}

func TestHTTPResultJSON(t *testing.T) {
	valid, _, _ := tlsTestCerts(t)
	srv := httpTestTLSServer(t, valid, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/home", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "home")
	}))
	res := httpTestRun(t, srv.URL, httpTestModule(t, httpTestCA(valid)))
	httpTestCheck(t, res, "")
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"prober", "target", "success", "duration_seconds", "final_url", "status_code", "redirects", "phase_seconds", "tls", "ssl"} {
		if _, ok := got[key]; !ok {
			t.Errorf("JSON has no %q: %s", key, b)
		}
	}
	if got["final_url"] != srv.URL+"/home" {
		t.Errorf("final_url = %v", got["final_url"])
	}
	tlsJSON, _ := got["tls"].(map[string]any)
	if tlsJSON["earliest_cert_expiry"] == nil || tlsJSON["verified"] != true {
		t.Errorf("tls = %v", tlsJSON)
	}
}
