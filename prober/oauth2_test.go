package prober

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// The oauth2 token request, from the http and websocket probers alike:
// bounded by the probe's timeout, checked by the target policy through a
// proxy, with isp-checker's User-Agent, and no connection left open.

// A token endpoint that accepts the connection and never answers: the probe
// must still end at its timeout (1s here).
func TestOAuth2TokenHangOutlivesTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	released := false
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if released {
				_ = c.Close()
			} else {
				conns = append(conns, c)
			}
			mu.Unlock()
		}
	}()
	release := func() {
		mu.Lock()
		released = true
		for _, c := range conns {
			_ = c.Close()
		}
		conns = nil
		mu.Unlock()
	}
	t.Cleanup(func() { release(); _ = ln.Close() })
	_, base := websocketTestStart(t, nil)
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	oauth := fmt.Sprintf("oauth2: {client_id: probe, client_secret: s3cret, token_url: 'http://%s/token'}", ln.Addr())
	for _, c := range []struct{ prober, target string }{
		{"websocket", base + "/hello"},
		{"http", srv.URL + "/"},
	} {
		t.Run(c.prober, func(t *testing.T) {
			m := probeTestModule(t, c.prober, time.Second, oauthTestOpts(c.prober, oauth))
			done := make(chan time.Duration, 1)
			go func() {
				start := time.Now()
				// The probe's deadline, 1 s away, as the /probe handler sets it.
				if c.prober == "websocket" {
					websocketTestRun(t, time.Second, c.target, m)
				} else {
					httpTestRunTimeout(t, time.Second, c.target, m)
				}
				done <- time.Since(start)
			}()
			select {
			case d := <-done:
				if d > 3*time.Second {
					t.Errorf("%s probe with a 1s timeout took %v", c.prober, d)
				}
			case <-time.After(6 * time.Second):
				// Closing the listener's conns lets the goroutine end.
				t.Errorf("%s probe with a 1s timeout still running after 6s (token request not bound by the probe's context)", c.prober)
				release()
				t.Logf("after the token endpoint closed its connections, the probe returned %v after its start", <-done)
				mu.Lock()
				released = false
				mu.Unlock()
			}
		})
	}
}

// tokenServer answers a token and records what it saw.
type tokenServer struct {
	mu   sync.Mutex
	uas  []string
	urls []string
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.uas = append(s.uas, r.UserAgent())
	s.urls = append(s.urls, r.URL.String())
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"tok-42","token_type":"Bearer","expires_in":3600}`)
}

// oauth2.proxy_url: the token URL's host is checked against the target
// policy before the proxy is asked for it (the dial only sees the proxy's
// address). The "proxy" here is a loopback server that answers itself:
// nothing leaves.
func TestOAuth2ProxyBypassesPolicy(t *testing.T) {
	ts := &tokenServer{}
	proxy := httpTestServer(t, ts)
	_, base := websocketTestStart(t, nil)
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	oauth := fmt.Sprintf("oauth2: {client_id: probe, client_secret: s3cret, token_url: 'http://169.254.169.254/token', proxy_url: '%s'}", proxy.URL)
	for _, c := range []struct{ prober, target string }{
		{"websocket", base + "/hello"},
		{"http", srv.URL + "/"},
	} {
		t.Run(c.prober, func(t *testing.T) {
			m := probeTestModule(t, c.prober, 5*time.Second, oauthTestOpts(c.prober, oauth))
			var errText string
			if c.prober == "websocket" {
				r := websocketTestRun(t, 10*time.Second, c.target, m)
				errText = r.Error + " " + r.Cause
			} else {
				r := httpTestRunTimeout(t, 10*time.Second, c.target, m)
				errText = r.Error + " " + r.Cause
			}
			ts.mu.Lock()
			urls := ts.urls
			ts.urls = nil
			ts.mu.Unlock()
			if len(urls) > 0 {
				t.Errorf("%s: the token request for a denied network went out through the proxy: %q (probe error %q)", c.prober, urls, errText)
			}
			if !strings.Contains(errText, "denied") {
				t.Errorf("%s: probe error %q, want the policy's denial", c.prober, errText)
			}
		})
	}
}

// The token request's User-Agent is isp-checker's, from the http prober
// and the websocket prober alike.
func TestOAuth2TokenUserAgent(t *testing.T) {
	ts := &tokenServer{}
	token := httpTestServer(t, ts)
	_, base := websocketTestStart(t, nil)
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	opts := func(p string) string {
		return oauthTestOpts(p, fmt.Sprintf("oauth2: {client_id: probe, client_secret: s3cret, token_url: '%s/token'}", token.URL))
	}
	got := map[string]string{}
	for _, c := range []struct{ prober, target string }{
		{"http", srv.URL + "/"},
		{"websocket", base + "/hello"},
	} {
		m := probeTestModule(t, c.prober, 5*time.Second, opts(c.prober))
		if c.prober == "websocket" {
			probeTestCheck(t, websocketTestRun(t, 10*time.Second, c.target, m), "")
		} else {
			probeTestCheck(t, httpTestRunTimeout(t, 10*time.Second, c.target, m), "")
		}
		ts.mu.Lock()
		if len(ts.uas) != 1 {
			t.Fatalf("%s: %d token requests", c.prober, len(ts.uas))
		}
		got[c.prober] = ts.uas[0]
		ts.uas = nil
		ts.mu.Unlock()
	}
	if got["http"] != got["websocket"] || !strings.HasPrefix(got["http"], "isp-checker") {
		t.Errorf("token request User-Agent: http prober %q, websocket prober %q", got["http"], got["websocket"])
	}
}

// After a probe, no connection to the token endpoint is left open (the
// http prober disables keep-alives; its transports are closed).
func TestOAuth2TokenConnLeft(t *testing.T) {
	ts := &tokenServer{}
	token := httptest.NewUnstartedServer(ts)
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	token.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
	}
	token.Start()
	t.Cleanup(token.Close)
	_, base := websocketTestStart(t, nil)
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	oauth := fmt.Sprintf("oauth2: {client_id: probe, client_secret: s3cret, token_url: '%s/token'}", token.URL)
	for _, c := range []struct{ prober, target string }{
		{"http", srv.URL + "/"},
		{"websocket", base + "/hello"},
	} {
		t.Run(c.prober, func(t *testing.T) {
			m := probeTestModule(t, c.prober, 5*time.Second, oauthTestOpts(c.prober, oauth))
			if c.prober == "websocket" {
				probeTestCheck(t, websocketTestRun(t, 10*time.Second, c.target, m), "")
			} else {
				probeTestCheck(t, httpTestRunTimeout(t, 10*time.Second, c.target, m), "")
			}
			time.Sleep(500 * time.Millisecond)
			mu.Lock()
			n := len(open)
			mu.Unlock()
			if n != 0 {
				t.Errorf("%s: %d connection(s) to the token endpoint still open 0.5s after the probe", c.prober, n)
			}
		})
	}
}

// oauthTestOpts puts http client options where prober wants them: inline for
// http, under http_config for websocket.
func oauthTestOpts(prober, opts string) string {
	if prober == "websocket" {
		return "http_config: {" + opts + "}"
	}
	return opts
}
