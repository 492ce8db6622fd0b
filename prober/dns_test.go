package prober

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
)

// Generous: CI machines are slow and shared. Timing is asserted only in the
// slow-server and dead-server tests, against the module timeout.
const dnsTestTimeout = 10 * time.Second

// dnsResponder answers one query; transport is udp, tcp, tls or https. A nil
// answer means no reply at all.
type dnsResponder func(q *dns.Msg, transport string) *dns.Msg

// dnsTestLogger sends the probe's log lines to the test log.
func dnsTestLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(dnsTestWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type dnsTestWriter struct{ t *testing.T }

func (w dnsTestWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startDNSServer runs an in-process miekg/dns server on loopback: udp, tcp
// or tls (DNS over TLS). It returns the server's address.
func startDNSServer(t *testing.T, transport string, r dnsResponder) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if m := r(q, transport); m != nil {
			_ = w.WriteMsg(m)
		}
	})
	srv := &dns.Server{Handler: h}
	var addr string
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.PacketConn, addr = pc, pc.LocalAddr().String()
	case "tcp", "tls":
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if transport == "tls" {
			l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{dnsTestCert(t).cert}})
			srv.Net = "tcp-tls"
		}
		srv.Listener, addr = l, l.Addr().String()
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	testserver.ServeDNS(t, srv)
	return addr
}

// startDoHServer runs an RFC 8484 server on loopback (TLS with HTTP/2 when
// tlsOn) and returns its URL (path /dns-query).
func startDoHServer(t *testing.T, tlsOn bool, r dnsResponder) (*httptest.Server, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/dns-query" {
			http.NotFound(w, req)
			return
		}
		var raw []byte
		var err error
		switch req.Method {
		case http.MethodGet:
			raw, err = base64.RawURLEncoding.DecodeString(req.URL.Query().Get("dns"))
		case http.MethodPost:
			if req.Header.Get("Content-Type") != "application/dns-message" {
				http.Error(w, "bad content type", http.StatusUnsupportedMediaType)
				return
			}
			raw, err = io.ReadAll(io.LimitReader(req.Body, 65536))
		default:
			http.Error(w, "method", http.StatusMethodNotAllowed)
			return
		}
		q := &dns.Msg{}
		if err == nil {
			err = q.Unpack(raw)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m := r(q, "https")
		if m == nil {
			http.Error(w, "no answer", http.StatusBadGateway)
			return
		}
		out, err := m.Pack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/dns-message")
		w.Header().Set("X-Method", req.Method)
		_, _ = w.Write(out)
	}))
	if tlsOn {
		ts.EnableHTTP2 = true
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return ts, ts.URL + "/dns-query"
}

// dnsCAPEM returns the PEM of an httptest TLS server's certificate.
func dnsCAPEM(ts *httptest.Server) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))
}

type dnsCertPair struct {
	cert tls.Certificate
	pem  string
}

var (
	dnsTestCertOnce sync.Once
	dnsTestCertVal  dnsCertPair
	dnsTestCertErr  error
)

// dnsTestCert is a self-signed certificate for 127.0.0.1, ::1 and dns.test.
func dnsTestCert(t *testing.T) dnsCertPair {
	t.Helper()
	dnsTestCertOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			dnsTestCertErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "dns.test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			DNSNames:              []string{"dns.test"},
			IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			dnsTestCertErr = err
			return
		}
		dnsTestCertVal = dnsCertPair{
			cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
			pem:  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		}
	})
	if dnsTestCertErr != nil {
		t.Fatal(dnsTestCertErr)
	}
	return dnsTestCertVal
}

func dnsRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// dnsZoneResponder answers like an authoritative server for example.com:
// two A records (TTL 300 and 60), a SOA, a CH TXT, NXDOMAIN for
// nx.example.com, two NS in authority and three glue records. It sets AD
// when the query has the DO bit.
func dnsZoneResponder(q *dns.Msg, _ string) *dns.Msg {
	m := &dns.Msg{}
	m.SetReply(q)
	m.Authoritative = true
	qq := q.Question[0]
	switch {
	case strings.EqualFold(qq.Name, "nx.example.com."):
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, dnsRR("example.com. 300 IN SOA ns1.example.net. hostmaster.example.com. 2024010101 7200 3600 1209600 300"))
		return m
	case qq.Qtype == dns.TypeSOA:
		m.Answer = append(m.Answer, dnsRR("example.com. 3600 IN SOA ns1.example.net. hostmaster.example.com. 2024010101 7200 3600 1209600 300"))
	case qq.Qclass == dns.ClassCHAOS && qq.Qtype == dns.TypeTXT:
		m.Answer = append(m.Answer, dnsRR(`example.com. 0 CH TXT "chaos"`))
	case qq.Qtype == dns.TypeA || qq.Qtype == dns.TypeANY:
		m.Answer = append(m.Answer,
			dnsRR(qq.Name+" 300 IN A 192.0.2.1"),
			dnsRR(qq.Name+" 60 IN A 192.0.2.2"))
	}
	m.Ns = append(m.Ns,
		dnsRR("example.com. 7200 IN NS ns1.example.net."),
		dnsRR("example.com. 7200 IN NS ns2.example.net."))
	m.Extra = append(m.Extra,
		dnsRR("ns1.example.net. 7200 IN A 192.0.2.53"),
		dnsRR("ns1.example.net. 7200 IN AAAA 2001:db8::53"),
		dnsRR("ns2.example.net. 7200 IN A 192.0.2.54"))
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
		if opt.Do() {
			m.AuthenticatedData = true
		}
	}
	return m
}

func dnsRcodeResponder(rcode int) dnsResponder {
	return func(q *dns.Msg, _ string) *dns.Msg {
		m := &dns.Msg{}
		m.SetRcode(q, rcode)
		return m
	}
}

// dnsModule is a dns module as a config file would give it (defaults
// applied), asking example.com A over IPv4.
func dnsModule(mod func(*config.DNSProbe)) config.Module {
	m := config.DefaultModule()
	m.Prober = "dns"
	m.DNS.QueryName = "example.com"
	m.DNS.QueryType = "A"
	m.DNS.IPProtocol = "ip4"
	if mod != nil {
		mod(&m.DNS)
	}
	return m
}

func runDNS(t *testing.T, target string, m config.Module, timeout time.Duration) *DNSResult {
	t.Helper()
	return runDNSPolicy(t, target, m, timeout, nil)
}

func runDNSPolicy(t *testing.T, target string, m config.Module, timeout time.Duration, p *Policy) *DNSResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res := Run(ctx, ProbeDNS, Request{Target: target, Module: &m, ModuleName: "test", Logger: dnsTestLogger(t), Policy: p})
	d, ok := res.(*DNSResult)
	if !ok {
		t.Fatalf("result is %T, want *DNSResult: %+v", res, res.Base())
	}
	return d
}

func dnsWantSuccess(t *testing.T, r *DNSResult) {
	t.Helper()
	if !r.Success {
		t.Fatalf("probe failed: %s", r.Error)
	}
}

func dnsWantFailure(t *testing.T, r *DNSResult, substr string) {
	t.Helper()
	if r.Success {
		t.Fatalf("probe succeeded, want a failure containing %q", substr)
	}
	if !strings.Contains(r.Error, substr) {
		t.Fatalf("error %q does not contain %q", r.Error, substr)
	}
}

// dnsTransportCase is one way to reach the zone: a target and the module
// options it needs.
type dnsTransportCase struct {
	name      string
	transport string
	target    string
	mod       func(*config.DNSProbe)
}

func dnsAllTransports(t *testing.T, r dnsResponder) []dnsTransportCase {
	t.Helper()
	udp := startDNSServer(t, "udp", r)
	tcp := startDNSServer(t, "tcp", r)
	dot := startDNSServer(t, "tls", r)
	ts, dohURL := startDoHServer(t, true, r)
	_, plainURL := startDoHServer(t, false, r)
	ca := dnsTestCert(t).pem
	return []dnsTransportCase{
		{"udp", DNSTransportUDP, udp, nil},
		{"tcp", DNSTransportTCP, tcp, func(d *config.DNSProbe) { d.TransportProtocol = "tcp" }},
		{"dot", DNSTransportTLS, dot, func(d *config.DNSProbe) {
			d.DNSOverTLS = true
			d.TLSConfig.CA = ca
		}},
		{"doh-post", DNSTransportHTTPS, dohURL, func(d *config.DNSProbe) { d.TLSConfig.CA = dnsCAPEM(ts) }},
		{"doh-get", DNSTransportHTTPS, dohURL, func(d *config.DNSProbe) {
			d.TLSConfig.CA = dnsCAPEM(ts)
			d.DoHMethod = "GET"
		}},
		{"doh-plain-http", DNSTransportHTTPS, plainURL, nil},
	}
}

func dnsChain(fs ...func(*config.DNSProbe)) func(*config.DNSProbe) {
	return func(d *config.DNSProbe) {
		for _, f := range fs {
			if f != nil {
				f(d)
			}
		}
	}
}

func TestDNSRightAnswerAllTransports(t *testing.T) {
	for _, tc := range dnsAllTransports(t, dnsZoneResponder) {
		t.Run(tc.name, func(t *testing.T) {
			m := dnsModule(dnsChain(tc.mod, func(d *config.DNSProbe) {
				d.ValidRcodes = []string{"NOERROR"}
				d.ValidateAnswer.FailIfNotMatchesRegexp = []config.Regexp{config.MustNewRegexp(`^example\.com\.\t\d+\tIN\tA\t192\.0\.2\.[12]$`)}
				d.ValidateAnswer.FailIfMatchesRegexp = []config.Regexp{config.MustNewRegexp(`127\.0\.0\.1`)}
			}))
			r := runDNS(t, tc.target, m, dnsTestTimeout)
			dnsWantSuccess(t, r)
			if r.Transport != tc.transport {
				t.Errorf("transport = %q, want %q", r.Transport, tc.transport)
			}
			if !r.QuerySucceeded || r.Rcode != "NOERROR" || r.RcodeValue == nil || *r.RcodeValue != 0 {
				t.Errorf("query_succeeded=%v rcode=%q value=%v", r.QuerySucceeded, r.Rcode, r.RcodeValue)
			}
			if r.AnswerRRs != 2 || r.AuthorityRRs != 2 || r.AdditionalRRs != 3 {
				t.Errorf("rrs = %d/%d/%d, want 2/2/3", r.AnswerRRs, r.AuthorityRRs, r.AdditionalRRs)
			}
			if r.AnswerMinTTLSeconds == nil || *r.AnswerMinTTLSeconds != 60 {
				t.Errorf("answer min TTL = %v, want 60", r.AnswerMinTTLSeconds)
			}
			if r.Serial != nil {
				t.Errorf("serial set for an A query: %d", *r.Serial)
			}
			if len(r.Answer) != 2 {
				t.Errorf("answer strings: %q", r.Answer)
			}
			if r.IPProtocol != 4 || r.IPAddr != "127.0.0.1" {
				t.Errorf("ip protocol/addr = %d %q", r.IPProtocol, r.IPAddr)
			}
			p := r.Phases
			if p.ConnectSeconds < 0 || p.RequestSeconds <= 0 || p.ResolveSeconds < 0 {
				t.Errorf("phases not measured: %+v", p)
			}
			if sum := p.ResolveSeconds + p.ConnectSeconds + p.RequestSeconds; sum > r.DurationSeconds+0.001 {
				t.Errorf("phases add up to %v, more than the probe's %v", sum, r.DurationSeconds)
			}
		})
	}
}

// TestDNSWrongAnswerAllTransports: the same validators fail on an answer that
// is not the expected one, over every transport.
func TestDNSWrongAnswerAllTransports(t *testing.T) {
	hijacked := func(q *dns.Msg, tr string) *dns.Msg {
		m := dnsZoneResponder(q, tr)
		m.Answer = []dns.RR{dnsRR(q.Question[0].Name + " 300 IN A 127.0.0.1")}
		return m
	}
	for _, tc := range dnsAllTransports(t, hijacked) {
		t.Run(tc.name, func(t *testing.T) {
			m := dnsModule(dnsChain(tc.mod, func(d *config.DNSProbe) {
				d.ValidateAnswer.FailIfMatchesRegexp = []config.Regexp{config.MustNewRegexp(`127\.0\.0\.1`)}
			}))
			r := runDNS(t, tc.target, m, dnsTestTimeout)
			dnsWantFailure(t, r, `matched fail_if_matches_regexp "127\\.0\\.0\\.1"`)
			if !r.QuerySucceeded || len(r.ValidationFailures) != 1 {
				t.Errorf("query_succeeded=%v failures=%q", r.QuerySucceeded, r.ValidationFailures)
			}
		})
	}
}

// TestDNSValidation checks validate_*_rrs with blackbox_exporter's
// semantics, over UDP and TCP.
func TestDNSValidation(t *testing.T) {
	re := func(ss ...string) []config.Regexp {
		var out []config.Regexp
		for _, s := range ss {
			out = append(out, config.MustNewRegexp(s))
		}
		return out
	}
	tests := []struct {
		name string
		mod  func(*config.DNSProbe)
		fail string // "" = success
	}{
		{"no validators", nil, ""},
		{"answer matches and not-matches pass", func(d *config.DNSProbe) {
			d.ValidateAnswer = config.DNSRRValidator{FailIfMatchesRegexp: re(`7200`), FailIfNotMatchesRegexp: re(`\tIN\tA\t`)}
		}, ""},
		{"fail_if_matches", func(d *config.DNSProbe) {
			d.ValidateAnswer.FailIfMatchesRegexp = re(`192\.0\.2\.2$`)
		}, `answer: record "example.com.\t60\tIN\tA\t192.0.2.2" matched fail_if_matches_regexp`},
		{"fail_if_not_matches", func(d *config.DNSProbe) {
			d.ValidateAnswer.FailIfNotMatchesRegexp = re(`\t300\t`)
		}, `answer: record "example.com.\t60\tIN\tA\t192.0.2.2" did not match fail_if_not_matches_regexp`},
		{"fail_if_none_matches fails", func(d *config.DNSProbe) {
			d.ValidateAnswer.FailIfNoneMatchesRegexp = re(`192\.0\.2\.3`, `192\.0\.2\.4`)
		}, "answer: no record matched any fail_if_none_matches_regexp"},
		{"fail_if_none_matches passes on one match", func(d *config.DNSProbe) {
			d.ValidateAnswer.FailIfNoneMatchesRegexp = re(`192\.0\.2\.3`, `192\.0\.2\.2`)
		}, ""},
		{"fail_if_all_match passes when all match", func(d *config.DNSProbe) {
			d.ValidateAnswer.FailIfAllMatchRegexp = re(`192\.0\.2\.`)
		}, ""},
		{"fail_if_all_match fails when not all match (blackbox semantics)", func(d *config.DNSProbe) {
			d.ValidateAdditional.FailIfAllMatchRegexp = re(`\tA\t`)
		}, `additional: not all records matched fail_if_all_match_regexp`},
		{"authority not-matches passes", func(d *config.DNSProbe) {
			d.ValidateAuthority.FailIfNotMatchesRegexp = re(`ns[12]\.example\.net\.$`)
		}, ""},
		{"authority matches fails", func(d *config.DNSProbe) {
			d.ValidateAuthority.FailIfMatchesRegexp = re(`ns2`)
		}, "authority: record"},
		{"additional not-matches passes", func(d *config.DNSProbe) {
			d.ValidateAdditional.FailIfNotMatchesRegexp = re(`^ns[12]\.example\.net`)
		}, ""},
		{"empty section with not-matches fails", func(d *config.DNSProbe) {
			d.QueryType = "MX" // dnsZoneResponder has no MX: empty answer.
			d.ValidateAnswer.FailIfNotMatchesRegexp = re(`.`)
		}, "answer: fail_if_not_matches_regexp is set but there are no records"},
		{"empty section with none-matches fails", func(d *config.DNSProbe) {
			d.QueryType = "MX"
			d.ValidateAnswer.FailIfNoneMatchesRegexp = re(`.`)
		}, "answer: fail_if_none_matches_regexp is set but there are no records"},
		{"empty section with matches and all-match passes", func(d *config.DNSProbe) {
			d.QueryType = "MX"
			d.ValidateAnswer.FailIfMatchesRegexp = re(`.`)
			d.ValidateAnswer.FailIfAllMatchRegexp = re(`.`)
		}, ""},
		{"chaos class", func(d *config.DNSProbe) {
			d.QueryClass = "CH"
			d.QueryType = "TXT"
			d.ValidateAnswer = config.DNSRRValidator{FailIfMatchesRegexp: re(`\tIN\t`), FailIfNotMatchesRegexp: re(`\tCH\tTXT\t"chaos"`)}
		}, ""},
		{"several failures are all reported", func(d *config.DNSProbe) {
			d.ValidateAnswer.FailIfMatchesRegexp = re(`192`)
			d.ValidateAuthority.FailIfMatchesRegexp = re(`NS`)
		}, "(and 1 more)"},
	}
	for _, proto := range []string{"udp", "tcp"} {
		addr := startDNSServer(t, proto, dnsZoneResponder)
		for _, tc := range tests {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				m := dnsModule(dnsChain(func(d *config.DNSProbe) { d.TransportProtocol = proto }, tc.mod))
				r := runDNS(t, addr, m, dnsTestTimeout)
				if tc.fail == "" {
					dnsWantSuccess(t, r)
					return
				}
				dnsWantFailure(t, r, tc.fail)
				if !r.QuerySucceeded {
					t.Error("a validation failure must keep query_succeeded")
				}
			})
		}
	}
}

func TestDNSRcodes(t *testing.T) {
	servfail := startDNSServer(t, "udp", dnsRcodeResponder(dns.RcodeServerFailure))
	zone := startDNSServer(t, "udp", dnsZoneResponder)
	tests := []struct {
		name   string
		target string
		mod    func(*config.DNSProbe)
		rcode  string
		fail   string
	}{
		{"SERVFAIL with default valid_rcodes", servfail, nil, "SERVFAIL", "rcode SERVFAIL is not one of the valid rcodes NOERROR"},
		{"SERVFAIL allowed", servfail, func(d *config.DNSProbe) { d.ValidRcodes = []string{"SERVFAIL", "NXDOMAIN"} }, "SERVFAIL", ""},
		{"NXDOMAIN with default valid_rcodes", zone, func(d *config.DNSProbe) { d.QueryName = "nx.example.com" }, "NXDOMAIN", "rcode NXDOMAIN is not one of the valid rcodes"},
		{"NXDOMAIN allowed (lower case)", zone, func(d *config.DNSProbe) {
			d.QueryName = "nx.example.com"
			d.ValidRcodes = []string{"nxdomain"}
		}, "NXDOMAIN", ""},
		{"NOERROR not in the list", zone, func(d *config.DNSProbe) { d.ValidRcodes = []string{"SERVFAIL", "NXDOMAIN"} }, "NOERROR", "rcode NOERROR is not one of the valid rcodes SERVFAIL, NXDOMAIN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runDNS(t, tc.target, dnsModule(tc.mod), dnsTestTimeout)
			if tc.fail == "" {
				dnsWantSuccess(t, r)
			} else {
				dnsWantFailure(t, r, tc.fail)
			}
			if !r.QuerySucceeded || r.Rcode != tc.rcode {
				t.Errorf("query_succeeded=%v rcode=%q, want true %q", r.QuerySucceeded, r.Rcode, tc.rcode)
			}
		})
	}
}

func TestDNSRecursionDesired(t *testing.T) {
	var sawRD atomic.Int32
	addr := startDNSServer(t, "udp", func(q *dns.Msg, tr string) *dns.Msg {
		if !q.RecursionDesired {
			m := &dns.Msg{}
			m.SetRcode(q, dns.RcodeRefused)
			return m
		}
		sawRD.Add(1)
		return dnsZoneResponder(q, tr)
	})
	dnsWantSuccess(t, runDNS(t, addr, dnsModule(nil), dnsTestTimeout))
	if sawRD.Load() != 1 {
		t.Error("recursion_desired defaults to true")
	}
	r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.Recursion = false }), dnsTestTimeout)
	dnsWantFailure(t, r, "rcode REFUSED")
}

func TestDNSSOASerial(t *testing.T) {
	addr := startDNSServer(t, "tcp", dnsZoneResponder)
	r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) {
		d.QueryType = "SOA"
		d.TransportProtocol = "tcp"
	}), dnsTestTimeout)
	dnsWantSuccess(t, r)
	if r.Serial == nil || *r.Serial != 2024010101 {
		t.Fatalf("serial = %v, want 2024010101", r.Serial)
	}
	// A SOA query whose answer has no SOA reports serial 0, as blackbox does.
	addr = startDNSServer(t, "udp", dnsRcodeResponder(dns.RcodeSuccess))
	r = runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.QueryType = "SOA" }), dnsTestTimeout)
	dnsWantSuccess(t, r)
	if r.Serial == nil || *r.Serial != 0 {
		t.Fatalf("serial = %v, want 0", r.Serial)
	}
}

func TestDNSQueryDefaults(t *testing.T) {
	var got atomic.Value
	addr := startDNSServer(t, "udp", func(q *dns.Msg, tr string) *dns.Msg {
		got.Store(q.Copy())
		return dnsZoneResponder(q, tr)
	})
	m := config.DefaultModule()
	m.Prober = "dns"
	m.DNS.QueryName = "bücher.example.com" // IDNA, as blackbox converts it
	m.DNS.IPProtocol = "ip4"
	dnsWantSuccess(t, runDNS(t, addr, m, dnsTestTimeout))
	q := got.Load().(*dns.Msg)
	qq := q.Question[0]
	if qq.Name != "xn--bcher-kva.example.com." || qq.Qtype != dns.TypeANY || qq.Qclass != dns.ClassINET {
		t.Errorf("question = %v, want xn--bcher-kva.example.com. IN ANY", qq)
	}
	if q.IsEdns0() != nil || q.AuthenticatedData {
		t.Error("no EDNS0 and no AD unless asked, as blackbox")
	}
}

func TestDNSTruncated(t *testing.T) {
	r3 := func(q *dns.Msg, tr string) *dns.Msg {
		m := dnsZoneResponder(q, tr)
		m.Answer = append(m.Answer, dnsRR(q.Question[0].Name+" 30 IN A 192.0.2.3"))
		if tr == "udp" {
			m.Truncated = true
			m.Answer = m.Answer[:1]
			m.Ns, m.Extra = nil, nil
		}
		return m
	}
	l, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	_ = l.Close()
	// UDP and TCP on the same port, as a real server.
	udp := startDNSServerOn(t, "udp", port, r3)
	startDNSServerOn(t, "tcp", port, r3)

	t.Run("judged as it is by default", func(t *testing.T) {
		r := runDNS(t, udp, dnsModule(nil), dnsTestTimeout)
		dnsWantSuccess(t, r)
		if !r.Truncated || r.RetriedOverTCP || r.AnswerRRs != 1 {
			t.Errorf("truncated=%v retried=%v answer_rrs=%d, want true false 1", r.Truncated, r.RetriedOverTCP, r.AnswerRRs)
		}
	})
	t.Run("retried over TCP", func(t *testing.T) {
		r := runDNS(t, udp, dnsModule(func(d *config.DNSProbe) { d.RetryTruncatedOverTCP = true }), dnsTestTimeout)
		dnsWantSuccess(t, r)
		if !r.Truncated || !r.RetriedOverTCP || r.AnswerRRs != 3 || r.AdditionalRRs != 3 {
			t.Errorf("truncated=%v retried=%v answer_rrs=%d additional=%d, want true true 3 3", r.Truncated, r.RetriedOverTCP, r.AnswerRRs, r.AdditionalRRs)
		}
		if *r.AnswerMinTTLSeconds != 30 {
			t.Errorf("min TTL %d, want 30 (from the TCP answer)", *r.AnswerMinTTLSeconds)
		}
	})
	t.Run("TCP retry fails if TCP is dead", func(t *testing.T) {
		udpOnly := startDNSServer(t, "udp", r3)
		r := runDNS(t, udpOnly, dnsModule(func(d *config.DNSProbe) { d.RetryTruncatedOverTCP = true }), dnsTestTimeout)
		dnsWantFailure(t, r, "retrying the truncated DNS query over TCP")
		if !r.Truncated || !r.RetriedOverTCP {
			t.Error("truncated and retried must be recorded")
		}
	})
}

// startDNSServerOn is startDNSServer on a chosen loopback port.
func startDNSServerOn(t *testing.T, transport string, port int, r dnsResponder) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if m := r(q, transport); m != nil {
			_ = w.WriteMsg(m)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	srv := &dns.Server{Handler: h}
	if transport == "udp" {
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.PacketConn = pc
	} else {
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener = l
	}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return addr
}

func TestDNSSEC(t *testing.T) {
	var sawDO atomic.Bool
	addr := startDNSServer(t, "udp", func(q *dns.Msg, tr string) *dns.Msg {
		if opt := q.IsEdns0(); opt != nil && opt.Do() && q.AuthenticatedData && opt.UDPSize() == 1232 {
			sawDO.Store(true)
		}
		return dnsZoneResponder(q, tr)
	})
	r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) {
		d.DNSSEC = true
		d.FailIfNotAuthenticated = true
	}), dnsTestTimeout)
	dnsWantSuccess(t, r)
	if !sawDO.Load() {
		t.Error("query lacked DO bit, AD flag or the 1232-byte EDNS0 size")
	}
	if !r.DNSSECRequested || !r.AuthenticatedData {
		t.Errorf("dnssec_requested=%v authenticated_data=%v", r.DNSSECRequested, r.AuthenticatedData)
	}
	if r.AdditionalRRs != 4 {
		t.Errorf("additional RRs %d, want 4 (3 glue + OPT, counted as blackbox does)", r.AdditionalRRs)
	}

	// A resolver that does not validate.
	plain := startDNSServer(t, "udp", func(q *dns.Msg, tr string) *dns.Msg {
		m := dnsZoneResponder(q, tr)
		m.AuthenticatedData = false
		return m
	})
	r = runDNS(t, plain, dnsModule(func(d *config.DNSProbe) { d.DNSSEC = true }), dnsTestTimeout)
	dnsWantSuccess(t, r)
	if !r.DNSSECRequested || r.AuthenticatedData {
		t.Errorf("dnssec_requested=%v authenticated_data=%v, want true false", r.DNSSECRequested, r.AuthenticatedData)
	}
	r = runDNS(t, plain, dnsModule(func(d *config.DNSProbe) {
		d.DNSSEC = true
		d.FailIfNotAuthenticated = true
	}), dnsTestTimeout)
	dnsWantFailure(t, r, "not DNSSEC-authenticated")

	// AD in a response to a query without DO means nothing and is not reported.
	r = runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.EDNS0UDPSize = 4096 }), dnsTestTimeout)
	dnsWantSuccess(t, r)
	if r.DNSSECRequested || r.AuthenticatedData {
		t.Error("authenticated_data reported without dnssec")
	}
}

// TestDNSSlowServer: a server slower than the module timeout fails the probe
// at the timeout, not later.
func TestDNSSlowServer(t *testing.T) {
	release := make(chan struct{})
	slow := func(q *dns.Msg, tr string) *dns.Msg {
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		return dnsZoneResponder(q, tr)
	}
	udp := startDNSServer(t, "udp", slow)
	tcp := startDNSServer(t, "tcp", slow)
	_, doh := startDoHServer(t, false, slow)
	t.Cleanup(func() { close(release) }) // before the servers shut down
	const timeout = time.Second
	for _, tc := range []struct{ name, target, proto string }{
		{"udp", udp, ""}, {"tcp", tcp, "tcp"}, {"doh", doh, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runDNS(t, tc.target, dnsModule(func(d *config.DNSProbe) { d.TransportProtocol = tc.proto }), timeout)
			took := time.Since(start)
			dnsWantFailure(t, r, "")
			if r.QuerySucceeded {
				t.Error("query_succeeded on a timeout")
			}
			if took < timeout-50*time.Millisecond {
				t.Errorf("probe gave up after %v, before the %v timeout", took, timeout)
			}
			// Generous: the probe must stop at the deadline, not seconds later.
			if took > timeout+2*time.Second {
				t.Errorf("probe took %v, timeout was %v", took, timeout)
			}
		})
	}
}

// TestDNSDeadServer: nothing listens, or a socket swallows the query.
func TestDNSDeadServer(t *testing.T) {
	closedPort := func(network string) string {
		t.Helper()
		if network == "udp" {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			a := c.LocalAddr().String()
			_ = c.Close()
			return a
		}
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		_ = l.Close()
		return a
	}
	blackhole, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = blackhole.Close() })

	const timeout = 2 * time.Second
	tcpClosed, dohClosed := closedPort("tcp"), closedPort("tcp")
	tests := []struct {
		name, target, proto, err string
		// cause is what the diagnosis shows: no addresses but the ones the
		// prober's own words name.
		cause string
	}{
		{"udp closed port", closedPort("udp"), "", "connection refused", "reading answer: read: connection refused"},
		{"tcp closed port", tcpClosed, "tcp", "connection refused", "connecting to " + tcpClosed + " over tcp4: connect: connection refused"},
		{"doh closed port", "http://" + dohClosed + "/dns-query", "", "connection refused", "DNS over HTTPS request to http://" + dohClosed + "/dns-query: connect: connection refused"},
		{"udp black hole", blackhole.LocalAddr().String(), "", "before the probe timeout", "no complete answer: i/o timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runDNS(t, tc.target, dnsModule(func(d *config.DNSProbe) { d.TransportProtocol = tc.proto }), timeout)
			dnsWantFailure(t, r, tc.err)
			if r.Cause != tc.cause {
				t.Errorf("cause %q of error %q, want %q", r.Cause, r.Error, tc.cause)
			}
			if took := time.Since(start); took > timeout+2*time.Second {
				t.Errorf("probe took %v with a %v timeout", took, timeout)
			}
		})
	}
}

// dnsRawUDPServer answers every datagram with what reply returns (nil: none).
func dnsRawUDPServer(t *testing.T, reply func(query []byte) [][]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, out := range reply(append([]byte(nil), buf[:n]...)) {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// dnsRawTCPServer answers the first query of each connection with the bytes
// reply returns, written as they are (length prefix included by reply).
func dnsRawTCPServer(t *testing.T, reply func(query []byte) []byte) string {
	t.Helper()
	return testserver.TCP(t, "tcp4", dnsTestTimeout, func(c net.Conn) {
		var lb [2]byte
		if _, err := io.ReadFull(c, lb[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(lb[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		_, _ = c.Write(reply(q))
	})
}

func dnsFramed(b []byte) []byte {
	out := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(out, uint16(len(b)))
	copy(out[2:], b)
	return out
}

// dnsAnswerBytes is a well-formed answer to query, changed by mod.
func dnsAnswerBytes(query []byte, mod func(m *dns.Msg)) []byte {
	q := &dns.Msg{}
	if err := q.Unpack(query); err != nil {
		return nil
	}
	m := dnsZoneResponder(q, "udp")
	if mod != nil {
		mod(m)
	}
	out, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return out
}

// TestDNSHostileResponses: malformed or hostile answers fail the probe with a
// clear reason, never a panic and never a success.
func TestDNSHostileResponses(t *testing.T) {
	withID := func(query, b []byte) []byte {
		out := append([]byte(nil), b...)
		if len(out) >= 2 && len(query) >= 2 {
			copy(out, query[:2])
		}
		return out
	}
	udpTests := []struct {
		name  string
		reply func(q []byte) [][]byte
		err   string
	}{
		{"echo of the query", func(q []byte) [][]byte { return [][]byte{q} }, "not a response (QR bit clear)"},
		{"too short", func(q []byte) [][]byte { return [][]byte{q[:5]} }, "shorter than a 12-byte DNS header"},
		{"garbage after a header", func(q []byte) [][]byte {
			return [][]byte{withID(q, []byte{0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff})}
		}, "malformed answer"},
		{"compression pointer loop", func(q []byte) [][]byte {
			return [][]byte{withID(q, []byte{0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1})}
		}, "malformed answer"},
		{"answer for another question", func(q []byte) [][]byte {
			return [][]byte{dnsAnswerBytes(q, func(m *dns.Msg) { m.Question[0].Name = "evil.example." })}
		}, "answer is for another question"},
		{"wrong opcode", func(q []byte) [][]byte {
			return [][]byte{dnsAnswerBytes(q, func(m *dns.Msg) { m.Opcode = dns.OpcodeStatus })}
		}, "opcode"},
		{"wrong ID only (spoof), ignored until timeout", func(q []byte) [][]byte {
			return [][]byte{dnsAnswerBytes(q, func(m *dns.Msg) { m.Id++ })}
		}, "datagrams with a wrong ID or too short ignored"},
		{"truncated and unparsable", func(q []byte) [][]byte {
			return [][]byte{withID(q, []byte{0, 0, 0x83, 0x80, 0, 1, 0, 5, 0, 0, 0, 0, 7, 'e'})}
		}, "truncated answer (TC bit) cannot be parsed"},
	}
	for _, tc := range udpTests {
		t.Run("udp/"+tc.name, func(t *testing.T) {
			addr := dnsRawUDPServer(t, tc.reply)
			r := runDNS(t, addr, dnsModule(nil), 2*time.Second)
			dnsWantFailure(t, r, tc.err)
			if r.QuerySucceeded {
				t.Error("query_succeeded on a hostile answer")
			}
		})
	}
	t.Run("udp/spoofed answer first, then the right one", func(t *testing.T) {
		addr := dnsRawUDPServer(t, func(q []byte) [][]byte {
			return [][]byte{
				dnsAnswerBytes(q, func(m *dns.Msg) { m.Id++; m.Answer = []dns.RR{dnsRR("example.com. 1 IN A 127.0.0.1")} }),
				{1},
				dnsAnswerBytes(q, nil),
			}
		})
		r := runDNS(t, addr, dnsModule(nil), dnsTestTimeout)
		dnsWantSuccess(t, r)
		if r.AnswerRRs != 2 {
			t.Errorf("answer_rrs %d: the spoofed answer was taken", r.AnswerRRs)
		}
	})

	tcpTests := []struct {
		name  string
		reply func(q []byte) []byte
		err   string
	}{
		{"zero length", func([]byte) []byte { return []byte{0, 0} }, "zero-length answer"},
		{"short body", func([]byte) []byte { return []byte{0, 40, 1, 2, 3} }, "reading 40-byte answer"},
		{"closed at once", func([]byte) []byte { return nil }, "reading answer length"},
		{"wrong ID", func(q []byte) []byte { return dnsFramed(dnsAnswerBytes(q, func(m *dns.Msg) { m.Id++ })) }, "does not match query ID"},
		{"right answer", func(q []byte) []byte { return dnsFramed(dnsAnswerBytes(q, nil)) }, ""},
	}
	for _, tc := range tcpTests {
		t.Run("tcp/"+tc.name, func(t *testing.T) {
			addr := dnsRawTCPServer(t, tc.reply)
			r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.TransportProtocol = "tcp" }), dnsTestTimeout)
			if tc.err == "" {
				dnsWantSuccess(t, r)
				return
			}
			dnsWantFailure(t, r, tc.err)
		})
	}
}

func TestDNSOverHTTPSErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "nope", http.StatusServiceUnavailable) })
	mux.HandleFunc("/ctype", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/dns-query", http.StatusFound) })
	mux.HandleFunc("/huge", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/dns-message")
		_, _ = w.Write(make([]byte, 70000))
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/dns-message")
		_, _ = w.Write([]byte{0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xff})
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	for _, tc := range []struct{ path, err string }{
		{"/status", "answered HTTP 503, want 200"},
		{"/ctype", `Content-Type "text/html; charset=utf-8", want application/dns-message`},
		{"/redirect", "redirects are not followed"},
		{"/huge", "larger than 65535 bytes"},
		{"/garbage", "malformed answer"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := runDNS(t, ts.URL+tc.path, dnsModule(nil), dnsTestTimeout)
			dnsWantFailure(t, r, tc.err)
		})
	}
	t.Run("wrong CA", func(t *testing.T) {
		_, u := startDoHServer(t, true, dnsZoneResponder)
		r := runDNS(t, u, dnsModule(nil), dnsTestTimeout)
		dnsWantFailure(t, r, "certificate")
	})
	t.Run("bare host with dns_over_https", func(t *testing.T) {
		ts, u := startDoHServer(t, true, dnsZoneResponder)
		host := strings.TrimSuffix(strings.TrimPrefix(u, "https://"), "/dns-query")
		r := runDNS(t, host, dnsModule(func(d *config.DNSProbe) {
			d.DNSOverHTTPS = true
			d.TLSConfig.CA = dnsCAPEM(ts)
		}), dnsTestTimeout)
		dnsWantSuccess(t, r)
		if r.Server != u {
			t.Errorf("server %q, want %q", r.Server, u)
		}
	})
}

func TestDNSOverTLSErrors(t *testing.T) {
	addr := startDNSServer(t, "tls", dnsZoneResponder)
	t.Run("unknown CA", func(t *testing.T) {
		r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.DNSOverTLS = true }), dnsTestTimeout)
		dnsWantFailure(t, r, "TLS handshake")
	})
	t.Run("server name from tls_config", func(t *testing.T) {
		r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) {
			d.DNSOverTLS = true
			d.TLSConfig.CA = dnsTestCert(t).pem
			d.TLSConfig.ServerName = "dns.test"
		}), dnsTestTimeout)
		dnsWantSuccess(t, r)
	})
	t.Run("wrong server name", func(t *testing.T) {
		r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) {
			d.DNSOverTLS = true
			d.TLSConfig.CA = dnsTestCert(t).pem
			d.TLSConfig.ServerName = "other.test"
		}), dnsTestTimeout)
		dnsWantFailure(t, r, `server name "other.test"`)
	})
	t.Run("plain DNS server is not DoT", func(t *testing.T) {
		plain := startDNSServer(t, "tcp", dnsZoneResponder)
		r := runDNS(t, plain, dnsModule(func(d *config.DNSProbe) {
			d.DNSOverTLS = true
			d.TLSConfig.CA = dnsTestCert(t).pem
		}), 3*time.Second)
		dnsWantFailure(t, r, "TLS handshake")
	})
}

// TestDNSTargetPolicy: a denied server gets no query, over any transport.
func TestDNSTargetPolicy(t *testing.T) {
	var queries atomic.Int32
	counting := func(q *dns.Msg, tr string) *dns.Msg {
		queries.Add(1)
		return dnsZoneResponder(q, tr)
	}
	udp := startDNSServer(t, "udp", counting)
	_, doh := startDoHServer(t, false, counting)
	deny := config.DefaultTargetPolicy()
	deny.DenyNetworks = append(deny.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.0/8")})
	var denied atomic.Int32
	p := NewPolicy(deny, func() { denied.Add(1) })
	for _, target := range []string{udp, doh} {
		r := runDNSPolicy(t, target, dnsModule(nil), dnsTestTimeout, p)
		dnsWantFailure(t, r, "by target_policy: ")
	}
	if queries.Load() != 0 {
		t.Errorf("%d queries reached a denied server", queries.Load())
	}
	if denied.Load() == 0 {
		t.Error("OnDeny not called")
	}
	// Allowed: the same policy type with loopback allowed works.
	allow := config.DefaultTargetPolicy()
	allow.AllowNetworks = []config.Network{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}}
	dnsWantSuccess(t, runDNSPolicy(t, udp, dnsModule(nil), dnsTestTimeout, NewPolicy(allow, nil)))
	dnsWantSuccess(t, runDNSPolicy(t, doh, dnsModule(nil), dnsTestTimeout, NewPolicy(allow, nil)))
}

func TestDNSSourceIPAddress(t *testing.T) {
	addr := startDNSServer(t, "udp", dnsZoneResponder)
	r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.SourceIPAddress = "127.0.0.1" }), dnsTestTimeout)
	dnsWantSuccess(t, r)
	r = runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.SourceIPAddress = "192.0.2.99" }), dnsTestTimeout)
	dnsWantFailure(t, r, "connecting to")
}

func TestParseDNSTarget(t *testing.T) {
	tests := []struct {
		target string
		mod    func(*config.DNSProbe)
		want   dnsTarget
		url    string
		err    string
	}{
		{"192.0.2.1", nil, dnsTarget{transport: "udp", host: "192.0.2.1", port: "53"}, "", ""},
		{"ns.example:5353", nil, dnsTarget{transport: "udp", host: "ns.example", port: "5353"}, "", ""},
		{"[2001:db8::1]:53", nil, dnsTarget{transport: "udp", host: "2001:db8::1", port: "53"}, "", ""},
		{"2001:db8::1", nil, dnsTarget{transport: "udp", host: "2001:db8::1", port: "53"}, "", ""},
		{"[2001:db8::1]", nil, dnsTarget{transport: "udp", host: "2001:db8::1", port: "53"}, "", ""},
		{"192.0.2.1", func(d *config.DNSProbe) { d.TransportProtocol = "tcp" }, dnsTarget{transport: "tcp", host: "192.0.2.1", port: "53"}, "", ""},
		{"dns.example", func(d *config.DNSProbe) { d.DNSOverTLS = true }, dnsTarget{transport: "tls", host: "dns.example", port: "853"}, "", ""},
		{"dns.example:8853", func(d *config.DNSProbe) { d.DNSOverTLS = true }, dnsTarget{transport: "tls", host: "dns.example", port: "8853"}, "", ""},
		{"https://dns.example/dns-query", nil, dnsTarget{transport: "https", host: "dns.example", port: "443"}, "https://dns.example/dns-query", ""},
		{"HTTPS://dns.example", nil, dnsTarget{transport: "https", host: "dns.example", port: "443"}, "https://dns.example/dns-query", ""},
		{"http://[2001:db8::1]:8080/q?x=1", nil, dnsTarget{transport: "https", host: "2001:db8::1", port: "8080"}, "http://[2001:db8::1]:8080/q?x=1", ""},
		{"dns.example", func(d *config.DNSProbe) { d.DNSOverHTTPS = true }, dnsTarget{transport: "https", host: "dns.example", port: "443"}, "https://dns.example/dns-query", ""},
		{"2001:db8::1", func(d *config.DNSProbe) { d.DNSOverHTTPS = true }, dnsTarget{transport: "https", host: "2001:db8::1", port: "443"}, "https://[2001:db8::1]/dns-query", ""},
		{"[2001:db8::1]:8443", func(d *config.DNSProbe) { d.DNSOverHTTPS = true }, dnsTarget{transport: "https", host: "2001:db8::1", port: "8443"}, "https://[2001:db8::1]:8443/dns-query", ""},
		{"", nil, dnsTarget{}, "", "target is empty"},
		{":53", nil, dnsTarget{}, "", "has no host"},
		{"host:99999", nil, dnsTarget{}, "", "invalid port"},
		{"https://", nil, dnsTarget{}, "", "has no host"},
		{"https://u:p@dns.example/", nil, dnsTarget{}, "", "user information"},
		{"https://dns.example/", func(d *config.DNSProbe) { d.DNSOverTLS = true }, dnsTarget{}, "", "sets dns_over_tls"},
		{"https://dns.example/", func(d *config.DNSProbe) { d.TransportProtocol = "udp" }, dnsTarget{}, "", "transport_protocol udp"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			cfg := dnsModule(tc.mod).DNS
			got, err := parseDNSTarget(tc.target, &cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := ""
			if got.url != nil {
				u = got.url.String()
			}
			got.url = nil
			if got != tc.want || u != tc.url {
				t.Errorf("got %+v %q, want %+v %q", got, u, tc.want, tc.url)
			}
		})
	}
}

// TestDNSResultJSON: the Result is the source of truth for reports; its JSON
// uses snake_case keys.
func TestDNSResultJSON(t *testing.T) {
	addr := startDNSServer(t, "udp", dnsZoneResponder)
	r := runDNS(t, addr, dnsModule(func(d *config.DNSProbe) { d.QueryType = "SOA" }), dnsTestTimeout)
	dnsWantSuccess(t, r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"prober", "success", "transport", "server", "query_name", "query_type", "phases",
		"query_succeeded", "rcode", "rcode_value", "answer_rrs", "authority_rrs", "additional_rrs", "serial", "answer_min_ttl_seconds"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if ph, _ := m["phases"].(map[string]any); ph == nil || ph["request_seconds"] == nil {
		t.Errorf("phases: %v", m["phases"])
	}
}

// TestDNSConfigFixtures loads config/testdata/dns-*.yml: the good ones load
// with the expected options, the bad ones fail with the exact message.
func TestDNSConfigFixtures(t *testing.T) {
	dir := filepath.Join("..", "config", "testdata")
	c, err := config.LoadFile(filepath.Join(dir, "dns-good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Modules["dns_doh_get"].DNS
	if !d.DNSOverHTTPS || d.DoHMethod != "GET" || !d.DNSSEC || !d.FailIfNotAuthenticated || d.EDNS0UDPSize != 1400 || !d.RetryTruncatedOverTCP {
		t.Errorf("dns_doh_get options not applied: %+v", d)
	}
	d = c.Modules["dns_blackbox_udp"].DNS
	if d.DoHMethod != "POST" || d.DNSSEC || d.RetryTruncatedOverTCP || d.EDNS0UDPSize != 0 || !d.Recursion || !d.IPProtocolFallback {
		t.Errorf("dns defaults wrong: %+v", d)
	}
	if c.Modules["dns_dot"].DNS.TransportProtocol != "" || !c.Modules["dns_dot"].DNS.DNSOverTLS {
		t.Errorf("dns_dot: %+v", c.Modules["dns_dot"].DNS)
	}

	bad := []struct{ file, err string }{
		{"dns-bad-doh-method.yml", `module "dns": dns: doh_method "PUT" is not valid (GET or POST)`},
		{"dns-bad-dot-and-doh.yml", "module \"dns\": dns: dns_over_tls and dns_over_https cannot both be set"},
		{"dns-bad-doh-udp.yml", "module \"dns\": dns: dns_over_https runs over TCP: remove transport_protocol udp"},
		{"dns-bad-auth-without-dnssec.yml", "module \"dns\": dns: fail_if_not_authenticated needs dnssec: true"},
		{"dns-bad-edns-size.yml", "module \"dns\": dns: edns0_udp_size 100 is too small: 512 is the minimum (RFC 6891)"},
		{"dns-bad-edns-size-range.yml", "module \"dns\": line 6: cannot unmarshal !!int `70000` into uint16"},
		{"dns-bad-rcode.yml", `module "dns": dns: valid_rcodes: "NOTANRCODE" is not a DNS response code`},
		{"dns-bad-class.yml", "module \"dns\": dns: query class 'XX' is not valid"},
		{"dns-bad-transport.yml", `module "dns": dns: transport_protocol "quic" is not valid (udp or tcp)`},
		{"dns-bad-query-name.yml", `module "dns": dns: query name "bad..name" is not a valid domain name`},
		{"dns-bad-unknown-field.yml", `module "dns": line 6: unknown field "dns_over_quic" in dns`},
	}
	for _, tc := range bad {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			_, err := config.LoadFile(path)
			if err == nil {
				t.Fatal("expected an error")
			}
			want := "parsing config file " + path + ": " + tc.err
			if err.Error() != want {
				t.Errorf("error mismatch\n got: %s\nwant: %s", err, want)
			}
		})
	}
}

// TestDNSNoDeadline: a context without a deadline still ends.
func TestDNSNoDeadline(t *testing.T) {
	addr := startDNSServer(t, "udp", dnsZoneResponder)
	res := Run(context.Background(), ProbeDNS, Request{Target: addr, Module: new(dnsModule(nil)), Logger: dnsTestLogger(t)})
	if !res.Base().Success {
		t.Fatal(res.Base().Error)
	}
	ctx, cancel := context.WithCancel(context.Background())
	blackhole, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	time.AfterFunc(200*time.Millisecond, cancel)
	res = Run(ctx, ProbeDNS, Request{Target: blackhole.LocalAddr().String(), Module: new(dnsModule(nil)), Logger: dnsTestLogger(t)})
	if res.Base().Success || !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("cancelled probe: %+v", res.Base())
	}
}
