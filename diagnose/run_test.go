package diagnose

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/testserver"
	"github.com/isp-checker/isp-checker/speedtest"
)

// loopbackPlan is a plan whose every check stays on 127.0.0.0/8: the
// gateway and the targets are loopback addresses, the resolver and the
// web site run in the test.
func loopbackPlan(t *testing.T, packets int, interval time.Duration) Plan {
	t.Helper()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") }))
	t.Cleanup(site.Close)
	_, zone := testserver.Resolver(t, map[string][]netip.Addr{"loop.test": {netip.MustParseAddr("127.0.0.1")}})

	o := config.DefaultISPProbe()
	o.Gateway, o.Targets = "127.0.0.1", []string{"127.0.0.2", "127.0.0.3"}
	o.DNSServers, o.DNSQueryName, o.HTTPURLs = []string{zone.Addr()}, "loop.test", []string{site.URL + "/"}
	o.Packets, o.Interval = packets, interval
	return NewPlan(o, Flagged{Gateway: true, DNS: true})
}

// TestRunProgressTotalKnownUpFront: every progress step carries the same
// total, known before the first check ran, and the last step reaches it
// (the trace's routers are one step, however many the trace finds).
func TestRunProgressTotalKnownUpFront(t *testing.T) {
	plan := loopbackPlan(t, 3, 50*time.Millisecond)
	want := PlannedSteps(plan)
	if want != 8 { // gateway, 2 targets, trace, its routers, mtu, dns, http
		t.Errorf("PlannedSteps = %d, want 8", want)
	}
	var steps []Step
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	Run(ctx, plan, Options{Progress: func(s Step) { steps = append(steps, s) }})
	if len(steps) != want {
		t.Errorf("%d steps, want %d: %+v", len(steps), want, steps)
	}
	for i, s := range steps {
		if s.Total != want || s.Done != i+1 {
			t.Errorf("step %d: %d/%d (%s %s), want %d/%d", i, s.Done, s.Total, s.Check, s.Target, i+1, want)
		}
	}
}

// TestRunFewerPingsAreSaid: 30 echo requests 200 ms apart do not fit in
// 2 s; the report says how many did instead of silently sending fewer.
func TestRunFewerPingsAreSaid(t *testing.T) {
	plan := loopbackPlan(t, 30, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res := Run(ctx, plan, Options{})
	if res.Checks.Targets[0].PacketsSent == 0 {
		if os.Geteuid() == 0 {
			t.Fatalf("no echo request sent as root: %s", res.Checks.Targets[0].Error)
		}
		t.Skipf("no ICMP socket without root (%s); the note needs pings", res.Checks.Targets[0].Error)
	}
	planned := res.Checks.Targets[0].PacketsPlanned
	want := fmt.Sprintf("only %d of the 30 echo requests per target fitted in the time the diagnosis had (--timeout)", planned)
	if planned >= 30 || !strings.Contains(strings.Join(res.Evidence, "\n"), want) {
		t.Errorf("planned %d; evidence lacks %q:\n%s", planned, want, strings.Join(res.Evidence, "\n"))
	}
}

// keyCheck is a slog handler that records every log line which names a
// key twice (with the keys its logger was given).
type keyCheck struct {
	mu    *sync.Mutex
	lines *int
	dups  *[]string
	keys  []string
}

func (h keyCheck) Enabled(context.Context, slog.Level) bool { return true }
func (h keyCheck) WithGroup(string) slog.Handler            { return h }

func (h keyCheck) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		h.keys = append(slices.Clip(h.keys), a.Key)
	}
	return h
}

func (h keyCheck) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.lines++
	seen := map[string]bool{}
	for _, k := range h.keys {
		seen[k] = true
	}
	r.Attrs(func(a slog.Attr) bool {
		if seen[a.Key] {
			*h.dups = append(*h.dups, fmt.Sprintf("%q: %s twice", r.Message, a.Key))
		}
		seen[a.Key] = true
		return true
	})
	return nil
}

// TestRunLogsEachKeyOnce: under the isp probe's logger, which names the
// module and the target, no log line of a check names a key twice.
func TestRunLogsEachKeyOnce(t *testing.T) {
	var lines int
	var dups []string
	logger := slog.New(keyCheck{mu: &sync.Mutex{}, lines: &lines, dups: &dups}).With("module", "isp", "target", "internet")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	Run(ctx, loopbackPlan(t, 2, 50*time.Millisecond), Options{Logger: logger})
	if lines < 10 || len(dups) > 0 {
		t.Errorf("%d log lines; repeated keys: %q", lines, dups)
	}
}

// TestRunSpeedResponsiveness: with --speed and a responsiveness URL, the
// run measures the responsiveness after the throughput and reports it
// next to it.
func TestRunSpeedResponsiveness(t *testing.T) {
	h := speedtest.New(speedtest.Options{})
	mux := http.NewServeMux()
	for path, r := range h.Routes() {
		mux.Handle(path, r)
	}
	far := httptest.NewUnstartedServer(mux)
	far.EnableHTTP2 = true
	far.Config.ConnContext = h.ConnContext
	far.TLS = &tls.Config{Certificates: []tls.Certificate{loopbackCert}}
	far.StartTLS()
	defer far.Close()

	// The throughput goes to plain HTTP: over HTTP/2 the throughput
	// prober's header guard can count body bytes the transport reads
	// ahead before the round trip returns (a bug outside this test).
	plain := httptest.NewServer(mux)
	defer plain.Close()

	plan := loopbackPlan(t, 3, 50*time.Millisecond)
	plan.Options.Speed, plan.Options.SpeedDuration = true, time.Second
	plan.Options.SpeedURL = plain.URL + speedtest.DownloadPath + "?bytes=10000000"
	plan.Options.ResponsivenessURL = far.URL + speedtest.WellKnownPath
	plan = NewPlan(plan.Options, Flagged{Gateway: true, DNS: true})
	if plan.ResponsivenessURL != far.URL+speedtest.WellKnownPath {
		t.Fatalf("responsiveness URL %q", plan.ResponsivenessURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	res := Run(ctx, plan, Options{})
	rr := res.Checks.Responsiveness
	if rr == nil {
		t.Fatal("no responsiveness check")
	}
	t.Logf("responsiveness: %.0f RPM (%s, %s), error %q; evidence:\n%s", rr.RPM, rr.Level, rr.BloatGrade, rr.Error, strings.Join(res.Evidence, "\n"))
	if len(rr.Stages) != 2 || rr.IdleProbes == 0 {
		t.Fatalf("stages %+v, %d idle probes: the test did not run (%s)", rr.Stages, rr.IdleProbes, rr.Error)
	}
	line := rpmLine(rr)
	if !slices.Contains(res.Evidence, line) {
		t.Errorf("evidence lacks %q", line)
	}
	if !res.Checks.Throughput.Success {
		t.Fatalf("speed test failed: %s", res.Checks.Throughput.Error)
	}
	if rr.Success {
		want := fmt.Sprintf("; responsiveness %.0f RPM (%s, grade %s", rr.RPM, rr.Level, rr.BloatGrade)
		if !strings.Contains(res.Dimensions.Bufferbloat.Detail, want) {
			t.Errorf("bufferbloat detail %q lacks %q", res.Dimensions.Bufferbloat.Detail, want)
		}
	} else if !strings.Contains(rr.Error, "not stable") && !strings.Contains(rr.Error, "no responsiveness figure") {
		// On a loaded machine the loopback load may saturate only as the
		// stage ends, leaving no probe in its last intervals: that is
		// "no figure", which the lab tests tell apart from a real one.
		t.Errorf("responsiveness failed for another reason than stability on a busy loopback: %s", rr.Error)
	}
}

func TestResponsivenessURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://far.example:9115/speedtest/download?bytes=1000": "https://far.example:9115/.well-known/nq",
		"http://far.example:9115/speedtest/download":             "",
		"https://speed.example/download":                         "",
	} {
		if got := responsivenessURL(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}
