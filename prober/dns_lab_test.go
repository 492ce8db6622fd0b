package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/syncbuf"
)

// The lab tests run the prober against dnsmasq, a real DNS server nobody
// here wrote, on a random loopback port. dnsmasq comes from Debian's
// dnsmasq-base package (the binary only, no service). Without it the tests
// skip, except under CI=true, where they fail.

const dnsLabSerial = 2024052001

// dnsLabYAML holds modules written exactly as blackbox_exporter
// documents them (its example.yml shapes), aimed at the lab zone.
const dnsLabYAML = `
modules:
  dns_udp_example:
    prober: dns
    timeout: 5s
    dns:
      query_name: "www.lab.example"
      query_type: "A"
      valid_rcodes:
        - NOERROR
      validate_answer_rrs:
        fail_if_matches_regexp:
          - ".*127.0.0.1"
        fail_if_all_match_regexp:
          - ".*192.0.2.*"
        fail_if_not_matches_regexp:
          - "www.lab.example.\t300\tIN\tA\t192.0.2.2[01]"
        fail_if_none_matches_regexp:
          - "192.0.2.21"
      validate_authority_rrs:
        fail_if_matches_regexp:
          - ".*127.0.0.1"
      validate_additional_rrs:
        fail_if_matches_regexp:
          - ".*127.0.0.1"
  dns_tcp_example:
    prober: dns
    dns:
      transport_protocol: "tcp" # defaults to "udp"
      preferred_ip_protocol: "ip4" # defaults to "ip6"
      query_name: "www.lab.example"
  dns_soa:
    prober: dns
    dns:
      query_name: "lab.example"
      query_type: "SOA"
  dns_hijack_detect:
    prober: dns
    timeout: 5s
    dns:
      query_name: "hijack.lab.example"
      query_type: "A"
      validate_answer_rrs:
        fail_if_matches_regexp:
          - ".*127.0.0.1"
  dns_expect_other_address:
    prober: dns
    dns:
      query_name: "www.lab.example"
      query_type: "A"
      validate_answer_rrs:
        fail_if_none_matches_regexp:
          - "192.0.2.99"
  dns_nxdomain_default:
    prober: dns
    dns:
      query_name: "nope.lab.example"
      query_type: "A"
  dns_nxdomain_expected:
    prober: dns
    dns:
      query_name: "nope.lab.example"
      query_type: "A"
      valid_rcodes: [NXDOMAIN]
      validate_authority_rrs:
        fail_if_not_matches_regexp:
          - "IN\tSOA\tns.lab.example."
  dns_refused:
    prober: dns
    dns:
      query_name: "elsewhere.test"
      query_type: "A"
  dns_big_txt:
    prober: dns
    dns:
      query_name: "big.lab.example"
      query_type: "TXT"
  dns_big_txt_retry:
    prober: dns
    dns:
      query_name: "big.lab.example"
      query_type: "TXT"
      retry_truncated_over_tcp: true
      validate_answer_rrs:
        fail_if_none_matches_regexp:
          - "xxxxx5"
`

type dnsmasqServer struct {
	addr string
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan error
}

// dnsmasqPath finds dnsmasq, or skips (fails under CI=true).
func dnsmasqPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/dnsmasq"); serr == nil {
			p, err = "/usr/sbin/dnsmasq", nil
		}
	}
	if err != nil {
		msg := "dnsmasq not found: install the Debian package dnsmasq-base (apt-get install -y dnsmasq-base) to run the DNS lab tests"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// dnsFreeLoopbackPort returns a port free for both UDP and TCP on 127.0.0.1.
func dnsFreeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = pc.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}

// startDnsmasq runs dnsmasq authoritative for lab.example on a random
// loopback port, over UDP and TCP, and waits until it answers.
func startDnsmasq(t *testing.T) *dnsmasqServer {
	t.Helper()
	bin := dnsmasqPath(t)
	var txt []string
	for i := range 6 {
		txt = append(txt, fmt.Sprintf("%q", strings.Repeat("x", 200)+strconv.Itoa(i)))
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := dnsFreeLoopbackPort(t)
		args := []string{
			"--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=",
			"--no-resolv", "--no-hosts", "--no-poll",
			"--bind-interfaces", "--listen-address=127.0.0.1", "--port=" + strconv.Itoa(port),
			"--log-facility=-", "--log-queries",
			"--local-ttl=300", "--auth-ttl=300",
			"--auth-zone=lab.example", "--auth-server=ns.lab.example,127.0.0.1",
			fmt.Sprintf("--auth-soa=%d,hostmaster.lab.example", dnsLabSerial),
			"--host-record=www.lab.example,192.0.2.20",
			"--host-record=www.lab.example,192.0.2.21",
			"--host-record=hijack.lab.example,127.0.0.1",
			"--txt-record=big.lab.example," + strings.Join(txt, ","),
		}
		if os.Geteuid() == 0 {
			// Stay root rather than switch to a user the system may lack.
			args = append(args, "--user=root", "--group=root")
		}
		d := &dnsmasqServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), log: &syncbuf.Buffer{}, done: make(chan error, 1)}
		d.cmd = exec.Command(bin, args...)
		d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
		if err := d.cmd.Start(); err != nil {
			t.Fatalf("starting dnsmasq: %v", err)
		}
		go func() { d.done <- d.cmd.Wait() }()
		if err := d.waitReady(10 * time.Second); err != nil {
			d.stop()
			lastErr = fmt.Errorf("%w\ndnsmasq output:\n%s", err, d.log.String())
			continue
		}
		t.Cleanup(func() {
			d.stop()
			if t.Failed() {
				t.Logf("dnsmasq output:\n%s", d.log.String())
			}
		})
		return d
	}
	t.Fatalf("dnsmasq did not start: %v", lastErr)
	return nil
}

func (d *dnsmasqServer) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	q := &dns.Msg{}
	q.SetQuestion("lab.example.", dns.TypeSOA)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			d.done <- err
			return fmt.Errorf("dnsmasq exited: %v", err)
		default:
		}
		if r, _, err := c.Exchange(q, d.addr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("dnsmasq did not answer within " + limit.String())
}

// stop ends the dnsmasq this test started (by its own process handle).
func (d *dnsmasqServer) stop() {
	if d.cmd.Process == nil {
		return
	}
	select {
	case err := <-d.done:
		d.done <- err
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		d.done <- <-d.done
	}
}

func dnsLabModules(t *testing.T) map[string]config.Module {
	t.Helper()
	c, err := config.Load([]byte(dnsLabYAML), "")
	if err != nil {
		t.Fatalf("blackbox modules do not load: %v", err)
	}
	mods := make(map[string]config.Module, len(c.Modules))
	for name, m := range c.Modules {
		mods[name] = *m // the tests' own copies, to change
	}
	return mods
}

// dnsLabRun runs a module from dnsLabYAML within its own timeout, as the
// /probe handler would.
func dnsLabRun(t *testing.T, target string, m config.Module) *DNSResult {
	t.Helper()
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return runDNS(t, target, m, timeout)
}

func TestDNSLabDnsmasq(t *testing.T) {
	d := startDnsmasq(t)
	mods := dnsLabModules(t)

	t.Run("blackbox udp module", func(t *testing.T) {
		r := dnsLabRun(t, d.addr, mods["dns_udp_example"])
		dnsWantSuccess(t, r)
		if r.Transport != DNSTransportUDP || r.AnswerRRs != 2 || r.Rcode != "NOERROR" || !r.QuerySucceeded {
			t.Errorf("transport=%s answer_rrs=%d rcode=%s query_succeeded=%v", r.Transport, r.AnswerRRs, r.Rcode, r.QuerySucceeded)
		}
		if r.AnswerMinTTLSeconds == nil || *r.AnswerMinTTLSeconds != 300 {
			t.Errorf("min TTL %v, want 300", r.AnswerMinTTLSeconds)
		}
	})
	t.Run("blackbox tcp module", func(t *testing.T) {
		r := dnsLabRun(t, d.addr, mods["dns_tcp_example"])
		dnsWantSuccess(t, r)
		if r.Transport != DNSTransportTCP || r.QueryType != "ANY" {
			t.Errorf("transport=%s query_type=%s, want tcp ANY (blackbox's default type)", r.Transport, r.QueryType)
		}
	})
	for _, proto := range []string{"udp", "tcp"} {
		t.Run("soa serial over "+proto, func(t *testing.T) {
			m := mods["dns_soa"]
			m.DNS.TransportProtocol = proto
			r := dnsLabRun(t, d.addr, m)
			dnsWantSuccess(t, r)
			if r.Serial == nil || *r.Serial != dnsLabSerial {
				t.Errorf("serial %v, want %d", r.Serial, dnsLabSerial)
			}
		})
		t.Run("wrong answer fails validation over "+proto, func(t *testing.T) {
			m := mods["dns_hijack_detect"]
			m.DNS.TransportProtocol = proto
			r := dnsLabRun(t, d.addr, m)
			dnsWantFailure(t, r, `matched fail_if_matches_regexp ".*127.0.0.1"`)
			m = mods["dns_expect_other_address"]
			m.DNS.TransportProtocol = proto
			r = dnsLabRun(t, d.addr, m)
			dnsWantFailure(t, r, "no record matched any fail_if_none_matches_regexp")
			if !r.QuerySucceeded {
				t.Error("query_succeeded must stay 1 on a validation failure")
			}
		})
		t.Run("nxdomain against valid_rcodes over "+proto, func(t *testing.T) {
			m := mods["dns_nxdomain_default"]
			m.DNS.TransportProtocol = proto
			dnsWantFailure(t, dnsLabRun(t, d.addr, m), "rcode NXDOMAIN is not one of the valid rcodes NOERROR")
			m = mods["dns_nxdomain_expected"]
			m.DNS.TransportProtocol = proto
			dnsWantSuccess(t, dnsLabRun(t, d.addr, m))
		})
		t.Run("refused over "+proto, func(t *testing.T) {
			m := mods["dns_refused"]
			m.DNS.TransportProtocol = proto
			dnsWantFailure(t, dnsLabRun(t, d.addr, m), "rcode REFUSED")
		})
	}
	t.Run("truncated answer judged as blackbox does", func(t *testing.T) {
		r := dnsLabRun(t, d.addr, mods["dns_big_txt"])
		dnsWantSuccess(t, r)
		if !r.Truncated || r.RetriedOverTCP || r.AnswerRRs != 0 {
			t.Errorf("truncated=%v retried=%v answer_rrs=%d, want true false 0", r.Truncated, r.RetriedOverTCP, r.AnswerRRs)
		}
	})
	t.Run("truncated answer retried over tcp", func(t *testing.T) {
		r := dnsLabRun(t, d.addr, mods["dns_big_txt_retry"])
		dnsWantSuccess(t, r)
		if !r.Truncated || !r.RetriedOverTCP || r.AnswerRRs != 1 {
			t.Errorf("truncated=%v retried=%v answer_rrs=%d, want true true 1", r.Truncated, r.RetriedOverTCP, r.AnswerRRs)
		}
	})
	t.Run("dead server fails within the module timeout", func(t *testing.T) {
		d.stop()
		for _, name := range []string{"dns_udp_example", "dns_tcp_example"} {
			m := mods[name]
			m.Timeout = 3 * time.Second
			start := time.Now()
			r := dnsLabRun(t, d.addr, m)
			dnsWantFailure(t, r, "")
			if took := time.Since(start); took > m.Timeout+2*time.Second {
				t.Errorf("%s: dead server probe took %v, timeout %v", name, took, m.Timeout)
			}
		}
	})
}

// TestDNSLabDnsmasqCancel: a probe whose context is already cancelled fails
// at once instead of querying.
func TestDNSLabDnsmasqCancel(t *testing.T) {
	d := startDnsmasq(t)
	m := dnsLabModules(t)["dns_udp_example"]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Run(ctx, ProbeDNS, Request{Target: d.addr, Module: &m, Logger: dnsTestLogger(t)})
	if res.Base().Success {
		t.Fatal("a cancelled probe succeeded")
	}
}
