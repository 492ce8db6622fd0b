package prober

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/internal/netlab"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// probe must close its connections and stop its helpers before it returns.
// It also fails them if any asked the system resolver (see resolverGuard).
func TestMain(m *testing.M) {
	netlab.Isolate() // lab tests: see the netlab package documentation
	Resolver = noSystemResolver()
	goleak.VerifyTestMain(resolverGuard{m})
}

// probeTestFunc is the prober of the given name, for tests that run several
// probers through one helper (the real table is package probers, which
// imports this package).
func probeTestFunc(name string) Func {
	return map[string]Func{
		"http": ProbeHTTP, "tcp": ProbeTCP, "icmp": ProbeICMP, "dns": ProbeDNS, "grpc": ProbeGRPC, "unix": ProbeUnix,
		"traceroute": ProbeTraceroute, "mtu": ProbeMTU, "throughput": ProbeThroughput, "responsiveness": ProbeResponsiveness,
		"websocket": ProbeWebsocket,
	}[name]
}

// probeTestRun runs module m against target under the default target policy
// and returns its Result as a T.
func probeTestRun[T Result](t testing.TB, timeout time.Duration, target string, m config.Module, opts ...httpTestOpt) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := Request{Target: target, Module: &m, ModuleName: "m", Policy: NewPolicy(config.DefaultTargetPolicy(), nil), Logger: tlsTestLogger(t)}
	for _, o := range opts {
		o(&req)
	}
	r := Run(ctx, probeTestFunc(m.Prober), req)
	res, ok := r.(T)
	if !ok {
		t.Fatalf("%s prober returned %T", m.Prober, r)
	}
	return res
}

// probeTestCheck fails the test unless the result succeeded (errSubstr == "")
// or failed with an error containing errSubstr.
func probeTestCheck(t testing.TB, res Result, errSubstr string) {
	t.Helper()
	b := res.Base()
	if errSubstr == "" {
		if !b.Success {
			t.Fatalf("probe failed: %s", b.Error)
		}
		return
	}
	if b.Success {
		t.Fatalf("probe succeeded, want failure containing %q", errSubstr)
	}
	if !strings.Contains(b.Error, errSubstr) {
		t.Fatalf("error = %q, want it to contain %q", b.Error, errSubstr)
	}
}

// probeTestModule builds a module of prober from its options (YAML, common
// indentation removed) through the config loader, as a user's file would be;
// timeout 0 leaves the module without one.
func probeTestModule(t testing.TB, prober string, timeout time.Duration, options string) config.Module {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "modules:\n  m:\n    prober: %s\n", prober)
	if timeout > 0 {
		fmt.Fprintf(&b, "    timeout: %s\n", timeout)
	}
	fmt.Fprintf(&b, "    %s:\n", prober)
	body := httpTestDedent(options)
	if strings.TrimSpace(body) == "" {
		body = "{}"
	}
	for _, line := range strings.Split(body, "\n") {
		b.WriteString("      " + line + "\n")
	}
	c, err := config.Load([]byte(b.String()), "")
	if err != nil {
		t.Fatalf("loading module: %v\n%s", err, b.String())
	}
	return *c.Modules["m"]
}
