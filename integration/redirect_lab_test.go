//go:build linux

package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/batch"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/netlab"
	"github.com/isp-checker/isp-checker/internal/testserver"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/probers"
)

// The Done-when, in a lab:
//
//	client (the probers) ── meta
//	                         fd00:ec2::254:80      the EC2 IPv6 metadata address (denied by default)
//	                         fe80::254:80          link-local, dialled as fe80::254%<client if> (denied by default)
//	                         <v6>:81               metadata.internal, by an in-process DNS server (deny_hosts *.internal)
//	                         <v4>:80               stands in for 169.254.169.254 (deny_networks <v4>/32), for mapped forms
//	                         [<v6>]:8080           the redirector: 302, 307 or 308 to a Location given in the path
//
// Every listener counts the connections it accepts; the test fails if any
// is reached from the http prober, the throughput prober or the check
// path (batch.Run, which `isp-checker check` runs), for zoned, IPv4-mapped
// and IDNA forms of each, and if the denied name is ever looked up.
func TestRedirectBypassLab(t *testing.T) {
	lab := netlab.New(t)
	meta := lab.Node("meta")
	link := lab.Attach(meta, netlab.LinkOpts{})
	end := link.On(meta)
	clientIf := end.Peer().Name
	ec2, ll := netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("fe80::254")
	end.AddAddress(ec2)
	end.AddAddress(ll)
	v4, v6 := meta.IPv4(), meta.IPv6()

	hits := map[string]*atomic.Int64{}
	listen := func(name, addr string) string {
		var n atomic.Int64
		hits[name] = &n
		serveLab(t, meta.Listen("tcp", addr), &n, nil)
		return addr
	}
	listen("fd00:ec2::254", "[fd00:ec2::254]:80")
	listen("fe80::254", "[fe80::254%"+end.Name+"]:80")
	listen("metadata.internal", net.JoinHostPort(v6.String(), "81"))
	listen("v4 stand-in", net.JoinHostPort(v4.String(), "80"))
	var redirects atomic.Int64
	redirector := "http://" + net.JoinHostPort(v6.String(), "8080")
	serveLab(t, meta.Listen("tcp", net.JoinHostPort(v6.String(), "8080")), &redirects, http.HandlerFunc(labRedirect))

	res, zone := testserver.Resolver(t, map[string][]netip.Addr{"metadata.internal": {v6}})
	old := prober.Resolver
	prober.Resolver = res
	t.Cleanup(func() { prober.Resolver = old })

	pol := config.DefaultTargetPolicy()
	pol.DenyNetworks = append(pol.DenyNetworks, config.Network{Prefix: netip.PrefixFrom(v4, 32)})
	pol.DenyHosts = []string{"*.internal"}

	v4b := v4.As4()
	locations := []string{
		"http://[fd00:ec2::254%25x]/", "http://[fd00:ec2::254%25" + clientIf + "]/", "http://[FD00:EC2:0:0:0:0:0:254%25x]/",
		"http://[fe80::254%25" + clientIf + "]/", "http://[FE80:0::254%25" + clientIf + "]/",
		"http://metadata.ⓘⓝⓣⓔⓡⓝⓐⓛ:81/", "http://metadata。internal:81/", "http://metadata.ＩＮＴＥＲＮＡＬ:81/", "http://METADATA.internal.:81/",
		"http://[::ffff:" + v4.String() + "]/", fmt.Sprintf("http://[::ffff:%02x%02x:%02x%02x]/", v4b[0], v4b[1], v4b[2], v4b[3]),
	}
	var targets []string
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, loc := range locations {
			targets = append(targets, fmt.Sprintf("%s/%d?to=%s", redirector, code, urlQueryEscape(loc)))
		}
	}

	var denied atomic.Int64
	policy := prober.NewPolicy(pol, func() { denied.Add(1) })
	for _, p := range []string{"http", "throughput"} {
		m := labModule(t, p)
		for _, target := range targets {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r := probers.All().Run(ctx, prober.Request{Target: target, Module: &m, Policy: policy, Logger: slog.New(slog.DiscardHandler)})
			cancel()
			if b := r.Base(); b.Success || strings.Count(b.Error, "target_policy") != 1 {
				t.Errorf("%s %s: error %q, want one target_policy refusal", p, target, b.Error)
			}
		}
	}
	var list strings.Builder
	for _, target := range targets {
		list.WriteString(target + "\n")
	}
	in, err := batch.ReadInput(strings.NewReader(list.String()), batch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	rep := batch.Run(context.Background(), in, batch.Options{Module: labModule(t, "http"), Policy: pol, Concurrency: 4, Timeout: 10 * time.Second})
	if len(rep.Outcomes) != len(targets) {
		t.Fatalf("check: %d outcomes for %d URLs", len(rep.Outcomes), len(targets))
	}
	for _, o := range rep.Outcomes {
		if o.Status != batch.Error || strings.Count(o.Error, "target_policy") != 1 {
			t.Errorf("check %s: %s %q, want an error refused by target_policy", o.URL, o.Status, o.Error)
		}
	}

	var reached int64
	for name, n := range hits {
		reached += n.Load()
		if n.Load() != 0 {
			t.Errorf("%s was reached %d times", name, n.Load())
		}
	}
	if zone.Queries() != 0 {
		t.Errorf("the denied name was looked up %d times", zone.Queries())
	}
	// Ground truth that the redirects were served (to each of the three
	// paths) and refused by the policy (counted for the http and
	// throughput probes; batch.Run counts none), not failed by something else.
	if redirects.Load() < int64(3*len(targets)) || denied.Load() < int64(2*len(targets)) {
		t.Errorf("redirector served %d requests and the policy denied %d, want at least %d and %d", redirects.Load(), denied.Load(), 3*len(targets), 2*len(targets))
	}
	t.Logf("%d redirects served, %d denials, %d connections to the denied listeners", redirects.Load(), denied.Load(), reached)
}

// labRedirect answers /302?to=URL (or 307, 308) with that redirect.
func labRedirect(w http.ResponseWriter, r *http.Request) {
	var code int
	if _, err := fmt.Sscanf(r.URL.Path, "/%d", &code); err != nil || code < 300 || code > 399 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Location", r.URL.Query().Get("to"))
	w.WriteHeader(code)
}

func urlQueryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "?", "%3F", "#", "%23", "+", "%2B", " ", "%20")
	return r.Replace(s)
}

// serveLab serves HTTP on ln (h, or a page saying "reached") and counts
// accepted connections in n.
func serveLab(t *testing.T, ln net.Listener, n *atomic.Int64, h http.Handler) {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("reached")) })
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
}

// labModule is an http or throughput module as a config file would give it.
func labModule(t *testing.T, p string) config.Module {
	t.Helper()
	opts := "{}"
	if p == "throughput" {
		opts = "{duration: 1s, ramp_up: 100ms, connections: 1, latency_protocol: none}"
	}
	c, err := config.Load([]byte(fmt.Sprintf("modules:\n  m:\n    prober: %s\n    %s: %s\n", p, p, opts)), "")
	if err != nil {
		t.Fatal(err)
	}
	return *c.Modules["m"]
}
