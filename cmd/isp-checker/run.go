package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/promslog"

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
	common     *commonFlags
	logConfig  *promslog.Config
	targets    *[]string
	dnsServers *[]string
	dnsName    *string
	httpURLs   *[]string
	gateway    *string
	speed      *bool
	speedURL   *string
	format     *string
	output     *string
	module     *string
	timeout    *time.Duration
	push       *string
	pushInst   *string
	verdictRC  *bool

	// stdout and stderr are the process's, or a test's buffers.
	stdout, stderr io.Writer
	// terminal says stderr (progress) and stdout (colour) are terminals.
	progressOn, colorOn bool
}

func addRunCmd(app *kingpin.Application, common *commonFlags, logConfig *promslog.Config) (*kingpin.CmdClause, *runCmd) {
	c := &runCmd{common: common, logConfig: logConfig}
	cmd := app.Command("run", "Diagnose the connection once: is it the LAN, the ISP, DNS or the remote end? Exit status 0 healthy, 1 degraded, 2 down, 4 unknown (not measured), 3 usage error.")
	c.targets = cmd.Flag("target", "Internet target to ping (repeatable; the first is traced). Default: the module's (1.1.1.1, 8.8.8.8, 9.9.9.9).").Strings()
	c.dnsServers = cmd.Flag("dns-server", "Resolver to query, ip or ip:port (repeatable). Default: the module's, else the nameservers of /etc/resolv.conf.").Strings()
	c.dnsName = cmd.Flag("dns-name", "Name to resolve. Default: the module's (example.com).").String()
	c.httpURLs = cmd.Flag("http-url", "Web site to fetch (repeatable). Default: the module's (https://www.example.com/).").Strings()
	c.gateway = cmd.Flag("gateway", `The LAN gateway's address, or "none" to skip it. Default: the default route's gateway (/proc/net/route).`).String()
	c.speed = cmd.Flag("speed", "Also measure throughput and bufferbloat (after the other checks) against --speed-url.").Bool()
	c.speedURL = cmd.Flag("speed-url", "URL to download for --speed (e.g. another isp-checker's /speedtest/download?bytes=100000000).").String()
	c.format = cmd.Flag("format", "Output format on standard output: text or json.").Default("text").String()
	c.output = cmd.Flag("output", "Also write the JSON report to this file.").Short('o').String()
	c.module = cmd.Flag("module", "isp module of --config.file whose thresholds and check lists to use.").Default("isp").String()
	c.timeout = cmd.Flag("timeout", "Time the whole diagnosis may take.").Default("60s").Duration()
	c.push = cmd.Flag("push", `Push the diagnosis's probe_isp_* metrics to this Prometheus Pushgateway (e.g. http://pushgateway:9091), as job "`+runPushJob+`".`).PlaceHolder("URL").String()
	c.pushInst = cmd.Flag("push-instance", "The instance label of the pushed group. Default: the host name.").String()
	c.verdictRC = cmd.Flag("verdict-exit-code", "Exit with the verdict's status (0 healthy, 1 degraded, 2 down, 4 unknown). --no-verdict-exit-code exits 0 once the report is written (and pushed), for schedulers that count any other status as a failed job.").Default("true").Bool()
	return cmd, c
}

// isRunParseError tells whether a command line that kingpin refused was
// meant for `run`, whose usage errors exit with runUsageExit.
func isRunParseError(app *kingpin.Application, clause *kingpin.CmdClause, args []string) bool {
	ctx, _ := app.ParseContext(args)
	return ctx != nil && ctx.SelectedCommand == clause
}

func (c *runCmd) run() int {
	if c.stdout == nil {
		c.stdout, c.stderr = os.Stdout, os.Stderr
		c.progressOn = isTerminal(os.Stderr)
		c.colorOn = isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	}
	code, err := c.diagnose()
	if err != nil {
		fmt.Fprintf(c.stderr, "isp-checker run: %v\n", err)
		return code
	}
	if !*c.verdictRC {
		return 0
	}
	return code
}

// options merges the module (from --config.file, or the defaults) with the
// flags.
func (c *runCmd) options() (config.ISPProbe, config.TargetPolicy, error) {
	o, policy := config.DefaultISPProbe(), config.DefaultTargetPolicy()
	if *c.common.configFile != "" {
		cfg, err := config.LoadFile(*c.common.configFile)
		if err != nil {
			return o, policy, err
		}
		m, ok := cfg.Modules[*c.module]
		if !ok {
			return o, policy, fmt.Errorf("%s has no module %q (modules: %s)", *c.common.configFile, *c.module, strings.Join(cfg.ModuleNames(), ", "))
		}
		if m.Prober != "isp" {
			return o, policy, fmt.Errorf("module %q uses the %s prober; run needs an isp module", *c.module, m.Prober)
		}
		o, policy = m.ISP, cfg.TargetPolicy
	} else if *c.module != "isp" {
		return o, policy, fmt.Errorf("--module %q needs --config.file (without it, run uses its built-in defaults)", *c.module)
	}
	if len(*c.targets) > 0 {
		o.Targets = slices.Clone(*c.targets)
	}
	if len(*c.dnsServers) > 0 {
		o.DNSServers = slices.Clone(*c.dnsServers)
	}
	if *c.dnsName != "" {
		o.DNSQueryName = *c.dnsName
	}
	if len(*c.httpURLs) > 0 {
		o.HTTPURLs = slices.Clone(*c.httpURLs)
	}
	if *c.gateway != "" {
		o.Gateway = *c.gateway
	}
	if *c.speedURL != "" {
		o.SpeedURL = *c.speedURL
	}
	if *c.speed {
		if o.SpeedURL == "" {
			return o, policy, errors.New("--speed needs a URL to download: give --speed-url (or speed_url in the module)")
		}
		o.Speed = true
	}
	if err := o.Validate(); err != nil {
		return o, policy, err
	}
	return o, policy, nil
}

func (c *runCmd) diagnose() (int, error) {
	if !slices.Contains(report.RunFormats, *c.format) {
		return runUsageExit, fmt.Errorf("--format %q is not valid (text or json)", *c.format)
	}
	if *c.timeout <= 0 {
		return runUsageExit, errors.New("--timeout must be positive")
	}
	o, policy, err := c.options()
	if err != nil {
		return runUsageExit, err
	}
	pusher, err := c.pusher()
	if err != nil {
		return runUsageExit, err
	}
	// Open the output first, so a bad path fails before the work.
	var outFile *os.File
	if *c.output != "" {
		if outFile, err = os.Create(*c.output); err != nil {
			return runUsageExit, err
		}
		defer outFile.Close()
	}

	plan := diagnose.NewPlan(o, diagnose.Flagged{Gateway: *c.gateway != "", DNS: len(*c.dnsServers) > 0})
	logger := slog.New(slog.DiscardHandler)
	if c.logConfig.Level != nil && c.logConfig.Level.String() == "debug" {
		logger = promslog.New(c.logConfig) // probe logs only when asked for: they would bury the report
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *c.timeout)
	defer cancel()

	prog := &runProgress{w: c.stderr, on: c.progressOn}
	prog.start(plan)
	res := diagnose.Run(ctx, plan, diagnose.Options{
		Policy: prober.NewPolicy(policy, nil), Logger: logger, Progress: prog.step,
	})
	prog.finish()

	if err := report.WriteRun(c.stdout, *c.format, res, report.TextOptions{Color: c.colorOn}); err != nil {
		return runUsageExit, fmt.Errorf("writing the report: %w", err)
	}
	if outFile != nil {
		if err := report.WriteRun(outFile, "json", res, report.TextOptions{}); err != nil {
			return runUsageExit, fmt.Errorf("writing %s: %w", *c.output, err)
		}
		if err := outFile.Close(); err != nil {
			return runUsageExit, fmt.Errorf("writing %s: %w", *c.output, err)
		}
	}
	if pusher != nil {
		pctx, cancel := context.WithTimeout(context.Background(), runPushTimeout)
		defer cancel()
		if err := pusher.Gatherer(collector.ISPGatherer(res, logger)).PushContext(pctx); err != nil {
			return runUsageExit, fmt.Errorf("pushing to %s: %w", *c.push, err)
		}
	}
	return diagnose.ExitCode(res.Verdict), nil
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
		return nil, fmt.Errorf("--push %q is not an http:// or https:// URL of a Pushgateway", *c.push)
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
		fmt.Fprintf(p.w, "\r[0/%d] diagnosing: %d targets, %d resolvers, %d web sites…\033[K",
			diagnose.PlannedSteps(plan), len(plan.Targets), len(plan.DNSServers), len(plan.HTTPURLs))
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
