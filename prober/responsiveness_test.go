package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/speedtest"
)

// rpmServer is isp-checker's responsiveness server on loopback: TLS with
// HTTP/2 (h2 false: HTTP/1.1 only), as serve wires it. It returns the
// configuration document's URL.
func rpmServer(t *testing.T, h2 bool, o speedtest.Options) (string, *speedtest.Handler) {
	t.Helper()
	h := speedtest.New(o)
	mux := http.NewServeMux()
	for path, r := range h.Routes() {
		mux.Handle(path, r)
	}
	s := httptest.NewUnstartedServer(mux)
	s.EnableHTTP2 = h2
	s.Config.ConnContext = h.ConnContext
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.URL + speedtest.WellKnownPath, h
}

// fastRPM is a short test: 200 ms intervals, at most 6 s per direction,
// 4 connections.
func fastRPM(dir string) config.ResponsivenessProbe {
	o := config.DefaultResponsivenessProbe()
	o.Direction = dir
	o.IntervalDuration = 200 * time.Millisecond
	o.StageTimeout = 6 * time.Second
	o.MaxConnections = 4
	o.IdleProbes = 3
	o.TLSConfig.InsecureSkipVerify = true
	return o
}

func rpmModule(o config.ResponsivenessProbe) config.Module {
	return config.Module{Prober: "responsiveness", Responsiveness: o}
}

func runRPM(t *testing.T, target string, o config.ResponsivenessProbe, timeout time.Duration) *ResponsivenessResult {
	t.Helper()
	start := time.Now()
	res := probeTestRun[*ResponsivenessResult](t, timeout, target, rpmModule(o))
	if took := time.Since(start); took > timeout {
		t.Errorf("probe took %s, beyond its timeout %s", took, timeout)
	}
	return res
}

// Against isp-checker's own server on loopback, both directions run their
// stages to the end and every figure is consistent with its components.
func TestResponsivenessLoopback(t *testing.T) {
	target, _ := rpmServer(t, true, speedtest.Options{})
	res := runRPM(t, target, fastRPM(config.ResponsivenessBoth), 20*time.Second)
	for _, st := range res.Stages {
		t.Logf("%s: %.0f RPM (%s, stop %s); tcp %.2f tls %.2f http %.2f self %.2f ms; goodput %.4g B/s saturated %v; %d connections (%d failed); %d pairs, %d errors",
			st.Direction, st.RPM, st.Confidence, st.StopReason, 1e3*st.TCPForeignSeconds, 1e3*st.TLSForeignSeconds, 1e3*st.HTTPForeignSeconds,
			1e3*st.HTTPSelfSeconds, st.GoodputBytesPerSecond, st.GoodputSaturated, st.Connections, st.ConnectionsFailed, st.ProbePairs, st.ProbeErrors)
	}
	t.Logf("overall %.0f RPM (%s, %s, %s), idle round trip %.2f ms, %s; error %q", res.RPM, res.Level, res.Class, res.BloatGrade,
		1e3*res.IdleRoundTripSeconds, res.TLSVersion, res.Error)
	if len(res.Stages) != 2 || res.Stages[0].Direction != "download" || res.Stages[1].Direction != "upload" {
		t.Fatalf("stages %+v, want download then upload", res.Stages)
	}
	if res.IdleProbes != 3 || res.IdleRoundTripSeconds <= 0 {
		t.Errorf("idle: %d probes, %g s; want 3 and a round trip", res.IdleProbes, res.IdleRoundTripSeconds)
	}
	if res.TLSVersion != "TLS 1.3" {
		t.Errorf("TLS version %q, want TLS 1.3", res.TLSVersion)
	}
	for _, st := range res.Stages {
		if st.GoodputBytesPerSecond <= 0 || st.Connections < 1 || st.Intervals < 1 {
			t.Errorf("%s: goodput %g, %d connections, %d intervals: the load did not run", st.Direction, st.GoodputBytesPerSecond, st.Connections, st.Intervals)
		}
		if st.Connections > 4 {
			t.Errorf("%s: %d connections, above max_connections 4", st.Direction, st.Connections)
		}
		if !st.HasFigure() {
			continue // loopback under a loaded CPU may not saturate in 6 s: the error says so
		}
		foreign := (st.TCPForeignSeconds + st.TLSForeignSeconds + st.HTTPForeignSeconds) / 3
		want := (60/foreign + 60/st.HTTPSelfSeconds) / 2
		if d := st.RPM/want - 1; d > 1e-6 || d < -1e-6 {
			t.Errorf("%s: RPM %g, but the components give %g", st.Direction, st.RPM, want)
		}
		if st.RTTMeanRPM > st.RPM {
			t.Errorf("%s: the draft-03 figure %g is above the draft-09 one %g", st.Direction, st.RTTMeanRPM, st.RPM)
		}
		if st.ForeignSamples == 0 || st.SelfSamples == 0 {
			t.Errorf("%s: a figure from %d foreign and %d self samples", st.Direction, st.ForeignSamples, st.SelfSamples)
		}
	}
	if res.Success {
		if res.RPM <= 0 || res.Level == "" || res.BloatGrade == "" {
			t.Errorf("a successful probe without an overall figure: %+v", res)
		}
	} else if !strings.Contains(res.Error, "not stable") {
		t.Errorf("failed for another reason than stability: %s", res.Error)
	}
}

// A server without HTTP/2 cannot carry self probes: the probe says so at once.
func TestResponsivenessNeedsHTTP2(t *testing.T) {
	target, _ := rpmServer(t, false, speedtest.Options{})
	res := runRPM(t, target, fastRPM(config.ThroughputDownload), 10*time.Second)
	probeTestCheck(t, res, "did not negotiate HTTP/2")
	if res.DurationSeconds > 3 {
		t.Errorf("took %.1fs to find out", res.DurationSeconds)
	}
}

func TestResponsivenessDocument(t *testing.T) {
	base, _ := url.Parse("https://speed.example:4443/.well-known/nq")
	tests := []struct {
		name, doc, err string
		small, upload  string
	}{
		{name: "draft names", doc: `{"version":1,"urls":{"small_download_url":"https://speed.example:4443/s","large_download_url":"https://speed.example:4443/l","upload_url":"https://speed.example:4443/u"}}`,
			small: "https://speed.example:4443/s", upload: "https://speed.example:4443/u"},
		{name: "older https_ names", doc: `{"version":1,"urls":{"small_https_download_url":"https://a.example/s","large_https_download_url":"https://a.example/l","https_upload_url":"https://a.example/u"}}`,
			small: "https://a.example/s", upload: "https://a.example/u"},
		{name: "draft names win", doc: `{"version":1,"urls":{"small_download_url":"/new","small_https_download_url":"/old","large_download_url":"/l","upload_url":"/u"},"unknown":true}`,
			small: "https://speed.example:4443/new", upload: "https://speed.example:4443/u"},
		{name: "no version", doc: `{"urls":{}}`, err: `no "version"`},
		{name: "version 2", doc: `{"version":2}`, err: "version is 2"},
		{name: "missing upload", doc: `{"version":1,"urls":{"small_download_url":"/s","large_download_url":"/l"}}`, err: "no urls.upload_url"},
		{name: "two hosts", doc: `{"version":1,"urls":{"small_download_url":"https://a.example/s","large_download_url":"https://b.example/l","upload_url":"https://a.example/u"}}`, err: "different hosts"},
		{name: "ftp", doc: `{"version":1,"urls":{"small_download_url":"ftp://a.example/s","large_download_url":"/l","upload_url":"/u"}}`, err: "want an http or https URL"},
		{name: "not JSON", doc: `<html>`, err: "not the responsiveness test's JSON"},
		{name: "a URL is a number", doc: `{"version":1,"urls":{"small_download_url":5}}`, err: "not the responsiveness test's JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNQ([]byte(tc.doc), base)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.small.String() != tc.small || got.upload.String() != tc.upload {
				t.Errorf("small %s, upload %s; want %s, %s", got.small, got.upload, tc.small, tc.upload)
			}
		})
	}
}

func TestResponsivenessDocumentHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })
	s := httptest.NewTLSServer(mux)
	defer s.Close()
	res := runRPM(t, s.URL+"/moved", fastRPM(config.ThroughputDownload), 5*time.Second)
	probeTestCheck(t, res, `status 302 (want 200), a redirect to "/elsewhere"`)
	res = runRPM(t, s.URL+"/missing", fastRPM(config.ThroughputDownload), 5*time.Second)
	probeTestCheck(t, res, "status 404")
}

func TestResponsivenessOptions(t *testing.T) {
	o := fastRPM("sideways")
	res := runRPM(t, "https://127.0.0.1:1/.well-known/nq", o, 2*time.Second)
	probeTestCheck(t, res, `direction "sideways" is not valid`)
	for _, c := range []struct {
		yaml, err string
	}{
		{"interval_duration: 10ms", "below the minimum"},
		{"trimmed_mean_percent: 0.95", ""},
		{"trimmed_mean_percent: 150", "out of range"},
		{"max_connections: 100", "out of range"},
		{"initial_connections: 4\n      max_connections: 2", "out of range 4"},
		{"stage_timeout: 5s\n      interval_duration: 5s", "shorter than stage_timeout"},
		{"direction: both", ""},
	} {
		_, err := config.Load([]byte("modules:\n  m:\n    prober: responsiveness\n    responsiveness:\n      "+c.yaml+"\n"), "")
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: err %v, want %q", c.yaml, err, c.err)
		}
	}
}

// The draft's concurrent mode: both directions load the path at once, so
// the probe takes one stage's time, not two.
func TestResponsivenessParallel(t *testing.T) {
	target, _ := rpmServer(t, true, speedtest.Options{})
	o := fastRPM(config.ResponsivenessParallel)
	o.StageTimeout = 4 * time.Second
	res := runRPM(t, target, o, 15*time.Second)
	if len(res.Stages) != 2 || res.Stages[0].Direction != "download" || res.Stages[1].Direction != "upload" {
		t.Fatalf("stages %+v (%s), want download and upload", res.Stages, res.Error)
	}
	sum := 0.0
	for _, st := range res.Stages {
		if st.GoodputBytesPerSecond <= 0 || st.Intervals < 1 {
			t.Errorf("%s: no load ran (goodput %g, %d intervals)", st.Direction, st.GoodputBytesPerSecond, st.Intervals)
		}
		sum += st.Seconds
	}
	t.Logf("stages %.1fs + %.1fs, probe %.1fs; %.0f RPM, error %q", res.Stages[0].Seconds, res.Stages[1].Seconds, res.DurationSeconds, res.RPM, res.Error)
	if res.DurationSeconds >= sum {
		t.Errorf("the probe took %.1fs, the stages %.1fs together: they did not overlap", res.DurationSeconds, sum)
	}
}

// The document may name another host: it is resolved and judged by the
// target policy like the target, before anything is sent to it.
func TestResponsivenessPolicy(t *testing.T) {
	var elsewhere atomic.Int64
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != speedtest.WellKnownPath {
			elsewhere.Add(1)
			return
		}
		_, port, _ := net.SplitHostPort(r.Host)
		base := "https://127.0.0.2:" + port
		fmt.Fprintf(w, `{"version":1,"urls":{"small_download_url":"%s/s","large_download_url":"%s/l","upload_url":"%s/u"}}`, base, base, base)
	}))
	defer s.Close()
	pol := config.DefaultTargetPolicy()
	pol.DenyNetworks = append(pol.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.2/32")})
	var denied atomic.Int64
	req := Request{Target: s.URL + speedtest.WellKnownPath, Module: new(rpmModule(fastRPM(config.ThroughputDownload))), Logger: tpLogger(t),
		Policy: NewPolicy(pol, func() { denied.Add(1) })}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := Run(ctx, ProbeResponsiveness, req).(*ResponsivenessResult)
	if res.Success || !strings.Contains(res.Error, "target_policy") || denied.Load() == 0 || elsewhere.Load() != 0 {
		t.Errorf("a document naming a denied host: success %v, error %q, %d denials, %d requests beyond the document", res.Success, res.Error, denied.Load(), elsewhere.Load())
	}

	pol.DenyNetworks = append(pol.DenyNetworks, config.Network{Prefix: netip.MustParsePrefix("127.0.0.1/32")})
	req.Policy = NewPolicy(pol, nil)
	res = Run(ctx, ProbeResponsiveness, req).(*ResponsivenessResult)
	if res.Success || !strings.Contains(res.Error, "target_policy") {
		t.Errorf("denied target: success %v, error %q", res.Success, res.Error)
	}
}
