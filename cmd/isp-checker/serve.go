package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/probers"
	"github.com/isp-checker/isp-checker/report"
	"github.com/isp-checker/isp-checker/server"
	"github.com/isp-checker/isp-checker/speedtest"
)

// defaultListenAddress is isp-checker's port.
const defaultListenAddress = ":9799"

// serveCmd is `isp-checker serve`, the default command: the exporter.
type serveCmd struct {
	configFile    *string
	configCheck   *bool
	timeoutOffset *numberFlag
	historyLimit  *numberFlag
	maxConcurrent *numberFlag
	webConfig     *web.FlagConfig

	// Limits against idle and slow clients, which could otherwise hold
	// every descriptor.
	idleTimeout       *durationFlag
	readHeaderTimeout *durationFlag

	// The throughput prober loads the link; the speed-test endpoints make
	// this exporter another's far end.
	throughputMax     *numberFlag
	speedtestEnable   *bool
	speedtestMaxBytes *bytesFlag

	// The responsiveness (RPM) server's bound on one transfer, and the
	// base URL /.well-known/nq names when a proxy stands in front.
	speedtestRPMMaxDuration *durationFlag
	speedtestPublicURL      *urlFlag

	// blackbox_exporter's flags of its main branch: the probes' own log
	// level, polling the config file, and serving behind a reverse proxy.
	log                *promslog.Config // the global --log.* flags
	logProber          *promslog.Level
	autoReload         *bool
	autoReloadInterval *intervalFlag
	externalURL        *urlFlag
	routePrefix        *pathFlag
}

// addServeCmd declares serve and its flags. It is the default command,
// so kingpin takes a flag it does not know before any command name as
// serve's: `isp-checker --config.file=F --web.listen-address=A` is serve.
func addServeCmd(app *kingpin.Application, g *globalFlags) *command {
	s := &serveCmd{configFile: g.configFile, log: g.log}
	cmd := app.Command("serve", "Run the exporter (the default command).").Default()
	s.configCheck = cmd.Flag("config.check", "Validate the configuration file, print the result and exit (1 if it is not valid).").Bool()
	s.timeoutOffset = number(cmd, "timeout-offset", "Seconds to subtract from Prometheus's scrape timeout to leave time for the response.", "0.5", false, 0)
	s.historyLimit = number(cmd, "history.limit", "Number of recent probes kept for the landing page and /logs.", "100", true, 0)
	s.maxConcurrent = number(cmd, "probes.max-concurrent", "Probes that may run at once; past it /probe answers 503 at once. 0 means no limit.", "1000", true, 0)
	s.throughputMax = number(cmd, "throughput.max-concurrent", "Throughput probes that may run at once (they load the link, so more would measure each other); a probe that finds none free waits while its timeout allows, else fails. 0 means no limit.", "1", true, 0)
	s.speedtestEnable = cmd.Flag("speedtest.enable", "Serve /speedtest/download?bytes=N and /speedtest/upload, so another isp-checker's throughput probe can use this one as its far end, and the responsiveness test's /.well-known/nq (HTTP/2 needs TLS from --web.config.file).").Bool()
	s.speedtestMaxBytes = sizeFlag(cmd, "speedtest.max-bytes", "Largest download or upload one speed-test request may move.", "1GiB")
	s.speedtestRPMMaxDuration = duration(cmd, "speedtest.rpm.max-duration", "With --speedtest.enable, the longest a responsiveness download or upload (/speedtest/rpm/large, /speedtest/rpm/upload) may run before the server ends it.", "3m")
	s.speedtestPublicURL = &urlFlag{name: "speedtest.public-url", parse: speedtest.ParsePublicURL}
	cmd.Flag("speedtest.public-url", "With --speedtest.enable, the base URL /.well-known/nq names, e.g. https://speed.example.net when a proxy stands in front (default: the scheme and Host of each request).").SetValue(s.speedtestPublicURL)
	s.logProber = promslog.NewLevel()
	cmd.Flag("log.prober", "Level of the probes' log lines on stderr, whatever --log.level says: one of debug, info, warn, error. The lines of each step of a probe (info in debug=true output) count as debug, so info prints a probe's warnings and errors, as blackbox_exporter's does; debug=true and /logs show every line.").
		Default("info").HintOptions(promslog.LevelFlagOptions...).SetValue(&namedValue{name: "log.prober", Value: s.logProber})
	s.autoReload = cmd.Flag("config.enable-auto-reload", "Reload --config.file when its content changes, checked every --config.auto-reload-interval (a file that does not load keeps the old config, as SIGHUP and /-/reload do).").Bool()
	s.autoReloadInterval = &intervalFlag{name: "config.auto-reload-interval"}
	cmd.Flag("config.auto-reload-interval", "How often --config.enable-auto-reload looks at the config file: seconds (30), as blackbox_exporter takes it, or a duration (30s).").Default("30").SetValue(s.autoReloadInterval)
	s.externalURL = &urlFlag{name: "web.external-url", parse: server.ParseExternalURL}
	cmd.Flag("web.external-url", "The URL the exporter is reached at, e.g. through a reverse proxy (https://probes.example.net/blackbox): its path is the default --web.route-prefix, and / redirects to it.").PlaceHolder("<url>").SetValue(s.externalURL)
	s.routePrefix = &pathFlag{name: "web.route-prefix", parse: server.ParseRoutePrefix, val: "/"}
	cmd.Flag("web.route-prefix", "Path every endpoint is served under (/probe, /metrics, the landing page, …). Default: the path of --web.external-url.").PlaceHolder("<path>").SetValue(s.routePrefix)
	s.webConfig = kingpinflag.AddFlags(cmd, defaultListenAddress)
	s.idleTimeout = limit(cmd, "web.idle-timeout", "Close a keep-alive connection idle this long (0: never), so idle clients cannot hold every descriptor.", "1m")
	s.readHeaderTimeout = limit(cmd, "web.read-header-timeout", "Close a connection whose request headers take longer than this to arrive (0: no limit). Without --web.config.file it counts from the connection's first bytes or, for one that sends nothing, from 1-3 s after it connected (TCP_DEFER_ACCEPT).", "10s")
	return &command{clause: cmd, usageCode: 2, exec: s.exec}
}

// prefix is --web.route-prefix, or the path of --web.external-url.
func (s *serveCmd) prefix() (string, error) {
	if s.routePrefix.set || s.externalURL.val == nil {
		return s.routePrefix.val, nil
	}
	p, err := server.ParseRoutePrefix(s.externalURL.val.Path)
	if err != nil {
		return "", fmt.Errorf("--web.external-url: the path of %s cannot be a route prefix: %w", s.externalURL, err)
	}
	return p, nil
}

// exec serves until SIGINT or SIGTERM; with --config.check it only
// validates the configuration.
func (s *serveCmd) exec(e *env) error {
	if *s.configCheck {
		cfg, source, err := loadConfig(*s.configFile)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("config is invalid: %w", err)}
		}
		fmt.Fprintf(e.stdout, "%s is ok: %s\n", source, report.Plural(len(cfg.Modules), "module", "modules"))
		return nil
	}
	if *s.autoReload && *s.configFile == "" {
		return e.usage(errors.New("--config.enable-auto-reload needs --config.file (the embedded default config never changes)"))
	}
	prefix, err := s.prefix()
	if err != nil {
		return e.usage(err)
	}
	logger := e.logger
	reg := prometheus.NewRegistry()
	holder := config.NewHolder(*s.configFile, reg)
	var watcher *server.ConfigWatcher
	if *s.autoReload {
		watcher = server.NewConfigWatcher(*s.configFile) // before the load, so a change during it is seen
	}
	if err := holder.Reload(); err != nil {
		logger.Error("error loading config", "err", err)
		return exitStatus(1)
	}
	source := holder.Path()
	if source == "" {
		source = "embedded default"
	}
	gogc, fromEnv := tuneGC()
	logger.Info("starting isp-checker", "version", version.Info(), "build_context", version.BuildContext())
	logger.Debug("garbage collection target", "gogc", gogc, "from_env", fromEnv)
	logger.Info("loaded config", "config", source, "modules", len(holder.Get().Modules))

	var reloadMu sync.Mutex
	reload := func() error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		return holder.Reload()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := reload(); err != nil {
				logger.Error("error reloading config, keeping the old one", "err", err)
				continue
			}
			logger.Info("reloaded config")
		}
	}()
	if watcher != nil {
		wctx, stopWatching := context.WithCancel(context.Background())
		defer stopWatching()
		go watcher.Run(wctx, s.autoReloadInterval.val, reload, logger)
		logger.Info("reloading the config file when it changes", "file", *s.configFile, "interval", s.autoReloadInterval.val)
	}

	prober.SetThroughputConcurrency(int(s.throughputMax.val))
	var extra map[string]http.Handler
	var connContext func(context.Context, net.Conn) context.Context
	if *s.speedtestEnable {
		o := speedtest.Options{MaxBytes: int64(s.speedtestMaxBytes.val), Registerer: reg, Logger: logger}
		o.RPMMaxDuration, o.PublicURL, o.RoutePrefix = s.speedtestRPMMaxDuration.val, s.speedtestPublicURL.val, prefix
		st := speedtest.New(o)
		extra, connContext = st.Routes(), st.ConnContext
		logger.Info("speed-test endpoints enabled", "paths", speedtest.DownloadPath+" "+speedtest.UploadPath, "max_bytes", int64(s.speedtestMaxBytes.val))
		logger.Info("responsiveness test server enabled", "config", speedtest.WellKnownPath, "max_duration", o.RPMMaxDuration)
		if *s.webConfig.WebConfigFile == "" {
			logger.Warn("responsiveness clients need HTTP/2 over TLS: without --web.config.file they cannot use " + speedtest.WellKnownPath)
		}
	}

	srv := &http.Server{ReadHeaderTimeout: s.readHeaderTimeout.val, IdleTimeout: s.idleTimeout.val,
		ConnContext: connContext} // the responsiveness endpoints' view of each connection
	// icmp probes wait holding no goroutine, their connections parked
	// (server.Parker), which hands them back to srv.
	parker := server.NewParker(srv, logger)
	// At most this many connections are served at once until their
	// request parks or starts its probe (server.LimitAdmission). Not with
	// a web config file: exporter-toolkit's handler (basic auth, whose
	// uncached checks run bcrypt one at a time) comes before any handler
	// of the exporter's, so a client could hold every place with wrong
	// passwords; and TLS connections are never parked.
	if *s.webConfig.WebConfigFile == "" {
		server.LimitAdmission(srv, 16*runtime.GOMAXPROCS(0), server.AdmissionHold)
		// For the same reasons, only then does the Parker read the next
		// requests of its idle connections itself.
		parker.ReadRequests()
	}
	reg.MustRegister(parker)
	mux := server.NewMux(server.Options{
		Probe: server.ProbeOptions{
			Config:        holder,
			Probers:       probers.All(),
			Logger:        logger,
			Metrics:       server.NewSelfMetrics(reg),
			History:       server.NewHistory(int(s.historyLimit.val)),
			TimeoutOffset: time.Duration(s.timeoutOffset.val * float64(time.Second)),
			MaxConcurrent: int(s.maxConcurrent.val),
			ProbeLog: promslog.New(&promslog.Config{Level: s.logProber, Format: s.log.Format, Style: s.log.Style,
				Writer: s.log.Writer}).Handler(),
			Parker: parker,
		},
		Gatherer:    reg,
		Reload:      reload,
		Extra:       extra,
		RoutePrefix: prefix,
		ExternalURL: s.externalURL.val,
	})
	if prefix != "/" {
		logger.Info("serving under a route prefix", "route_prefix", prefix, "external_url", s.externalURL.String())
	}
	srv.Handler = server.AdmitHandler(mux)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- listenAndServe(srv, s.webConfig, parker, logger) }()
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = parker.Shutdown(sctx) // the parked probes' answers
	}
	select {
	case err := <-errc:
		shutdown()
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("error serving", "err", err)
			return exitStatus(1)
		}
	case <-ctx.Done():
		logger.Info("shutting down")
		shutdown()
	}
	return nil
}
