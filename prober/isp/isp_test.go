package isp

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/diagnose"
	"github.com/isp-checker/isp-checker/prober"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSplitProbeTarget(t *testing.T) {
	for in, want := range map[string][2]string{
		"203.0.113.7":                 {"203.0.113.7", ""},
		"[2001:db8::7]":               {"2001:db8::7", ""},
		"one.one.one.one":             {"one.one.one.one", ""},
		"https://www.example.com/x?y": {"www.example.com", "https://www.example.com/x?y"},
		"internet":                    {"", ""},
		"site-a":                      {"", ""},
		"":                            {"", ""},
	} {
		host, site, err := config.ParseISPProbeTarget(in)
		if err != nil || host != want[0] || site != want[1] {
			t.Errorf("ParseISPProbeTarget(%q) = %q, %q, %v; want %q, %q", in, host, site, err, want[0], want[1])
		}
	}
	if got := prepend([]string{"a", "b", "c"}, "b"); !reflect.DeepEqual(got, []string{"b", "a", "c"}) {
		t.Errorf("prepend = %q", got)
	}
}

// TestProberCancelled: with a context that is already done the isp prober
// returns at once, reading and sending nothing: unknown, since nothing was
// measured.
func TestProberCancelled(t *testing.T) {
	old := [3]string{diagnose.RouteFile, diagnose.IPv6RouteFile, diagnose.ResolvConf}
	diagnose.RouteFile, diagnose.IPv6RouteFile, diagnose.ResolvConf = "testdata/missing", "testdata/missing", "testdata/missing"
	t.Cleanup(func() { diagnose.RouteFile, diagnose.IPv6RouteFile, diagnose.ResolvConf = old[0], old[1], old[2] })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := config.DefaultModule()
	m.Prober = "isp"
	start := time.Now()
	res := prober.Run(ctx, Probe, prober.Request{Target: "203.0.113.7", Module: &m, ModuleName: "isp"})
	r, ok := res.(*diagnose.ISPResult)
	if !ok {
		t.Fatalf("result is %T", res)
	}
	if time.Since(start) > time.Second || r.Success || r.Error == "" || r.Verdict != diagnose.VerdictUnknown || r.Score != nil || r.Checks.Gateway != nil {
		t.Errorf("cancelled probe: %+v", r)
	}
}

// TestProbeTargetNotAWord: a target that is neither an address, a host
// name, an http(s) URL nor a single word fails the probe at once, saying
// why, rather than being taken as a label (`run --target` refuses it too).
func TestProbeTargetNotAWord(t *testing.T) {
	for _, target := range []string{"bad target!", "a/b", "https://", "ftp://x.example/", "under_score!"} {
		m := config.DefaultModule()
		m.Prober = "isp"
		// Nothing may run: a plan with checks would reach the module's
		// public targets.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		res := prober.Run(ctx, Probe, prober.Request{Target: target, Module: &m, ModuleName: "isp"})
		cancel()
		// prober.Run refuses another scheme before the prober runs.
		var checks diagnose.Checks
		if r, ok := res.(*diagnose.ISPResult); ok {
			checks = r.Checks
		}
		if b := res.Base(); b.Success || !strings.Contains(b.Error, "target") || checks.Gateway != nil || len(checks.Targets) != 0 || time.Since(start) > time.Second {
			t.Errorf("probe of %q: success %v, error %q, checks %+v; want a failed probe naming the target, nothing run", target, b.Success, b.Error, checks)
		}
	}
	for _, word := range []string{"internet", "site-a", "site_b", "home2"} {
		if _, _, err := config.ParseISPProbeTarget(word); err != nil {
			t.Errorf("%q is a label, got %v", word, err)
		}
	}
}
