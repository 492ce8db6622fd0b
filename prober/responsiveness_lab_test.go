//go:build linux

package prober

import (
	"context"
	"crypto/tls"
	"encoding/csv"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/netlab"
	"github.com/isp-checker/isp-checker/internal/rpm"
	"github.com/isp-checker/isp-checker/speedtest"
)

// The responsiveness prober against isp-checker's own responsiveness
// server, in the lab:
//
//	client ── gw ══ isp1 ── remote (speedtest endpoints, TLS + HTTP/2)
//	(probe)      ^ access link: tbf 20 Mbit/s each way, on the routers
//
// tbf sits on the routers' egress (isp1→gw carries the download, gw→isp1
// the upload), not on the endpoints, where TCP Small Queues would keep the
// queue short of its configured depth.
//
// Expected figures behind the deep queue (tbf latency L = 400 ms, 20
// Mbit/s, burst 3200 B): the queue holds rate·L + burst ≈ 1.0 MB, 400 ms
// when full. Sixteen cubic flows keep it between about half full and full,
// so a packet of the loaded direction waits Q̄ ∈ [0.5·L, L]. Each
// round trip of a foreign probe (SYN/SYN-ACK, the TLS 1.3 flight, the
// HTTP/2 request and its answer) crosses that queue once, so each of
// tcp_f, tls_f and http_f is R0 + Q̄, with R0 the idle round trip (under a
// few ms in the lab); allowing 50 ms of host noise and retransmissions the
// trim leaves, each lies in [R0 + 0.5·L, R0 + L + 50 ms] = [200, 450] ms +
// R0. Foreign RPM = 60000/(R0 + Q̄) ∈ [133, 300]. A self probe waits in the
// same FIFO and behind its own connection's unsent data, so http_l ≥ the
// foreign round trip and Loaded RPM ≤ Foreign RPM: RPM = (Foreign +
// Loaded)/2 lies between Foreign/2 and Foreign, [67, 300]; the test allows
// [60, 300].
//
// Unshaped, the path is bounded by the CPU (TLS at Gbit/s on a shared
// 2-core box), not by a link, so no range follows from the lab; the test
// asks for the ratio: at least 3× the deep queue's RPM.
const (
	rpmLabQueue     = 400 * time.Millisecond
	rpmLabMin       = 60
	rpmLabMax       = 300
	rpmLabQueueLow  = rpmLabQueue / 2
	rpmLabNoise     = 50 * time.Millisecond
	rpmLabRatio     = 3
	rpmLabAgreement = 1.5 // with goresponsiveness, on the deep link
)

// rpmLabServer serves the speedtest endpoints over TLS with HTTP/2 on
// remote:8443 (cubic, as labServer) and returns the configuration URL and
// the certificate to trust.
func rpmLabServer(t *testing.T, p *netlab.Path) (string, string) {
	t.Helper()
	remote := p.Host("remote")
	addr := remote.IPv4().String()
	cert := tlsTestNewCert(t, time.Now().Add(24*time.Hour), addr)
	var l net.Listener
	err := remote.Do(func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return setCongestionControl(c, "cubic") }}
		l, err = lc.Listen(context.Background(), "tcp", ":8443")
		return err
	})
	if err != nil {
		t.Fatalf("listen in remote: %v", err)
	}
	h := speedtest.New(speedtest.Options{})
	mux := http.NewServeMux()
	for path, r := range h.Routes() {
		mux.Handle(path, r)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, ConnContext: h.ConnContext,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "https://" + net.JoinHostPort(addr, "8443") + speedtest.WellKnownPath, cert.PEM
}

// rpmLabModule follows goresponsiveness's timing (ID 1 s, as drafts 02–08)
// so that the lab runs in minutes and the comparison is like for like:
// 16 connections, 20 s per direction, cubic on the probe's side too.
func rpmLabModule(dir, ca string) config.ResponsivenessProbe {
	o := config.DefaultResponsivenessProbe()
	o.Direction = dir
	o.IntervalDuration = time.Second
	o.StageTimeout = 20 * time.Second
	o.CongestionControl = "cubic"
	o.TLSConfig.CA = ca
	return o
}

func runRPMLab(t *testing.T, target string, o config.ResponsivenessProbe) *ResponsivenessResult {
	t.Helper()
	timeout := time.Duration(len(o.Directions()))*o.StageTimeout + 15*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := Request{Target: target, Module: new(rpmModule(o)), Policy: NewPolicy(config.DefaultTargetPolicy(), nil), Logger: tpLogger(t)}
	res := Run(ctx, ProbeResponsiveness, req).(*ResponsivenessResult)
	for _, st := range res.Stages {
		t.Logf("%s: %.0f RPM (foreign %.0f, loaded %.0f; draft-03 formula %.0f), confidence %s, stop %s after %.1fs / %d intervals; "+
			"tcp_f %.1f tls_f %.1f http_f %.1f http_l %.1f ms (%d foreign, %d self; %d pairs, %d errors); goodput %.4g B/s (saturated %v), %d connections (%d failed)",
			st.Direction, st.RPM, st.ForeignRPM, st.LoadedRPM, st.RTTMeanRPM, st.Confidence, st.StopReason, st.Seconds, st.Intervals,
			1e3*st.TCPForeignSeconds, 1e3*st.TLSForeignSeconds, 1e3*st.HTTPForeignSeconds, 1e3*st.HTTPSelfSeconds,
			st.ForeignSamples, st.SelfSamples, st.ProbePairs, st.ProbeErrors, st.GoodputBytesPerSecond, st.GoodputSaturated,
			st.Connections, st.ConnectionsFailed)
	}
	t.Logf("overall %.0f RPM (%s, %s, bloat %s), stable %v; idle round trip %.2f ms; success %v %s",
		res.RPM, res.Level, res.Class, res.BloatGrade, res.Stable, 1e3*res.IdleRoundTripSeconds, res.Success, res.Error)
	return res
}

// runRPMLabStable is runRPMLab tried again (at most three times in all)
// while the probe says "not stable". The goodput of TLS at link rate is
// also bounded by the CPU, which other tests share: on a busy machine
// (CI runs packages in parallel) it may not settle within the stage. That
// is the probe honestly giving no figure, and says nothing of the link;
// the figures of a stable run are what the tests check.
func runRPMLabStable(t *testing.T, target string, o config.ResponsivenessProbe) *ResponsivenessResult {
	t.Helper()
	res := runRPMLab(t, target, o)
	for try := 2; try <= 3 && !res.Success && strings.Contains(res.Error, "not stable"); try++ {
		t.Logf("run %d: %s; again", try-1, res.Error)
		res = runRPMLab(t, target, o)
	}
	return res
}

// shape puts the deep tbf queue on both directions of the access link.
func shapeDeep(access *netlab.Link, rate float64, queue time.Duration) func() {
	for _, e := range []*netlab.End{access.A, access.B} {
		e.RateLimit(netlab.TBF{Rate: int64(rate), Burst: labBurst, Latency: queue})
	}
	return func() {
		access.A.ClearRateLimit()
		access.B.ClearRateLimit()
		time.Sleep(300 * time.Millisecond)
	}
}

func TestResponsivenessLab(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	target, ca := rpmLabServer(t, p)
	access := p.Uplinks[0]

	unshaped := runRPMLabStable(t, target, rpmLabModule(config.ResponsivenessBoth, ca))
	unshape := shapeDeep(access, labRate, rpmLabQueue)
	deep := runRPMLabStable(t, target, rpmLabModule(config.ResponsivenessBoth, ca))
	unshape()

	if !unshaped.Success {
		t.Errorf("unshaped: %s", unshaped.Error)
	}
	if !deep.Success {
		t.Errorf("deep queue: %s", deep.Error)
	}
	idle := time.Duration(deep.IdleRoundTripSeconds * float64(time.Second))
	for _, dir := range []string{config.ThroughputDownload, config.ThroughputUpload} {
		u, d := unshaped.Stage(dir), deep.Stage(dir)
		if u == nil || d == nil || !u.HasFigure() || !d.HasFigure() {
			t.Errorf("%s: a stage has no figure (unshaped %+v, deep %+v)", dir, u, d)
			continue
		}
		if d.RPM < rpmLabMin || d.RPM > rpmLabMax {
			t.Errorf("%s deep queue: %.0f RPM, want %d–%d (derived from the 400 ms queue)", dir, d.RPM, rpmLabMin, rpmLabMax)
		}
		if u.RPM < rpmLabRatio*d.RPM {
			t.Errorf("%s: unshaped %.0f RPM is not %d× the deep queue's %.0f", dir, u.RPM, rpmLabRatio, d.RPM)
		}
		// The components add up: each foreign handshake is the idle round
		// trip plus one crossing of the queue.
		lo, hi := idle+rpmLabQueueLow, idle+rpmLabQueue+rpmLabNoise
		for _, c := range []struct {
			kind string
			v    float64
		}{{"tcp_foreign", d.TCPForeignSeconds}, {"tls_foreign", d.TLSForeignSeconds}, {"http_foreign", d.HTTPForeignSeconds}} {
			if v := time.Duration(c.v * float64(time.Second)); v < lo || v > hi {
				t.Errorf("%s deep queue: %s %s, want idle %s + queueing %s–%s (%s–%s)", dir, c.kind, v.Round(time.Millisecond),
					idle.Round(time.Microsecond*100), rpmLabQueueLow, rpmLabQueue+rpmLabNoise, lo.Round(time.Millisecond), hi.Round(time.Millisecond))
			}
		}
		foreign := (d.TCPForeignSeconds + d.TLSForeignSeconds + d.HTTPForeignSeconds) / 3
		if d.HTTPSelfSeconds < foreign*0.9 {
			t.Errorf("%s deep queue: self probes %.0f ms faster than the foreign round trip %.0f ms through the same FIFO", dir, 1e3*d.HTTPSelfSeconds, 1e3*foreign)
		}
		// Goodput is payload: the tbf rate's share of it (labGoodputBps,
		// 2.39e6 B/s), not the rate's every byte (2.5e6). Against the latter
		// the upload, whose own TLS handshakes and probes share the queue,
		// fell 15.2% short in two CI runs (2.116e6, 2.122e6: 11% under the
		// payload rate).
		if lo, hi := labGoodputBps*(1-labRateTolerance), labGoodputBps*(1+labRateTolerance); d.GoodputBytesPerSecond < lo || d.GoodputBytesPerSecond > hi {
			t.Errorf("%s deep queue: goodput %.4g B/s, want the tbf rate's payload %.4g ± %.0f%%", dir, d.GoodputBytesPerSecond, labGoodputBps, 100*labRateTolerance)
		}
	}
	if deep.Level != "Low" || rpmGradeOrder(unshaped.Level) <= rpmGradeOrder(deep.Level) {
		t.Errorf("grades: deep %q, unshaped %q; want Low and better", deep.Level, unshaped.Level)
	}
}

// The draft's concurrent mode on the deep link: both directions loaded at
// once, so every round trip of a new connection crosses both queues:
// 2·Q̄ ∈ [L, 2·L] (+ noise), Foreign RPM ∈ [60000/850, 60000/400] = [70,
// 150], RPM between half of that and all of it: [35, 150].
func TestResponsivenessLabConcurrent(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	target, ca := rpmLabServer(t, p)
	defer shapeDeep(p.Uplinks[0], labRate, rpmLabQueue)()
	o := rpmLabModule(config.ResponsivenessParallel, ca)
	// Both directions share the CPU as well as the link: give stability
	// more time than the sequential stages need (12–19 s measured here).
	o.StageTimeout = 30 * time.Second
	res := runRPMLabStable(t, target, o)
	if !res.Success {
		t.Fatalf("concurrent: %s", res.Error)
	}
	lo, hi := rpmLabQueue, 2*rpmLabQueue+rpmLabNoise
	for _, st := range res.Stages {
		if st.RPM < 35 || st.RPM > 150 {
			t.Errorf("%s: %.0f RPM, want 35–150 with both queues loaded", st.Direction, st.RPM)
		}
		for _, v := range []float64{st.TCPForeignSeconds, st.TLSForeignSeconds, st.HTTPForeignSeconds} {
			if d := time.Duration(v * float64(time.Second)); d < lo || d > hi {
				t.Errorf("%s: a foreign component of %s, want %s–%s (two queue crossings)", st.Direction, d.Round(time.Millisecond), lo, hi)
			}
		}
	}
	if res.RPM < 35 || res.RPM > 150 {
		t.Errorf("overall %.0f RPM, want 35–150", res.RPM)
	}
}

func rpmGradeOrder(level string) int {
	return slices.Index([]string{"", "Low", "Medium", "High"}, level)
}

// A far end whose rate keeps changing never gives a stable goodput: the
// probe says "not stable" and gives no number.
func TestResponsivenessLabNotStable(t *testing.T) {
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	target, ca := rpmLabServer(t, p)
	shaped := p.Uplinks[0].B // isp1 → gw: the download
	o := rpmLabModule(config.ThroughputDownload, ca)
	o.StageTimeout = 15 * time.Second
	// A sawtooth of 7 steps, one per interval, ×1.5 each (4 → 45 Mbit/s):
	// no window of 4 moving averages is within 5 % of its mean.
	rates := []float64{4e6, 6e6, 9e6, 13.5e6, 20e6, 30e6, 45e6}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(o.IntervalDuration)
		defer tick.Stop()
		for i := 0; ; i++ {
			shaped.RateLimit(netlab.TBF{Rate: int64(rates[i%len(rates)]), Burst: labBurst, Latency: 50 * time.Millisecond})
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	res := runRPMLab(t, target, o)
	close(stop)
	<-done
	shaped.ClearRateLimit()

	probeTestCheck(t, res, "not stable")
	st := res.Stage(config.ThroughputDownload)
	if st == nil || st.HasFigure() || st.Stable || st.GoodputSaturated || res.RPM != 0 {
		t.Fatalf("a changing rate gave %+v, overall %g RPM; want no figure", st, res.RPM)
	}
	if st.Intervals < 10 || st.GoodputBytesPerSecond <= 0 {
		t.Errorf("%d intervals, goodput %g: the load did not run through the stage", st.Intervals, st.GoodputBytesPerSecond)
	}
}

// The standard client, goresponsiveness, and this prober on the same deep
// link. goresponsiveness prints the draft-03 formula (and, by default, a
// mean of the fastest 5 %); the draft-09 figure is recomputed here from
// its per-probe CSV logs: its foreign probes are one duration for three
// round trips, counted as a third each, and assigned to the direction
// whose self probes ran at the time. Set GORESPONSIVENESS to its binary.
func TestResponsivenessLabGoresponsiveness(t *testing.T) {
	bin := os.Getenv("GORESPONSIVENESS")
	if bin == "" {
		t.Skip("GORESPONSIVENESS is not set (the path of a goresponsiveness binary)")
	}
	p := netlab.NewPath(t, netlab.PathOpts{ISPHops: 1})
	target, ca := rpmLabServer(t, p)
	defer shapeDeep(p.Uplinks[0], labRate, rpmLabQueue)()

	ours := runRPMLab(t, target, rpmLabModule(config.ResponsivenessBoth, ca))

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := p.Client.Command(ctx, bin, "-url", target, "-rpm.tmp", "95", "-with-l4s-algorithm", "cubic",
		"-logger-filename", filepath.Join(dir, "gr.csv"))
	out, err := cmd.CombinedOutput()
	t.Logf("goresponsiveness %s:\n%s", strings.Join(cmd.Args[1:], " "), out)
	if err != nil {
		t.Fatalf("goresponsiveness: %v", err)
	}
	theirs := goresponsivenessRPM(t, dir)
	for _, d := range []string{config.ThroughputDownload, config.ThroughputUpload} {
		st, g := ours.Stage(d), theirs[d]
		if st == nil || !st.HasFigure() || g.RPM() == 0 {
			t.Errorf("%s: no figure to compare (ours %+v, goresponsiveness %+v)", d, st, g)
			continue
		}
		t.Logf("%s: isp-checker %.0f RPM (foreign RT %.0f ms, self %.0f ms); goresponsiveness recomputed %.0f RPM (foreign RT %.0f ms, self %.0f ms; draft-03 formula %.0f) from %d foreign and %d self probes",
			d, st.RPM, 1e3*(st.TCPForeignSeconds+st.TLSForeignSeconds+st.HTTPForeignSeconds)/3, 1e3*st.HTTPSelfSeconds,
			g.RPM(), 1e3*g.ForeignRoundTrip().Seconds(), 1e3*g.HTTPSelf.Seconds(), g.RTTMeanRPM(), g.ForeignSamples, g.SelfSamples)
		if r := st.RPM / g.RPM(); r > rpmLabAgreement || r < 1/rpmLabAgreement {
			t.Errorf("%s: isp-checker %.0f RPM and goresponsiveness %.0f RPM differ by %.2f×, more than %g×", d, st.RPM, g.RPM(), math.Max(r, 1/r), rpmLabAgreement)
		}
	}
}

// goresponsivenessRPM reads goresponsiveness's probe logs (gr-foreign-*.csv,
// gr-self-*.csv: time, round trips, duration in seconds, …, probe type)
// into the draft's components per direction.
func goresponsivenessRPM(t *testing.T, dir string) map[string]rpm.Components {
	t.Helper()
	type row struct {
		at  time.Time
		d   time.Duration
		typ string
	}
	load := func(pattern string) []row {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		if len(files) != 1 {
			t.Fatalf("%s: %d files, want 1", pattern, len(files))
		}
		f, err := os.Open(files[0])
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		r := csv.NewReader(f)
		r.FieldsPerRecord = -1
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var rows []row
		for _, rec := range recs[1:] {
			at, err1 := time.Parse("01-02-2006-15-04-05.000", strings.TrimSpace(rec[0]))
			secs, err2 := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
			if err1 != nil || err2 != nil || len(rec) < 6 {
				t.Fatalf("%s: bad row %q", pattern, rec)
			}
			rows = append(rows, row{at, time.Duration(secs * float64(time.Second)), strings.TrimSpace(rec[5])})
		}
		return rows
	}
	foreign, self := load("gr-foreign-*.csv"), load("gr-self-*.csv")
	out := map[string]rpm.Components{}
	for d, typ := range map[string]string{config.ThroughputDownload: "SelfDown", config.ThroughputUpload: "SelfUp"} {
		var pr rpm.Probes
		pr.TLS = true
		var first, last time.Time
		for _, r := range self {
			if r.typ != typ {
				continue
			}
			pr.Self = append(pr.Self, r.d)
			if first.IsZero() || r.at.Before(first) {
				first = r.at
			}
			if r.at.After(last) {
				last = r.at
			}
		}
		for _, r := range foreign {
			if !r.at.Before(first) && !r.at.After(last) {
				third := r.d / 3
				pr.Foreign = append(pr.Foreign, rpm.Foreign{TCP: third, TLS: third, HTTP: third})
			}
		}
		if c, err := rpm.Aggregate(pr, 0.95); err == nil {
			out[d] = c
		}
	}
	return out
}
