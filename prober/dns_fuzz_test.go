package prober

import (
	"encoding/binary"
	"log/slog"
	"testing"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/isp-checker/isp-checker/config"
)

// fuzzDNSModule has every check the prober can run on an answer, so the
// fuzzer reaches all of them: rcodes, all four regexp lists on all three
// sections, and DNSSEC.
func fuzzDNSModule() config.DNSProbe {
	re := func(s string) []config.Regexp { return []config.Regexp{config.MustNewRegexp(s)} }
	v := config.DNSRRValidator{
		FailIfMatchesRegexp:     re(`127\.0\.0\.1`),
		FailIfAllMatchRegexp:    re(`\tIN\t`),
		FailIfNotMatchesRegexp:  re(`.`),
		FailIfNoneMatchesRegexp: re(`example`),
	}
	d := config.DefaultDNSProbe()
	d.QueryName = "example.com"
	d.ValidRcodes = []string{"NOERROR", "NXDOMAIN"}
	d.ValidateAnswer, d.ValidateAuthority, d.ValidateAdditional = v, v, v
	d.DNSSEC = true
	d.FailIfNotAuthenticated = true
	return d
}

// FuzzDNSResponse feeds arbitrary bytes to judgeDNSResponse, the function
// every transport's answer goes through. It must never panic, must fail
// every answer it cannot parse, and must never succeed without a parsed
// answer. When matchQuestion is set the query takes the answer's ID and
// question, so the fuzzer gets past those checks into the judging.
//
// Run: go test ./prober/ -run '^$' -fuzz FuzzDNSResponse -fuzztime 60s
func FuzzDNSResponse(f *testing.F) {
	for _, seed := range dnsFuzzSeeds() {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	logger := slog.New(slog.DiscardHandler)
	cfg := fuzzDNSModule()
	f.Fuzz(func(t *testing.T, raw []byte, matchQuestion bool) {
		query := &dns.Msg{}
		query.Opcode = dns.OpcodeQuery
		query.Question = []dns.Question{{Name: "example.com.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
		if len(raw) >= 2 {
			query.Id = binary.BigEndian.Uint16(raw)
		}
		if matchQuestion {
			var m dns.Msg
			if m.Unpack(raw) == nil && len(m.Question) == 1 {
				query.Question = m.Question
				query.Opcode = m.Opcode
			}
		}
		res := &DNSResult{DNSSECRequested: true}
		ok := judgeDNSResponse(raw, query, &cfg, res, logger)
		if ok != res.Success && res.Success {
			t.Fatalf("judge returned %v but the result says success", ok)
		}
		if ok && !res.QuerySucceeded {
			t.Fatal("success without a parsed answer")
		}
		if !ok && res.Error == "" {
			t.Fatal("failure without a reason")
		}
		if ok && len(res.ValidationFailures) > 0 {
			t.Fatalf("success with validation failures %q", res.ValidationFailures)
		}
		if res.QuerySucceeded {
			var m dns.Msg
			if err := m.Unpack(raw); err != nil {
				t.Fatalf("query_succeeded on an answer that does not unpack: %v", err)
			}
			if res.AnswerRRs != len(m.Answer) || res.RcodeValue == nil || res.Rcode == "" {
				t.Fatalf("counts or rcode not recorded: %+v", res)
			}
			if len(res.Answer) > dnsMaxAnswerStrings {
				t.Fatalf("%d answer strings kept", len(res.Answer))
			}
			for _, a := range res.Answer {
				if len(a) > dnsMaxRRString+len("…") || !utf8.ValidString(a) {
					t.Fatalf("answer string not clipped or not UTF-8: %q", a)
				}
			}
		}
	})
}

// dnsFuzzSeeds are a few answers worth mutating; the committed corpus in
// testdata/fuzz/FuzzDNSResponse holds more.
func dnsFuzzSeeds() [][]byte {
	q := &dns.Msg{}
	q.SetQuestion("example.com.", dns.TypeA)
	q.Id = 0x1234
	q.SetEdns0(1232, true)
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		return b
	}
	ok := dnsZoneResponder(q, "udp")
	soaQ := q.Copy()
	soaQ.Question[0].Qtype = dns.TypeSOA
	soa := dnsZoneResponder(soaQ, "udp")
	nx := q.Copy()
	nx.Question[0].Name = "nx.example.com."
	tc := ok.Copy()
	tc.Truncated = true
	tc.Answer = tc.Answer[:1]
	return [][]byte{
		pack(ok),
		pack(dnsZoneResponder(nx, "udp")),
		pack(soa),
		pack(tc),
		{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1},
		{0x12, 0x34, 0x83, 0x80, 0, 1, 0, 5, 0, 0, 0, 0},
	}
}
