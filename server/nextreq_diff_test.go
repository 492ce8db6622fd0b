package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The bytes of a next request on an idle connection get the same answers
// from a Parker that reads them itself as from one that hands every one to
// net/http: the same statuses and bodies, in the same order, and the
// connection closed or kept alike.
func TestNextRequestSameAsNetHTTP(t *testing.T) {
	needRawICMP(t)
	const (
		probe = "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n"
		nope  = "GET /probe?module=nope HTTP/1.1\r\nHost: x\r\n\r\n"
		lf    = "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.1\nHost: x\n\n"
	)
	// smuggled is a GET whose body is a request's bytes: net/http reads
	// (and drops) them as its body.
	smuggled := "GET /probe?module=smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	withBody := fmt.Sprintf("GET /probe?module=nope HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(smuggled), smuggled)
	// What the Parker serves itself: these cases test its answers.
	fast := map[string]bool{"a probe": true, "an unknown module": true, "pipelined": true, "HTTP/1.0 keep-alive": true}
	for _, c := range []struct{ name, next string }{
		{"a probe", probe},
		{"an unknown module", nope},
		{"pipelined", probe + nope + probe},
		{"Connection: close", strings.Replace(probe, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)},
		{"Connection: close, second line", strings.Replace(probe, "\r\n\r\n", "\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", 1)},
		{"HTTP/1.0", "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.0\r\n\r\n"},
		{"HTTP/1.0 keep-alive", "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + nope},
		{"HTTP/1.0 chunked", "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + nope},
		{"HTTP/1.0 keep-alive, second line", "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.0\r\nConnection: foo\r\nConnection: keep-alive\r\n\r\n" + nope},
		{"HTTP/1.2", strings.Replace(probe, "HTTP/1.1", "HTTP/1.2", 1)},
		{"HTTP/2.0", strings.Replace(probe, "HTTP/1.1", "HTTP/2.0", 1)},
		{"no Host", "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.1\r\n\r\n"},
		{"empty Host", strings.Replace(probe, "Host: x", "Host: ", 1)},
		{"two Hosts", strings.Replace(probe, "Host: x", "Host: x\r\nHost: y", 1)},
		{"bad Host", strings.Replace(probe, "Host: x", "Host: x y", 1)},
		{"NUL in a value", strings.Replace(probe, "Host: x", "Host: x\r\nX-A: a\x00b", 1)},
		{"NUL in the target", strings.Replace(probe, "127.0.0.1", "127.0.0.1\x00", 1)},
		{"obs-fold", strings.Replace(probe, "Host: x", "Host: x\r\nX-A: a\r\n b", 1)},
		{"space before colon", strings.Replace(probe, "Host: x", "Host: x\r\nX-A : b", 1)},
		{"leading CRLF", "\r\n" + probe},
		{"bare LF", lf},
		{"bare LF, then a request", lf + nope},
		{"bare LF, then a GET with a body", lf + withBody},
		{"mixed line ends", "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.1\r\nHost: x\n\r\n" + nope},
		{"a GET with a body", withBody},
		{"Content-Length: 0", strings.Replace(probe, "Host: x", "Host: x\r\nContent-Length: 0", 1)},
		{"chunked", strings.Replace(probe, "Host: x", "Host: x\r\nTransfer-Encoding: chunked", 1) + "0\r\n\r\n" + nope},
		{"chunked and Content-Length", strings.Replace(probe, "Host: x", "Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5", 1) + "0\r\n\r\n"},
		{"Expect", strings.Replace(probe, "Host: x", "Host: x\r\nExpect: 100-continue", 1)},
		{"absolute URI", "GET http://x/probe?module=ping1&target=127.0.0.1 HTTP/1.1\r\nHost: y\r\n\r\n"},
		{"asterisk", "GET * HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"lower-case method", "get" + strings.TrimPrefix(probe, "GET")},
		{"HEAD", "HEAD" + strings.TrimPrefix(probe, "GET")},
		{"debug", strings.Replace(probe, "target=", "debug=false&target=", 1)},
		{"a head over MaxHeaderBytes", strings.Replace(probe, "Host: x", "Host: x\r\nX-A: "+strings.Repeat("a", 3000), 1)},
		{"a head past one read", strings.Replace(probe, "Host: x", "Host: x\r\nX-A: "+strings.Repeat("a", 5000), 1)},
		{"a head net/http finds too large", strings.Replace(probe, "Host: x", "Host: x\r\nX-A: "+strings.Repeat("a", 7000), 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Both at once: each waits out a silence to see the
			// connection is still open.
			var want string
			done := make(chan struct{})
			go func() {
				defer close(done)
				want, _ = nextAnswers(t, false, c.next)
			}()
			got, read := nextAnswers(t, true, c.next)
			<-done
			t.Logf("read by the Parker: %d; %s", read, got)
			if fast[c.name] && read == 0 {
				t.Error("the Parker read no request itself")
			}
			if got != want {
				t.Errorf("%q:\nthe Parker reading: %s\nnet/http:           %s", c.next, got, want)
			}
		})
	}
}

var probeSuccess = regexp.MustCompile(`(?m)^probe_success \S+$`)

// nextAnswers serves one connection with a Parker that reads its next
// requests itself (readNext) or not: a first probe, served by net/http and
// parked; then, once the connection is idle, next. It returns the answers
// to next, and whether the connection was closed after them.
func nextAnswers(t *testing.T, readNext bool, next string) (string, uint64) {
	t.Helper()
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 2000}
	p := NewParker(srv, nil)
	LimitAdmission(srv, 8, AdmissionHold)
	if readNext {
		p.ReadRequests()
	}
	h := loadedProbeHandler(t, parkConfig, ProbeOptions{Parker: p})
	srv.Handler = h
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Error(err)
		return "", 0
	}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		_ = srv.Close()
		_ = p.Shutdown(t.Context())
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Error(err)
		return "", 0
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Error(err)
		return "", 0
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("first probe: %v %v", resp, err)
		return "", 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	for start := time.Now(); p.idle.count() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Error("after 5s the connection is not idle")
			return "", 0
		}
	}
	if _, err := io.WriteString(conn, next); err != nil {
		t.Error(err)
		return "", 0
	}
	var out []string
	for {
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		resp, err := http.ReadResponse(r, nil)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return strings.Join(append(out, "open"), "; "), p.readTotal.Load()
		}
		if err != nil {
			return strings.Join(append(out, "closed"), "; "), p.readTotal.Load()
		}
		body, _ := io.ReadAll(resp.Body)
		s := string(body)
		if m := probeSuccess.FindString(s); resp.StatusCode == 200 && m != "" {
			s = m
		}
		out = append(out, fmt.Sprintf("%d %q", resp.StatusCode, clip(s, 80)))
	}
}
