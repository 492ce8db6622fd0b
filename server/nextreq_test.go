package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The request heads the Parker may serve itself are the plain GETs net/http
// would serve the same way; every other goes to net/http, whose checks and
// errors are its own.
func TestNextRequestRead(t *testing.T) {
	const probe = "GET /probe?module=ping1&target=127.0.0.1 HTTP/1.1\r\nHost: localhost:9115\r\nAccept: text/plain\r\n\r\n"
	for _, c := range []struct {
		name, head string
		taken      bool
		rest       string
	}{
		{"a scrape", probe, true, ""},
		{"pipelined", probe + "GET /probe", true, "GET /probe"},
		{"HTTP/1.0 without Host", "GET /probe?target=127.0.0.1 HTTP/1.0\r\n\r\n", true, ""},
		{"incomplete head", strings.TrimSuffix(probe, "\r\n"), false, ""},
		{"bare LF head, then a request", "GET /probe HTTP/1.1\nHost: a\n\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n", false, ""},
		{"no Host", "GET /probe?target=127.0.0.1 HTTP/1.1\r\n\r\n", false, ""},
		{"empty Host", "GET /probe?target=127.0.0.1 HTTP/1.1\r\nHost: \r\n\r\n", false, ""},
		{"two Hosts", "GET /probe HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false, ""},
		{"bad Host", "GET /probe HTTP/1.1\r\nHost: a b\r\n\r\n", false, ""},
		{"bad header value", "GET /probe HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", false, ""},
		{"bad header name", "GET /probe HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", false, ""},
		{"POST", "POST /probe HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", false, ""},
		{"HEAD", "HEAD /probe HTTP/1.1\r\nHost: a\r\n\r\n", false, ""},
		{"GET with a body", "GET /probe HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", false, ""},
		{"chunked GET", "GET /probe HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, ""},
		{"Expect", "GET /probe HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", false, ""},
		{"Upgrade", "GET /probe HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false, ""},
		{"absolute URI", "GET http://a/probe HTTP/1.1\r\nHost: a\r\n\r\n", false, ""},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false, ""},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd := newNextReader()
			data := []byte(c.head)
			req, rest := rd.read(data, http.DefaultMaxHeaderBytes)
			if (req != nil) != c.taken {
				t.Fatalf("taken: %v, want %v", req != nil, c.taken)
			}
			if !c.taken {
				return
			}
			if string(rest) != c.rest {
				t.Errorf("rest %q, want %q", rest, c.rest)
			}
			// What the request keeps is its own: the buffer is reused.
			for i := range data {
				data[i] = 'x'
			}
			if req.URL.Query().Get("target") != "127.0.0.1" || req.Header["Host"] != nil ||
				req.ProtoAtLeast(1, 1) && (req.Host != "localhost:9115" || req.Header.Get("Accept") != "text/plain") {
				t.Errorf("request %+v after its buffer was reused", req)
			}
			if len(rest) > 0 && string(rest) != c.rest {
				t.Errorf("rest %q after the buffer was reused", rest)
			}
		})
	}
	if req, _ := newNextReader().read([]byte(probe), len(probe)-1); req != nil {
		t.Error("a head over the server's MaxHeaderBytes was taken")
	}
}

// On an idle connection, the Parker serves the requests that wait on
// nothing itself, and net/http every other, each answered as net/http
// would, in order, on the same connection.
func TestParkedNextRequests(t *testing.T) {
	needRawICMP(t)
	addr, _, p := parkedServer(t, time.Minute)
	c := dialRaw(t, addr)
	get := func(query, extra string) string {
		return "GET /probe?" + query + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n"
	}
	// A request goes on an idle connection (the last answer was read and
	// the connection is back in the idle watch), or on one net/http kept
	// after serving a request itself.
	send := func(req string, idle bool) {
		t.Helper()
		if idle {
			waitFor(t, "the connection is not idle", func() bool { return p.idle.count() == 1 })
		}
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
	}
	// read reads an answer; success < 0: not metrics (debug output).
	read := func(what string, wantRead uint64, status int, success float64) *http.Response {
		t.Helper()
		resp, err := http.ReadResponse(c.r, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != status {
			t.Errorf("%s: %s %q", what, resp.Status, body)
		} else if status == 200 && success >= 0 {
			if m := parseMetrics(t, string(body)); m["probe_success"] != success {
				t.Errorf("%s: probe_success %v", what, m["probe_success"])
			}
		}
		if resp.Header.Get("X-Frame-Options") != "deny" {
			t.Errorf("%s: the answer lost the header set before the handler: %v", what, resp.Header)
		}
		if got := p.readTotal.Swap(0); got != wantRead {
			t.Errorf("%s: the Parker read %d requests itself, want %d", what, got, wantRead)
		}
		return resp
	}
	// The first request of a new connection, read by the Parker
	// (Parker.Listener).
	send(get("module=ping1&target=127.0.0.21", ""), false)
	read("a new connection's first request", 1, 200, 1)
	send(get("module=ping1&target=127.0.0.22", ""), true)
	read("a probe on the idle connection", 1, 200, 1)
	send(get("module=nope&target=127.0.0.22", ""), true)
	if resp := read("an unknown module", 1, 400, 0); resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Close {
		t.Errorf("the Parker's refusal: Content-Type %q, Connection: close %v", resp.Header.Get("Content-Type"), resp.Close)
	}
	// Served by net/http, which keeps the connection after it.
	send(get("module=ping1&target=127.0.0.23&debug=true", ""), true)
	read("debug output", 0, 200, -1)
	send(get("module=ping1&target=127.0.0.23", ""), false)
	read("a probe after net/http's answer", 0, 200, 1)
	// net/http serves a tcp ping (which dials: it would hold a worker),
	// and hands it to the Parker too (it is an icmp probe), which keeps
	// the connection idle after.
	send(get("module=tcping&target=127.0.0.24", ""), true)
	read("a tcp ping", 0, 200, 0)
	send(get("module=ping1&target=127.0.0.24", ""), true)
	read("a probe after a tcp ping", 1, 200, 1)
	send("GET /probe?module=ping1&target=127.0.0.25 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true)
	if resp := read("HTTP/1.0 keep-alive", 1, 200, 1); resp.Close || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("HTTP/1.0 keep-alive: Connection %q", resp.Header.Get("Connection"))
	}
	send(get("module=ping1&target=127.0.0.26", "Connection: close\r\n"), true)
	if resp := read("Connection: close", 1, 200, 1); !resp.Close {
		t.Error("the answer to Connection: close does not say it")
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close the connection is still open (%v)", err)
	}

	// A head net/http refuses is refused by net/http, in its words.
	c = dialRaw(t, addr)
	send(get("module=ping1&target=127.0.0.27", ""), false)
	read("a new connection's first request", 1, 200, 1)
	send("GET /probe?module=ping1&target=127.0.0.28 HTTP/1.1\r\n\r\n", true)
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "missing required Host header") {
		t.Errorf("no Host: %s %q", resp.Status, body)
	}
	if p.readTotal.Load() != 0 {
		t.Error("the Parker served a request without a Host header")
	}

	// A new connection's first request that the Parker does not serve
	// (debug output) goes to net/http, with its bytes, and so does one
	// whose head comes in two parts.
	c = dialRaw(t, addr)
	send(get("module=ping1&target=127.0.0.29&debug=true", ""), false)
	read("debug output as a first request", 0, 200, -1)
	send(get("module=ping1&target=127.0.0.29", ""), false)
	read("a probe after net/http's first answer", 0, 200, 1)
	c = dialRaw(t, addr)
	head := get("module=ping1&target=127.0.0.30", "")
	send(head[:10], false)
	// The rest once the Parker gave the first part to net/http.
	waitFor(t, "the Parker did not hand a part of a head to net/http", func() bool { return serverConnGoroutines() >= 1 })
	send(head[10:], false)
	read("a first request in two parts", 0, 200, 1)
}
