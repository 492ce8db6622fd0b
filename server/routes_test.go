package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/speedtest"
)

// newPrefixedServer is newTestServer's exporter, with the speed-test
// endpoints, under a route prefix.
func newPrefixedServer(t *testing.T, prefix string, external *url.URL) *httptest.Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	holder := config.NewHolder(path, reg)
	if err := holder.Reload(); err != nil {
		t.Fatal(err)
	}
	holder.Set(withTestModules(t, testConfig))
	st := speedtest.New(speedtest.Options{MaxBytes: 1 << 20, RoutePrefix: prefix})
	s := httptest.NewServer(NewMux(Options{
		Probe:       ProbeOptions{Config: holder, Probers: testProbers(), Metrics: NewSelfMetrics(reg), History: NewHistory(10)},
		Gatherer:    reg,
		Reload:      holder.Reload,
		Extra:       st.Routes(),
		RoutePrefix: prefix,
		ExternalURL: external,
	}))
	t.Cleanup(s.Close)
	return s
}

var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func status(t *testing.T, method, url string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestRoutePrefix: under --web.route-prefix every endpoint answers under
// the prefix and nowhere else; the root redirects to the prefix (or the
// external URL), the prefix without its slash to the landing page.
func TestRoutePrefix(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		external     *url.URL
		home         string
	}{
		{"route prefix", "/isp/checker/", nil, "/isp/checker/"},
		{"external URL", "/bb/", &url.URL{Scheme: "http", Host: "127.0.0.1:9", Path: "/bb"}, "http://127.0.0.1:9/bb/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			releaseBlocked(t)
			s := newPrefixedServer(t, tc.prefix, tc.external)
			base := s.URL + tc.prefix
			paths := []struct {
				method, path string
				code         int
			}{
				{"GET", "", 200}, // the landing page
				{"GET", "probe?module=echo&target=a.test", 200},
				{"GET", "metrics", 200},
				{"POST", "-/reload", 200},
				{"GET", "-/healthy", 200},
				{"GET", "-/ready", 200},
				{"GET", "config", 200},
				{"GET", "logs?id=0", 200},
				{"GET", "logs?target=a.test", 200},
				{"GET", "speedtest/download?bytes=10", 200},
				{"GET", ".well-known/nq", 200},
				{"GET", "speedtest/rpm/small", 200},
			}
			for _, p := range paths {
				if code, _ := status(t, p.method, base+p.path); code != p.code {
					t.Errorf("%s %s: %d, want %d", p.method, base+p.path, code, p.code)
				}
				if p.path == "" {
					continue
				}
				if code, _ := status(t, p.method, s.URL+"/"+p.path); code != http.StatusNotFound {
					t.Errorf("%s /%s without the prefix: %d, want 404", p.method, p.path, code)
				}
			}
			if code, h := status(t, "GET", s.URL+"/"); code != http.StatusFound || h.Get("Location") != tc.home {
				t.Errorf("GET /: %d to %q, want 302 to %q", code, h.Get("Location"), tc.home)
			}
			if code, h := status(t, "GET", strings.TrimSuffix(base, "/")); code/100 != 3 || h.Get("Location") != tc.prefix {
				t.Errorf("GET %s: %d to %q, want a redirect to %q", strings.TrimSuffix(base, "/"), code, h.Get("Location"), tc.prefix)
			}

			// The responsiveness configuration names URLs under the prefix.
			_, body := get(t, base+".well-known/nq", nil)
			var doc struct {
				URLs map[string]string `json:"urls"`
			}
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf(".well-known/nq: %v: %s", err, body)
			}
			if small := doc.URLs["small_download_url"]; small != base+"speedtest/rpm/small" {
				t.Errorf(".well-known/nq names %q, want %q", small, base+"speedtest/rpm/small")
			}
		})
	}
}

// TestLandingPageLinks: every link and form on the landing page is
// relative and leads to a page that is served, at the root and under a
// prefix.
func TestLandingPageLinks(t *testing.T) {
	for _, prefix := range []string{"/", "/isp/"} {
		t.Run(prefix, func(t *testing.T) {
			s := newPrefixedServer(t, prefix, nil)
			base := s.URL + prefix
			if code, _ := get(t, base+"probe?module=echo&target=a.test", nil); code != 200 {
				t.Fatalf("probe: %d", code) // so the page lists a probe and its logs
			}
			code, page := get(t, base, nil)
			if code != 200 {
				t.Fatalf("landing page: %d", code)
			}
			links := regexp.MustCompile(`(?:href|action)="([^"]+)"`).FindAllStringSubmatch(page, -1)
			var logs bool
			for _, m := range links {
				ref, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
				if err != nil {
					t.Fatal(err)
				}
				if ref.IsAbs() {
					continue // a link to elsewhere (the project's home)
				}
				if strings.HasPrefix(ref.Path, "/") {
					t.Errorf("link %q is not relative: it would miss a proxy's path", m[1])
				}
				u, _ := url.Parse(base)
				u = u.ResolveReference(ref)
				if !strings.HasPrefix(u.Path, prefix) {
					t.Errorf("link %q leads to %s, outside %s", m[1], u.Path, prefix)
				}
				logs = logs || strings.HasSuffix(u.Path, "/logs")
				want := 200
				if strings.HasSuffix(u.Path, "/probe") && u.RawQuery == "" {
					want = 400 // the form's action, without its fields: "Target parameter is missing"
				}
				if code, _ := status(t, "GET", u.String()); code != want {
					t.Errorf("link %q (%s): %d, want %d", m[1], u, code, want)
				}
			}
			if len(links) < 4 || !logs {
				t.Errorf("landing page has %d links (logs among them: %v):\n%s", len(links), logs, page)
			}
		})
	}
}

func TestParseRoutePrefix(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/": "/", "bb": "/bb/", "/bb": "/bb/", "/bb/": "/bb/", "//a/b//": "/a/b/", "/x-1.2~_/@:": "/x-1.2~_/@:/"} {
		if got, err := ParseRoutePrefix(in); got != want || err != nil {
			t.Errorf("ParseRoutePrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"/{x}": `'{' cannot be in it`, "/a b": `' ' cannot be in it`, "/a?x": `'?' cannot be in it`, "/a#b": `'#' cannot be in it`,
		"/a%2Fb": `'%' cannot be in it`, "/a/../b": "without empty, . or .. segments", "/a//b": "without empty",
	} {
		if _, err := ParseRoutePrefix(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRoutePrefix(%q): %v, want an error with %q", in, err, want)
		}
	}
}

func TestParseExternalURL(t *testing.T) {
	for in, want := range map[string]string{"http://h:9115/bb/": "http://h:9115/bb", "https://h": "https://h", "/bb/": "/bb"} {
		if u, err := ParseExternalURL(in); err != nil || u.String() != want {
			t.Errorf("ParseExternalURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for in, want := range map[string]string{
		`"http://h/"`: "remove the quotes", "probes.example.net/bb": "want http:// or https:// and a host",
		"ftp://h/": "want http:// or https://", "http:///bb": "and a host", "http://h:x/": "invalid port",
	} {
		if _, err := ParseExternalURL(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseExternalURL(%q): %v, want an error with %q", in, err, want)
		}
	}
}
