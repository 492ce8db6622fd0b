package prober

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
)

// The fuzz targets of the parsers that read what a target sends (ICMP
// replies, TCP dialogues, compressed bodies, DNS over HTTPS answers) and of
// the target parsers. Each must never panic, never hang, and hold its
// invariants. Run one: go test ./prober/ -run '^$' -fuzz FuzzICMPReply
// (scripts/fuzz.sh runs them all).

var (
	fuzzSrc4, fuzzDst4 = netip.MustParseAddr("198.51.100.34"), netip.MustParseAddr("203.0.113.34")
	fuzzSrc6, fuzzDst6 = netip.MustParseAddr("2001:db8::34"), netip.MustParseAddr("2001:db8:1::34")
)

// fuzzTrace is a trace of protocol proto to dst with ten probes outstanding.
func fuzzTrace(proto string, dst, src netip.Addr) *trace {
	o := traceTestOptions(proto, 5, 2)
	o.Port = 33434
	tr := &trace{o: o, dst: dst, ipv6: dst.Is6(), id: 77, token: 42, byKey: map[uint32]*tracePacket{}, done: make(chan struct{}),
		socks: &traceSockets{src: src, sport: 40000}}
	for ttl := 1; ttl <= 5; ttl++ {
		for k := range 2 {
			key := uint32(1000 + 2*(ttl-1) + k)
			p := &tracePacket{ttl: ttl, key: key, tried: true, sent: time.Now()}
			tr.probes = append(tr.probes, p)
			tr.byKey[key] = p
		}
	}
	return tr
}

// FuzzICMPReply feeds arbitrary ICMP and ICMPv6 messages, as a raw socket
// returns them, to the parser and to every consumer of its result: the
// traceroute matcher (icmp, udp and tcp traces) and the MTU search.
func FuzzICMPReply(f *testing.F) {
	echo := buildEcho(false, 77, 1000, 42, 32)
	f.Add(false, uint8(0), false, echo)
	f.Add(false, uint8(0), true, icmpError(11, 0, 0, ipv4Header(protoICMP, fuzzSrc4, fuzzDst4, echo)))
	f.Add(false, uint8(1), true, icmpError(3, 3, 0, ipv4Header(protoUDP, fuzzSrc4, fuzzDst4, buildUDP(fuzzSrc4, fuzzDst4, 40000, 33434, 1000, 16))))
	f.Add(false, uint8(2), false, icmpError(3, 4, 1400, ipv4Header(protoTCP, fuzzSrc4, fuzzDst4, buildSYN(fuzzSrc4, fuzzDst4, 40000, 33434, 1000))))
	echo6 := buildEcho(true, 77, 1000, 42, 32)
	f.Add(true, uint8(0), false, echo6)
	f.Add(true, uint8(0), true, icmpError(2, 0, 1280, ipv6Header(protoICMPv6, fuzzSrc6, fuzzDst6, echo6)))
	f.Add(true, uint8(1), false, icmpError(1, 4, 0, ipv6Header(protoUDP, fuzzSrc6, fuzzDst6, buildUDP(fuzzSrc6, fuzzDst6, 40000, 33434, 1000, 16))))
	protos := []string{config.TracerouteProtocolICMP, config.TracerouteProtocolUDP, config.TracerouteProtocolTCP}
	f.Fuzz(func(t *testing.T, ipv6 bool, proto uint8, fromDst bool, msg []byte) {
		m, ok := parseICMP(ipv6, msg)
		if ok && m.kind != icmpEchoReply {
			if len(m.qPayload) < 8 || !m.qDst.IsValid() || !m.qSrc.IsValid() {
				t.Fatalf("an error message with a short quote or no addresses was accepted: %+v", m)
			}
		}
		if !ok {
			return
		}
		dst, src := fuzzDst4, fuzzSrc4
		if ipv6 {
			dst, src = fuzzDst6, fuzzSrc6
		}
		from := netip.MustParseAddr("198.51.100.33")
		if fromDst {
			from = dst
		}
		tr := fuzzTrace(protos[int(proto)%len(protos)], dst, src)
		tr.onICMP(m, from, time.Now())
		if seg, ok := parseTCP(msg); ok {
			tr.onTCP(seg, from, time.Now())
		}
		s := newMTUSearch(config.MTUProbe{ReplyTimeout: config.DefaultMTUReplyTimeout}, dst, 77, &mtuSockets{ifMTU: 1500})
		s.token = 42
		for i, size := range s.nextSizes() {
			s.probes[uint16(1000+i)] = &mtuPacket{size: size, sent: time.Now()}
		}
		s.onICMP(m, from, time.Now())
		if s.ok > s.max {
			t.Fatalf("the search took %d as fitting, above its maximum %d", s.ok, s.max)
		}
	})
}

// FuzzTCPQueryResponse runs a query_response dialogue (expect with
// submatches and labels, send with expansions) against a server that sends
// arbitrary bytes: it must end, and fail with a reason unless every step
// matched.
func FuzzTCPQueryResponse(f *testing.F) {
	f.Add([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	f.Add([]byte("220 mail ESMTP\r\n250-STARTTLS\r\n250 OK\r\n"))
	f.Add([]byte("noise\n\x00\xff\n220 x\n250 y\n"))
	f.Add(bytes.Repeat([]byte("a"), 70000))
	f.Add([]byte("SSH-2.0-x\n220 a\n250 b\n\x00\x01S"))
	m := probeTestModule(f, "tcp", 0, `query_response:
  - expect: "^SSH-([^-]+)-(.*)$"
    labels: [{name: proto, value: "${1}"}, {name: software, value: "${2}"}]
  - send: "hello ${1}"
  - expect: "^220 (.*)"
    send: "EHLO ${1}"
  - expect: "^250 (.*)$"
  - expect_bytes: !!binary AAFT`)
	f.Fuzz(func(t *testing.T, server []byte) {
		client, srv := net.Pipe()
		go func() {
			go func() { _, _ = io.Copy(io.Discard, srv) }()
			_, _ = srv.Write(server)
			_ = srv.Close()
		}()
		defer func() { _ = client.Close() }()
		_ = client.SetDeadline(time.Now().Add(5 * time.Second))
		res := &TCPResult{}
		d := &dialogue{steps: m.TCP.QueryResponse, tlsConfig: &m.TCP.TLSConfig, logger: slog.New(slog.DiscardHandler), common: &res.Common, out: &res.Dialogue}
		ok := d.run(context.Background(), &client)
		if ok != (res.Error == "") {
			t.Fatalf("the dialogue returned %v with error %q", ok, res.Error)
		}
		if res.FailedDueToBytes && (res.FailedDueToRegex || ok) {
			t.Fatalf("failed_due_to_bytes with failed_due_to_regex %v and success %v", res.FailedDueToRegex, ok)
		}
	})
}

// FuzzDecompress decodes arbitrary bytes in each encoding the http prober
// accepts, behind the body limit: no panic, and never more than the limit.
func FuzzDecompress(f *testing.F) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write(bytes.Repeat([]byte("isp-checker "), 1000))
	_ = w.Close()
	for _, alg := range []string{"gzip", "br", "deflate", "identity"} {
		f.Add(alg, gz.Bytes())
		f.Add(alg, []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	}
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, alg string, data []byte) {
		dec, err := decompressor(alg, bytes.NewReader(data))
		if err != nil {
			return
		}
		lr := &limitReader{r: dec, left: limit, err: errors.New("over the limit")}
		n, _ := io.Copy(io.Discard, lr)
		if n > limit {
			t.Fatalf("read %d bytes past the %d-byte limit", n, limit)
		}
	})
}

// FuzzDoHAnswer reads arbitrary bytes as a DNS over HTTPS server's HTTP
// response: a message is returned only from a 200 with the DNS content
// type, never larger than a DNS message, and an error is never empty.
func FuzzDoHAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: 12\r\n\r\n\x12\x34\x81\x80\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("HTTP/1.1 302 Found\r\nLocation: http://user:pw@x/\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/dns-message; charset=x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), nil)
		if err != nil {
			return
		}
		defer func() { _ = resp.Body.Close() }()
		raw, err := dohAnswer(resp)
		switch {
		case err != nil && err.Error() == "":
			t.Fatal("empty error")
		case err != nil && leaksPassword(resp.Header.Get("Location"), err.Error()):
			t.Fatalf("error shows the Location's password: %v", err)
		case err == nil && (resp.StatusCode != 200 || len(raw) > dnsMaxMessage):
			t.Fatalf("accepted status %d, %d bytes", resp.StatusCode, len(raw))
		}
		if budget.Used() != 0 {
			t.Fatalf("budget not given back: %d", budget.Used())
		}
	})
}

// FuzzTargetParse feeds arbitrary targets to every target parser: the
// http/throughput/grpc URL parser, the scheme check, the DNS target parser
// and the redaction of credentials. A target with a scheme other than
// http(s) never parses as a URL to probe; a redacted target never shows a
// password.
func FuzzTargetParse(f *testing.F) {
	for _, s := range []string{"example.com", "http://u:p@x:80/a?b#c", "[fe80::1%25lo]:53", "file:///etc/passwd", "unix:", "https://[::1]/dns-query",
		"gopher://x", "localhost:8080", "x\r\ny", "http://metadata.ⓘⓝⓣⓔⓡⓝⓐⓛ/", "::ffff:1.2.3.4", "tls://1.1.1.1:853"} {
		f.Add(s)
	}
	cfgs := []config.DNSProbe{{}, {DNSOverTLS: true}, {DNSOverHTTPS: true}, {TransportProtocol: "tcp"}}
	f.Fuzz(func(t *testing.T, target string) {
		scheme := targetScheme(target)
		u, err := targetURL(target)
		if err == nil {
			if scheme != "" && scheme != "http" && scheme != "https" {
				t.Fatalf("targetURL(%q) accepted scheme %q", target, scheme)
			}
			if u.Host == "" {
				t.Fatalf("targetURL(%q) has no host", target)
			}
		}
		for i := range cfgs {
			if dt, err := parseDNSTarget(target, &cfgs[i]); err == nil && dt.host == "" {
				t.Fatalf("parseDNSTarget(%q) has no host", target)
			}
		}
		_, _, _ = grpcTarget(target, false)
		_, _ = config.CanonicalHost(target)
		red := RedactTarget(target)
		if u, err := targetURL(target); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && len(pw) > 5 && strings.Contains(red, ":"+pw+"@") {
				t.Fatalf("RedactTarget(%q) = %q shows the password", target, red)
			}
		}
	})
}

// leaksPassword reports whether text shows the password of URL loc.
func leaksPassword(loc, text string) bool {
	u, err := url.Parse(loc)
	if err != nil || u.User == nil {
		return false
	}
	pw, ok := u.User.Password()
	return ok && len(pw) > 5 && strings.Contains(text, pw)
}
