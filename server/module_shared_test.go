package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/probers"
)

// sharedModulesYAML has a module of each prober that can run on loopback
// with nothing but what the test starts, with options in slices, maps and
// nested structs, where a prober that changed its module would change
// everyone's.
const sharedModulesYAML = `
modules:
  http:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      method: POST
      body: hello
      headers:
        X-Test: one
      valid_status_codes: [200, 204]
      fail_if_body_not_matches_regexp: ["^pong"]
      fail_if_header_not_matches:
        - header: X-Reply
          regexp: "^ok$"
      basic_auth:
        username: u
        password: hunter2
  tcp:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - send: "ping"
        - expect: "^pong"
  dns:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      transport_protocol: udp
      query_name: example.com
      query_type: A
      valid_rcodes: [NOERROR]
      validate_answer_rrs:
        fail_if_not_matches_regexp: ["example\\.com\\..*\\sA\\s+192\\.0\\.2\\.1"]
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      packets: 3
      interval: 10ms
`

// TestConcurrentProbesLeaveModuleUnchanged: a probe's request points at
// the loaded config's module, shared by every probe of it, so no prober may
// change it. Concurrent probes of each module through /probe (run with
// -race, a write to the shared module is a race) leave every module deeply
// equal to a fresh load of the same file.
func TestConcurrentProbesLeaveModuleUnchanged(t *testing.T) {
	targets := map[string]string{
		"http": startPongHTTP(t),
		"tcp":  startPongTCP(t),
		"dns":  startExampleDNS(t),
		"icmp": "127.0.0.1",
	}
	cfg, err := config.Load([]byte(sharedModulesYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := config.Load([]byte(sharedModulesYAML), "")
	if err != nil {
		t.Fatal(err)
	}
	// The comparison can only fail on a change if two loads compare equal.
	if !reflect.DeepEqual(cfg.Modules, want.Modules) {
		t.Fatal("two loads of one file differ: a deep comparison cannot show a change")
	}
	holder := config.NewHolder("", nil)
	holder.Set(cfg)
	s := httptest.NewServer(NewProbeHandler(ProbeOptions{Config: holder, Probers: probers.All()}))
	defer s.Close()

	const perModule = 12
	var wg sync.WaitGroup
	results := make(map[string][]string, len(targets))
	var mu sync.Mutex
	for name, target := range targets {
		for range perModule {
			wg.Go(func() {
				body := probeBody(t, s.URL+"/probe?module="+name+"&target="+target)
				mu.Lock()
				results[name] = append(results[name], body)
				mu.Unlock()
			})
		}
	}
	wg.Wait()

	for name, bodies := range results {
		for _, body := range bodies {
			// icmp needs a socket this user may open; the others must
			// succeed, so the test ran their whole path.
			if !strings.Contains(body, "\nprobe_success 1\n") && (name != "icmp" || os.Geteuid() == 0) {
				t.Errorf("module %s: probe failed:\n%s", name, body)
				break
			}
		}
	}
	for name, m := range cfg.Modules {
		if !reflect.DeepEqual(m, want.Modules[name]) {
			t.Errorf("module %s changed under its probes:\n got %+v\nwant %+v", name, *m, *want.Modules[name])
		}
	}
}

// TestReloadKeepsRunningProbesModule: a reload installs a new config; a
// probe that began before it keeps the module it began with, and one that
// begins after gets the new one.
func TestReloadKeepsRunningProbesModule(t *testing.T) {
	started := make(chan *config.Module, 2)
	release := make(chan struct{})
	hold := func(ctx context.Context, req *prober.Request) prober.Result {
		started <- req.Module
		select {
		case <-release:
		case <-ctx.Done():
		}
		// Read after the reload: what the probe reports is its own module's.
		return &blockResult{Common: prober.Common{Success: true}, Deadline: req.Module.Timeout.Seconds()}
	}
	render := collector.RendererOf(func(r *blockResult, e *collector.Emitter) {
		e.Gauge("probe_test_module_timeout_seconds", "The module's timeout as the probe saw it.", r.Deadline)
	})
	withTimeout := func(d time.Duration) *config.Config {
		m := config.DefaultModule()
		m.Prober, m.Timeout = "test_hold", d
		return &config.Config{Modules: map[string]*config.Module{"hold": &m}, TargetPolicy: config.DefaultTargetPolicy()}
	}
	oldCfg, newCfg := withTimeout(7*time.Second), withTimeout(9*time.Second)
	holder := config.NewHolder("", nil)
	holder.Set(oldCfg)
	s := httptest.NewServer(NewProbeHandler(ProbeOptions{
		Config:  holder,
		Probers: probers.Table{{Name: "test_hold", Probe: hold, Render: render}},
	}))
	defer s.Close()

	bodies := make([]string, 2)
	var wg sync.WaitGroup
	wg.Go(func() { bodies[0] = probeBody(t, s.URL+"/probe?module=hold&target=x") })
	if got := <-started; got != oldCfg.Modules["hold"] {
		t.Errorf("first probe's module is %p, want the loaded config's %p", got, oldCfg.Modules["hold"])
	}
	holder.Set(newCfg)
	wg.Go(func() { bodies[1] = probeBody(t, s.URL+"/probe?module=hold&target=x") })
	if got := <-started; got != newCfg.Modules["hold"] {
		t.Errorf("second probe's module is %p, want the reloaded config's %p", got, newCfg.Modules["hold"])
	}
	close(release)
	wg.Wait()
	for i, want := range []string{"7", "9"} {
		if line := "\nprobe_test_module_timeout_seconds " + want + "\n"; !strings.Contains(bodies[i], line) {
			t.Errorf("probe %d: want %q in\n%s", i+1, strings.TrimSpace(line), bodies[i])
		}
	}
	if oldCfg.Modules["hold"].Timeout != 7*time.Second {
		t.Errorf("the old config's module changed: timeout %v", oldCfg.Modules["hold"].Timeout)
	}
}

// probeBody GETs url and returns the body; a transport error fails t.
func probeBody(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// startPongHTTP serves what sharedModulesYAML's http module expects.
func startPongHTTP(t *testing.T) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "hunter2" || r.Header.Get("X-Test") != "one" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Reply", "ok")
		_, _ = io.WriteString(w, "pong\n")
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// startPongTCP answers "pong" to every line.
func startPongTCP(t *testing.T) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 64)
				if _, err := c.Read(buf); err == nil {
					_, _ = io.WriteString(c, "pong\n")
				}
			})
		}
	})
	return ln.Addr().String()
}

// startExampleDNS answers example.com A with 192.0.2.1 on loopback UDP.
func startExampleDNS(t *testing.T) string {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR(fmt.Sprintf("%s 60 IN A 192.0.2.1", q.Question[0].Name))
		m.Answer = append(m.Answer, rr)
		_ = w.WriteMsg(m)
	})}
	up := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(up) }
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	<-up
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return pc.LocalAddr().String()
}
