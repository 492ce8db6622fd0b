package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/isp-checker/isp-checker/collector"
	"github.com/isp-checker/isp-checker/config"
	"github.com/isp-checker/isp-checker/prober"
	"github.com/isp-checker/isp-checker/speedtest"
)

type serveCmd struct {
	common        *commonFlags
	logConfig     *promslog.Config
	configCheck   *bool
	timeoutOffset *numberFlag
	historyLimit  *numberFlag
	maxConcurrent *numberFlag
	webConfig     *web.FlagConfig

	// Server limits and the memory budget (security issue).
	idleTimeout       *durationFlag
	readHeaderTimeout *durationFlag
	memoryBudget      *bytesFlag

	// Throughput prober and speed-test endpoints (throughput issue).
	throughputMax     *numberFlag
	speedtestEnable   *bool
	speedtestMaxBytes *bytesFlag

	// Responsiveness (RPM) server (issue 18).
	speedtestRPMMaxDuration *durationFlag
	speedtestPublicURL      *urlFlag
}

func (s *serveCmd) run() int {
	logger := promslog.New(s.logConfig)
	reg := prometheus.NewRegistry()
	holder := config.NewHolder(*s.common.configFile, reg)
	if err := holder.Reload(); err != nil {
		if *s.configCheck {
			fmt.Fprintf(os.Stderr, "isp-checker: config is invalid: %v\n", err)
		} else {
			logger.Error("error loading config", "err", err)
		}
		return 1
	}
	source := holder.Path()
	if source == "" {
		source = "embedded default"
	}
	if *s.configCheck {
		fmt.Printf("Config file %s is ok: %d modules\n", source, len(holder.Get().Modules))
		return 0
	}
	logger.Info("starting isp-checker", "version", version.Info(), "build_context", version.BuildContext())
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

	// Throughput prober and speed-test endpoints (throughput issue).
	prober.SetThroughputConcurrency(int(s.throughputMax.val))
	var extra map[string]http.Handler
	var connContext func(context.Context, net.Conn) context.Context
	if *s.speedtestEnable {
		o := speedtest.Options{MaxBytes: int64(s.speedtestMaxBytes.val), Registerer: reg, Logger: logger}
		// Responsiveness (RPM) server (issue 18).
		o.RPMMaxDuration, o.PublicURL = s.speedtestRPMMaxDuration.val, s.speedtestPublicURL.val
		st := speedtest.New(o)
		extra, connContext = st.Routes(), st.ConnContext
		logger.Info("speed-test endpoints enabled", "paths", speedtest.DownloadPath+" "+speedtest.UploadPath, "max_bytes", int64(s.speedtestMaxBytes.val))
		logger.Info("responsiveness test server enabled", "config", speedtest.WellKnownPath, "max_duration", o.RPMMaxDuration)
		if *s.webConfig.WebConfigFile == "" {
			logger.Warn("responsiveness clients need HTTP/2 over TLS: without --web.config.file they cannot use " + speedtest.WellKnownPath)
		}
	}

	mux := collector.NewMux(collector.ServerOptions{
		Probe: collector.ProbeOptions{
			Config:        holder,
			Logger:        logger,
			Metrics:       collector.NewSelfMetrics(reg),
			History:       collector.NewHistory(int(s.historyLimit.val)),
			TimeoutOffset: time.Duration(s.timeoutOffset.val * float64(time.Second)),
			MaxConcurrent: int(s.maxConcurrent.val),
		},
		Gatherer: reg,
		Reload:   reload,
		Extra:    extra, // speed-test endpoints (throughput issue)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: s.readHeaderTimeout.val, IdleTimeout: s.idleTimeout.val,
		ConnContext: connContext} // the responsiveness endpoints' view of each connection (issue 18)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, s.webConfig, logger) }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("error serving", "err", err)
			return 1
		}
	case <-ctx.Done():
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return 0
}
