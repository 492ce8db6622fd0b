package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readUntilClosed reads c until the server closes it and returns how long
// that took from start; it fails the test if the connection is still open
// after limit.
func readUntilClosed(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s", limit)
	}
	if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v", err)
	}
	return time.Since(start)
}

// An idle keep-alive connection is closed after --web.idle-timeout, and a
// client that never finishes its headers after --web.read-header-timeout
// (the issue: 248 idle connections made the next scrape fail with EMFILE).
func TestServeClosesIdleAndSlowConnections(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(path, []byte("modules:\n  m:\n    prober: tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := startServer(t, "--config.file="+path, "--web.idle-timeout=1s", "--web.read-header-timeout=1s")
	addr := strings.TrimPrefix(url, "http://")

	// Idle: one request with keep-alive, then nothing.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.Close {
		t.Fatal("the server did not keep the connection alive at all")
	}
	idle := time.Now()
	_ = c.SetReadDeadline(idle.Add(10 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent more than one response")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the idle connection was still open after 10 s with --web.idle-timeout=1s")
	}
	if d := time.Since(idle); d < 900*time.Millisecond {
		t.Errorf("idle connection closed after %s, before the 1 s timeout", d)
	} else {
		t.Logf("idle connection closed after %s", d.Round(time.Millisecond))
	}

	// Slow: half a request line, then nothing.
	s, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := s.Write([]byte("GET /-/healthy HTTP/1.1\r\nHost: ")); err != nil {
		t.Fatal(err)
	}
	d := readUntilClosed(t, s, start, 10*time.Second)
	t.Logf("slow client cut off after %s", d.Round(time.Millisecond))
}

// The flags reject what is not a duration or a size.
func TestServeLimitFlags(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"--web.idle-timeout=soon", `--web.idle-timeout: "soon" is not a duration`},
		{"--web.read-header-timeout=-1s", `--web.read-header-timeout: "-1s" is not a duration`},
		{"--probes.memory-budget=lots", `--probes.memory-budget: "lots" is not a positive size`},
	} {
		code, out := runBinary(t, tc.arg, "--config.check")
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, output %q; want exit 2 naming %s", tc.arg, code, out, tc.want)
		}
	}
}
