// Command isp-checker is a blackbox-style Prometheus exporter for internet
// connection and website health. This package only parses flags and wires
// the packages together; no probe logic lives here.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/speedtest"
)

// defaultListenAddress is isp-checker's port.
const defaultListenAddress = ":9799"

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses args and runs the chosen command; it returns the exit code.
func run(args []string) int {
	app := kingpin.New("isp-checker", "Blackbox-style Prometheus exporter for internet connection and website health.")
	app.Version(version.Print("isp-checker"))
	app.HelpFlag.Short('h')
	app.UsageWriter(os.Stdout)
	app.ErrorWriter(os.Stderr)

	promslogConfig := &promslog.Config{}
	flag.AddFlags(app, promslogConfig)
	common := &commonFlags{
		configFile: app.Flag("config.file", "Configuration file (blackbox_exporter's modules: format). Default: the embedded configuration.").String(),
	}

	s := &serveCmd{common: common, logConfig: promslogConfig}
	serve := app.Command("serve", "Run the exporter (the default command).").Default()
	s.configCheck = app.Flag("config.check", "Validate the configuration file, print the result and exit.").Bool()
	s.timeoutOffset = number(app, "timeout-offset", "Seconds to subtract from Prometheus's scrape timeout to leave time for the response.", "0.5", false, 0)
	s.historyLimit = number(app, "history.limit", "Number of recent probes kept for the landing page and /logs.", "100", true, 0)
	s.maxConcurrent = number(app, "probes.max-concurrent", "Probes that may run at once; past it /probe answers 503 at once. 0 means no limit.", "1000", true, 0)
	// Throughput prober and speed-test endpoints (throughput issue).
	s.throughputMax = number(app, "throughput.max-concurrent", "Throughput probes that may run at once (they load the link, so more would measure each other); a probe that finds none free waits while its timeout allows, else fails. 0 means no limit.", "1", true, 0)
	s.speedtestEnable = app.Flag("speedtest.enable", "Serve /speedtest/download?bytes=N and /speedtest/upload, so another isp-checker's throughput probe can use this one as its far end, and the responsiveness test's /.well-known/nq (HTTP/2 needs TLS from --web.config.file).").Bool()
	s.speedtestMaxBytes = &bytesFlag{name: "speedtest.max-bytes"}
	app.Flag("speedtest.max-bytes", "Largest download or upload one speed-test request may move.").Default("1GiB").SetValue(s.speedtestMaxBytes)
	// Responsiveness (RPM) server (issue 18).
	s.speedtestRPMMaxDuration = &durationFlag{name: "speedtest.rpm.max-duration", positive: true}
	app.Flag("speedtest.rpm.max-duration", "With --speedtest.enable, the longest a responsiveness download or upload (/speedtest/rpm/large, /speedtest/rpm/upload) may run before the server ends it.").Default("3m").SetValue(s.speedtestRPMMaxDuration)
	s.speedtestPublicURL = &urlFlag{name: "speedtest.public-url", parse: speedtest.ParsePublicURL}
	app.Flag("speedtest.public-url", "With --speedtest.enable, the base URL /.well-known/nq names, e.g. https://speed.example.net when a proxy stands in front (default: the scheme and Host of each request).").SetValue(s.speedtestPublicURL)
	s.webConfig = kingpinflag.AddFlags(app, defaultListenAddress)
	// Server limits against idle and slow clients, and the memory budget (security issue).
	s.idleTimeout = duration(app, "web.idle-timeout", "Close a keep-alive connection idle this long (0: never), so idle clients cannot hold every descriptor.", "1m")
	s.readHeaderTimeout = duration(app, "web.read-header-timeout", "Close a connection whose request headers take longer than this to arrive (0: no limit).", "10s")
	s.memoryBudget = &bytesFlag{name: "probes.memory-budget"}
	app.Flag("probes.memory-budget", "Memory that buffers sized by targets (bodies held for regexp or CEL matching, DNS over HTTPS answers, probe logs) may take across all running probes; a probe that needs more fails.").Default("128MiB").SetValue(s.memoryBudget)

	checkClause, check := addCheckCmd(app, common, promslogConfig)
	// `isp-checker run` (diagnosis issue): its usage errors exit 3, since 2 means "down".
	runClause, runC := addRunCmd(app, common, promslogConfig)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "isp-checker: error: %v; try --help\n", err)
		if isRunParseError(app, runClause, args) { // diagnosis issue
			return runUsageExit
		}
		return 2
	}
	// The memory budget applies to every command's probes (security issue).
	prober.Budget().SetLimit(int64(s.memoryBudget.val))
	switch cmd {
	case serve.FullCommand():
		return s.run()
	case checkClause.FullCommand():
		return check.run()
	case runClause.FullCommand(): // diagnosis issue
		return runC.run()
	}
	fmt.Fprintf(os.Stderr, "isp-checker: unknown command %q\n", cmd)
	return 2
}

// commonFlags are used by every command.
type commonFlags struct {
	configFile *string
}
