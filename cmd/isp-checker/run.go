package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/diagnose"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/report"
)

// runUsageExit is the exit status of `isp-checker run` for usage errors
// (bad flags included) and reports that cannot be written or pushed: 3,
// apart from the verdict's 0 healthy, 1 degraded, 2 down, 4 unknown.
const runUsageExit = 3

// runPushJob is the job label of a pushed run; runPushTimeout bounds the
// push.
const (
	runPushJob     = "isp-checker-run"
	runPushTimeout = 10 * time.Second
)

// runCmd is `isp-checker run`: a one-shot diagnosis of the connection.
type runCmd struct {
	configFile, module *string
	configCheck, speed *bool
	// The check lists and values that replace the module's.
	targets, dnsServers, httpURLs *[]string
	dnsName, gateway, speedURL    *string
	rpmURL                        *string
	// What becomes of the report.
	format         *enumFlag
	output         *string
	push, pushInst *string
	verdictRC      *bool
	timeout        *durationFlag
}

func addRunCmd(app *kingpin.Application, g *globalFlags) *command {
	c := &runCmd{configFile: g.configFile}
	cmd := app.Command("run", "Diagnose the connection once: is it the LAN, the ISP, DNS or the remote end? Exit status 0 healthy, 1 degraded, 2 down, 4 unknown (not measured), 3 usage error.")
	c.configCheck = cmd.Flag("config.check", "Validate the configuration (the module, with the flags that change it), print the result and exit (3 if it is not valid).").Bool()
	c.targets = cmd.Flag("target", "Internet target to ping (repeatable; the first is traced). Default: the module's (1.1.1.1, 8.8.8.8, 9.9.9.9).").Strings()
	c.dnsServers = cmd.Flag("dns-server", "Resolver to query, ip or ip:port (repeatable). Default: the module's, else the nameservers of /etc/resolv.conf.").Strings()
	c.dnsName = cmd.Flag("dns-name", "Name to resolve. Default: the module's (example.com).").String()
	c.httpURLs = cmd.Flag("http-url", "Web site to fetch (repeatable). Default: the module's (https://www.example.com/).").Strings()
	c.gateway = cmd.Flag("gateway", `The LAN gateway's address, or "none" to skip it. Default: the default route's gateway (/proc/net/route).`).String()
	c.speed = cmd.Flag("speed", "Also measure throughput and bufferbloat (after the other checks) against --speed-url, and responsiveness (RPM) against --speed-rpm-url.").Bool()
	c.speedURL = cmd.Flag("speed-url", "URL to download for --speed: another isp-checker's /speedtest/download (it serves one with --speedtest.enable), e.g. http://peer:9799/speedtest/download, or any large file.").String()
	c.rpmURL = cmd.Flag("speed-rpm-url", "Responsiveness test (RPM) configuration for --speed, e.g. https://peer:9799/.well-known/nq. Default: derived from an https --speed-url on another isp-checker.").String()
	c.format = enum(cmd, "format", "Output format on standard output: "+strings.Join(report.RunFormats, " or ")+".", report.RunFormats...)
	c.output = cmd.Flag("output", "Also write the JSON report to this file.").Short('o').String()
	c.module = cmd.Flag("module", "isp module of the configuration whose thresholds and check lists to use.").Default("isp").String()
	c.timeout = duration(cmd, "timeout", "Time the whole diagnosis may take.", "60s")
	c.push = cmd.Flag("push", `Push the diagnosis's probe_isp_* metrics to this Prometheus Pushgateway (e.g. http://pushgateway:9091), as job "`+runPushJob+`".`).PlaceHolder("URL").String()
	c.pushInst = cmd.Flag("push-instance", "The instance label of the pushed group. Default: the host name.").String()
	c.verdictRC = cmd.Flag("verdict-exit-code", "Exit with the verdict's status (0 healthy, 1 degraded, 2 down, 4 unknown). --no-verdict-exit-code exits 0 once the report is written (and pushed), for schedulers that count any other status as a failed job.").Default("true").Bool()
	return &command{clause: cmd, usageCode: runUsageExit, exec: c.exec}
}

// exec diagnoses the connection; the exit status is the verdict's.
func (c *runCmd) exec(e *env) error {
	o, policy, source, err := c.options()
	if err != nil {
		return e.usage(err)
	}
	pusher, err := c.pusher()
	if err != nil {
		return e.usage(err)
	}
	if *c.configCheck {
		fmt.Fprintf(e.stdout, "%s is ok: module %q\n", source, *c.module)
		return nil
	}
	// Open the output first, so a bad path fails before the work.
	var outFile *os.File
	if *c.output != "" {
		if outFile, err = os.Create(*c.output); err != nil {
			return e.usage(fmt.Errorf("--output: %w", err))
		}
		defer outFile.Close()
	}

	plan := diagnose.NewPlan(o, diagnose.Flagged{Gateway: *c.gateway != "", DNS: len(*c.dnsServers) > 0})
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, c.timeout.val)
	defer cancel()

	prog := &runProgress{w: e.stderr, on: isTerminal(e.stderr)}
	prog.start(plan)
	res := diagnose.Run(ctx, plan, diagnose.Options{
		Policy: prober.NewPolicy(policy, nil), Logger: e.probeLogger, Progress: prog.step,
	})
	prog.finish()

	color := isTerminal(e.stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	if err := report.WriteRun(e.stdout, c.format.val, res, report.TextOptions{Color: color}); err != nil {
		return e.usage(fmt.Errorf("writing the report: %w", err))
	}
	if outFile != nil {
		if err := report.WriteRun(outFile, "json", res, report.TextOptions{}); err != nil {
			return e.usage(fmt.Errorf("writing %s: %w", *c.output, err))
		}
		if err := outFile.Close(); err != nil {
			return e.usage(fmt.Errorf("writing %s: %w", *c.output, err))
		}
	}
	if res.Interrupted {
		// An interrupted run measured nothing worth keeping in the
		// Pushgateway, where it would replace the last finished run's.
		msg := "interrupted: the verdict is unknown"
		if pusher != nil {
			msg += "; nothing pushed to " + *c.push
		}
		fmt.Fprintln(e.stderr, msg)
		pusher = nil
	}
	if pusher != nil {
		pctx, cancel := context.WithTimeout(context.Background(), runPushTimeout)
		defer cancel()
		if err := pusher.Gatherer(collector.ISPGatherer(res, e.probeLogger)).PushContext(pctx); err != nil {
			return e.usage(fmt.Errorf("pushing to %s: %w", *c.push, err))
		}
	}
	if !*c.verdictRC {
		return nil
	}
	return exitStatus(diagnose.ExitCode(res.Verdict))
}

// options are the module's (from the configuration, as every command
// reads it) with the flags' lists and values in place of its own, and the
// configuration's target policy. Each flag's value is checked under its
// name.
func (c *runCmd) options() (config.ISPProbe, config.TargetPolicy, string, error) {
	cfg, source, err := loadConfig(*c.configFile)
	if err != nil {
		return config.ISPProbe{}, config.TargetPolicy{}, source, err
	}
	m, err := moduleOf(cfg, source, *c.module, "isp", "run")
	if err != nil {
		return config.ISPProbe{}, config.TargetPolicy{}, source, err
	}
	o := m.ISP
	if err := c.override(&o); err != nil {
		return o, cfg.TargetPolicy, source, err
	}
	if err := o.Validate(); err != nil {
		return o, cfg.TargetPolicy, source, fmt.Errorf("module %q with the flags: %w", *c.module, err)
	}
	return o, cfg.TargetPolicy, source, nil
}

// override puts the flags' values in o, each checked under its flag's name.
func (c *runCmd) override(o *config.ISPProbe) error {
	for _, list := range []struct {
		flag   string
		values []string
		valid  func(string) error
		into   *[]string
	}{
		{"target", *c.targets, config.ValidISPHost, &o.Targets},
		{"dns-server", *c.dnsServers, config.ValidISPDNSServer, &o.DNSServers},
		{"http-url", *c.httpURLs, config.ValidISPURL, &o.HTTPURLs},
	} {
		for _, v := range list.values {
			if err := list.valid(v); err != nil {
				return fmt.Errorf("--%s: %w", list.flag, err)
			}
		}
		if len(list.values) > 0 {
			*list.into = slices.Clone(list.values)
		}
	}
	if g := *c.gateway; g != "" {
		if _, err := config.ParseISPGateway(g); err != nil && g != config.ISPGatewayNone {
			return fmt.Errorf("--gateway: %w", err)
		}
		o.Gateway = g
	}
	if *c.dnsName != "" {
		if _, ok := dns.IsDomainName(*c.dnsName); !ok {
			return fmt.Errorf("--dns-name: %q is not a valid domain name", *c.dnsName)
		}
		o.DNSQueryName = *c.dnsName
	}
	if *c.speedURL != "" {
		if err := config.ValidISPURL(*c.speedURL); err != nil {
			return fmt.Errorf("--speed-url: %w", err)
		}
		o.SpeedURL = *c.speedURL
	}
	if *c.rpmURL != "" {
		if err := config.ValidISPURL(*c.rpmURL); err != nil {
			return fmt.Errorf("--speed-rpm-url: %w", err)
		}
		o.ResponsivenessURL = *c.rpmURL
	}
	if *c.speed {
		if o.SpeedURL == "" {
			return errors.New("--speed needs a URL to download: give --speed-url (or speed_url in the module)")
		}
		o.Speed = true
	}
	return nil
}

// pusher checks --push and --push-instance; nil without --push.
func (c *runCmd) pusher() (*push.Pusher, error) {
	if *c.push == "" {
		if *c.pushInst != "" {
			return nil, errors.New("--push-instance needs --push")
		}
		return nil, nil
	}
	u, err := url.Parse(*c.push)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--push: %q is not an http:// or https:// URL of a Pushgateway", *c.push)
	}
	inst := *c.pushInst
	if inst == "" {
		if inst, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("--push: no host name for the instance label (give --push-instance): %w", err)
		}
	}
	return push.New(*c.push, runPushJob).Grouping("instance", inst).Client(&http.Client{Timeout: runPushTimeout}), nil
}

// runProgress shows on a terminal which check finished last; elsewhere it
// is silent, so pipes and logs stay clean.
type runProgress struct {
	mu sync.Mutex
	w  io.Writer
	on bool
}

func (p *runProgress) start(plan diagnose.Plan) {
	if p.on {
		fmt.Fprintf(p.w, "\r[0/%d] diagnosing: %s, %s, %s…\033[K", diagnose.PlannedSteps(plan),
			report.Plural(len(plan.Targets), "target", "targets"), report.Plural(len(plan.DNSServers), "resolver", "resolvers"),
			report.Plural(len(plan.HTTPURLs), "web site", "web sites"))
	}
}

func (p *runProgress) step(s diagnose.Step) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	status := "ok"
	if !s.OK {
		status = "failed"
	}
	fmt.Fprintf(p.w, "\r[%d/%d] %s %s %s\033[K", s.Done, s.Total, s.Check, s.Target, status)
}

func (p *runProgress) finish() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
