package diagnose

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/diagnose/labtest"
)

// labPlan is the plan `isp-checker run` makes from labtest.Lab.Args.
func labPlan(l *labtest.Lab) Plan {
	o := config.DefaultISPProbe()
	o.Gateway = l.Gateway
	o.Targets = l.Targets
	o.DNSServers = []string{l.Resolver}
	o.DNSQueryName = labtest.DNSName
	o.HTTPURLs = l.URLs
	return NewPlan(o, Flagged{Gateway: true, DNS: true})
}

func runLab(t *testing.T, l *labtest.Lab) *ISPResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var logger *slog.Logger
	if testing.Verbose() && os.Getenv("ISP_LAB_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	start := time.Now()
	res := Run(ctx, labPlan(l), Options{Logger: logger})
	t.Logf("%s in %v (score %.3f)", res.Summary, time.Since(start).Round(100*time.Millisecond), res.Score)
	for _, e := range res.Evidence {
		t.Logf("  %s", e)
	}
	return res
}

func TestLabScenarios(t *testing.T) {
	l := labtest.New(t)
	scenarios := []struct {
		name    string
		fault   func() func()
		want    string
		verdict string
		words   []string
	}{
		{"healthy", nil, FaultNone, VerdictHealthy, nil},
		{"gateway loss", func() func() { return l.LANLoss(0.3) }, FaultLAN, VerdictDegraded, []string{"already at the gateway " + l.Gateway}},
		{"isp loss", func() func() { return l.ISPLoss(0.3) }, FaultISP, VerdictDegraded, []string{"loss starts at hop 3 (" + l.HopAfterGateway(3) + "); gateway clean → ISP"}},
		{"dns stopped", l.StopDNS, FaultDNS, VerdictDown, []string{l.Resolver}},
		{"site stopped", func() func() { return l.StopSite(1) }, FaultRemote, VerdictDegraded, []string{l.URLs[1]}},
	}
	for _, sc := range scenarios {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) {
			if sc.fault != nil {
				defer sc.fault()()
			}
			res := runLab(t, l)
			if res.Fault != sc.want || res.Verdict != sc.verdict {
				t.Errorf("fault %s, verdict %s; want %s, %s", res.Fault, res.Verdict, sc.want, sc.verdict)
			}
			for _, w := range sc.words {
				if !strings.Contains(res.Evidence[0], w) {
					t.Errorf("evidence %q lacks %q", res.Evidence[0], w)
				}
			}
		})
	}
}
