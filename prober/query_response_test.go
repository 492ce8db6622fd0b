package prober

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// sslRequest is PostgreSQL's SSLRequest: length 8, code 80877103.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// postgresTestServer answers an SSLRequest as a PostgreSQL server since the
// CVE-2021-23214 fix does: it reads the 8 bytes, and hangs up if anything
// else came with them (blackbox_exporter's "\n" after a binary send);
// otherwise it answers answer ('S' or 'N') and, after an 'S', does the TLS
// handshake. got receives the bytes that preceded the handshake.
func postgresTestServer(t *testing.T, answer byte, cert tlsTestCert, got chan<- []byte) func(net.Conn) {
	t.Helper()
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		req := make([]byte, len(sslRequest))
		if _, err := io.ReadFull(r, req); err != nil {
			return
		}
		// Wait for a stray byte to arrive rather than race it.
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		extra, _ := r.Peek(1)
		_ = c.SetReadDeadline(time.Time{})
		got <- append(req, extra...)
		if !bytes.Equal(req, sslRequest) || len(extra) > 0 {
			fmt.Fprint(c, "EFATAL: received unencrypted data after SSL request\x00")
			return
		}
		_, _ = c.Write([]byte{answer})
		if answer != 'S' {
			return
		}
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
		if tc.Handshake() == nil {
			tcpTestDrain(tc)
		}
	}
}

// The PostgreSQL module of blackbox's blackbox.yml, against a strict
// responder: the binary send goes out as its 8 bytes, without a newline.
func TestTCPExpectBytesPostgres(t *testing.T) {
	valid, _, _ := tlsTestCerts(t)
	module := tcpTestModule(t, httpTestDedent(`
		query_response:
		  - send: !!binary AAAACATSFi8=
		  - expect_bytes: S
		    starttls: true
		`)+"\n"+httpTestCA(valid))
	t.Run("ssl accepted", func(t *testing.T) {
		got := make(chan []byte, 1)
		addr := tcpTestServer(t, postgresTestServer(t, 'S', valid, got))
		res := tcpTestRun(t, httpTestTimeout, addr, module)
		tcpTestCheck(t, res, "")
		if b := <-got; !bytes.Equal(b, sslRequest) {
			t.Errorf("server received % x, want % x", b, sslRequest)
		}
		if res.TLS == nil || !res.TLS.Verified || res.FailedDueToBytes || res.FailedDueToRegex {
			t.Errorf("TLS %+v, failed due to bytes %v, regex %v", res.TLS, res.FailedDueToBytes, res.FailedDueToRegex)
		}
	})
	t.Run("ssl refused", func(t *testing.T) {
		got := make(chan []byte, 1)
		addr := tcpTestServer(t, postgresTestServer(t, 'N', valid, got))
		res := tcpTestRun(t, httpTestTimeout, addr, module)
		tcpTestCheck(t, res, `Bytes did not match: got "N", want "S"`)
		<-got
		if !res.FailedDueToBytes || res.FailedDueToRegex || res.TLS != nil {
			t.Errorf("failed due to bytes %v, regex %v, TLS %+v", res.FailedDueToBytes, res.FailedDueToRegex, res.TLS)
		}
	})
}

func TestTCPExpectBytes(t *testing.T) {
	// Each server writes its parts with a pause between them, so they
	// arrive as separate segments, then reads what the client sends.
	serve := func(parts ...string) (string, chan string) {
		got := make(chan string, 1)
		return tcpTestServer(t, func(c net.Conn) {
			for i, p := range parts {
				if i > 0 {
					time.Sleep(100 * time.Millisecond)
				}
				_, _ = io.WriteString(c, p)
			}
			if cw, ok := c.(*net.TCPConn); ok {
				_ = cw.CloseWrite()
			}
			b, _ := io.ReadAll(c)
			got <- string(b)
		}), got
	}
	tests := []struct {
		name, yaml, err string
		parts           []string
		bytes, regex    bool
		sent            string
	}{
		// blackbox_exporter reads once from the socket and loses these.
		{"after a line, in the same segment", `
			query_response:
			  - expect: '^PONG (.*)$'
			  - expect_bytes: !!binary AAE=
			`, "", []string{"PONG 1.2.3\n\x00\x01"}, false, false, ""},
		{"split over segments", "query_response: [{expect_bytes: ABCD}]", "", []string{"AB", "CD"}, false, false, ""},
		{"mismatch", "query_response: [{expect_bytes: ABCD}]", `Bytes did not match: got "ABXD", want "ABCD"`, []string{"ABXD"}, true, false, ""},
		{"mismatch before the rest came", "query_response: [{expect_bytes: ABCD}]", `Bytes did not match: got "X", want "ABCD"`, []string{"X"}, true, false, ""},
		{"closed before all came", "query_response: [{expect_bytes: ABCD}]", "after 2 of the 4 expected bytes: unexpected EOF", []string{"AB"}, false, false, ""},
		{"binary send is not expanded and gets no newline", `
			query_response:
			  - expect: '^HELLO (.*)$'
			    send: !!binary JDEK
			`, "", []string{"HELLO x\n"}, false, false, "$1\n"},
		{"text send is expanded and gets a newline", `
			query_response:
			  - expect: '^HELLO (.*)$'
			    send: 'hi ${1}'
			`, "", []string{"HELLO x\n"}, false, false, "hi x\n"},
		{"regexp fails, not bytes", "query_response: [{expect: '^NO'}, {expect_bytes: A}]", `Regexp "^NO" did not match`, []string{"YES\nA"}, false, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := serve(tc.parts...)
			res := tcpTestRun(t, httpTestTimeout, addr, tcpTestModule(t, tc.yaml))
			tcpTestCheck(t, res, tc.err)
			if res.FailedDueToBytes != tc.bytes || res.FailedDueToRegex != tc.regex {
				t.Errorf("failed due to bytes %v, regex %v; want %v, %v", res.FailedDueToBytes, res.FailedDueToRegex, tc.bytes, tc.regex)
			}
			if sent := <-got; sent != tc.sent {
				t.Errorf("server received %q, want %q", sent, tc.sent)
			}
		})
	}
}

// A line longer than 64 KiB fails the step, as blackbox's scanner does,
// instead of being buffered without bound.
func TestTCPExpectLongLine(t *testing.T) {
	addr := tcpTestServer(t, func(c net.Conn) {
		_, _ = c.Write(bytes.Repeat([]byte("a"), 70000))
		_, _ = io.WriteString(c, "\nOK\n")
		tcpTestDrain(c)
	})
	res := tcpTestRun(t, httpTestTimeout, addr, tcpTestModule(t, "query_response: [{expect: '^OK$'}]"))
	tcpTestCheck(t, res, "line longer than 64 KiB")
}

func TestReadLine(t *testing.T) {
	r := bufio.NewReaderSize(bytes.NewReader([]byte("one\r\ntwo\n\nlast")), 16)
	for _, want := range []string{"one", "two", "", "last"} {
		line, err := readLine(r)
		if err != nil || string(line) != want {
			t.Fatalf("readLine = %q, %v; want %q", line, err, want)
		}
	}
	if _, err := readLine(r); err != io.EOF {
		t.Fatalf("after the last line: %v, want EOF", err)
	}
	long := bytes.Repeat([]byte("x"), maxLine)
	r = bufio.NewReaderSize(bytes.NewReader(append(append([]byte{}, long...), "\r\nnext\n"...)), 16)
	if line, err := readLine(r); err != nil || len(line) != maxLine {
		t.Fatalf("a line of exactly 64 KiB: %d bytes, %v", len(line), err)
	}
	if line, err := readLine(r); err != nil || string(line) != "next" {
		t.Fatalf("after a long line: %q, %v", line, err)
	}
}
