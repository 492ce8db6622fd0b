// Package server is the exporter's HTTP server: /probe, the landing page,
// /config, /-/reload, /logs and the probe history, and the exporter's own
// metrics (isp_checker_*). It runs probers from the probers table and
// renders their Results with package collector.
package server

import (
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"

	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/isp-checker/isp-checker/config"
)

// Options configure the exporter's HTTP routes.
type Options struct {
	Probe    ProbeOptions
	Gatherer prometheus.Gatherer
	// Reload re-reads the config (POST /-/reload); it is also what SIGHUP calls.
	Reload func() error
	// Extra routes added by other features (e.g. speed-test endpoints).
	Extra map[string]http.Handler
	// RoutePrefix is the path every route is served under, as
	// ParseRoutePrefix returns it ("/isp/"); "" or "/" is the root.
	RoutePrefix string
	// ExternalURL, if it has a host, is where the root redirects to when
	// a route prefix is set (--web.external-url).
	ExternalURL *url.URL
}

// NewMux returns every route of the exporter on a fresh ServeMux, under
// o.RoutePrefix.
func NewMux(o Options) *http.ServeMux {
	prefix := o.RoutePrefix
	if prefix == "" {
		prefix = "/"
	}
	mux := routes(o)
	if prefix == "/" {
		return mux
	}
	return underPrefix(prefix, o.ExternalURL, mux)
}

// routes are the exporter's routes at the root.
func routes(o Options) *http.ServeMux {
	mux := http.NewServeMux()
	logger := o.Probe.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux.Handle("/probe", NewProbeHandler(o.Probe))
	mux.Handle("/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
			return
		}
		if err := o.Reload(); err != nil {
			logger.Error("error reloading config", "err", err)
			http.Error(w, fmt.Sprintf("failed to reload config, the previous configuration stays in force: %s", err), http.StatusInternalServerError)
			return
		}
		logger.Info("reloaded config")
		_, _ = fmt.Fprintln(w, "Config reloaded")
	})
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		out, err := o.Probe.Config.Get().Marshal()
		if err != nil {
			http.Error(w, fmt.Sprintf("error marshalling config: %s", err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(out)
	})
	history := o.Probe.History
	mux.Handle("/logs", logsHandler(history))
	for path, h := range o.Extra {
		mux.Handle(path, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		page, err := landingPage(o.Probe.Config.Get(), history)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The page answers at its route prefix only: "./", see landingPage.
		u := *r.URL
		u.Path = landingPrefix
		r = r.WithContext(r.Context())
		r.URL = &u
		page.ServeHTTP(w, r)
	})
	return mux
}

// landingPrefix starts the landing page's links: they are relative to the
// page, which is always at the route prefix's root ("/isp/"), so they hold
// under --web.route-prefix and behind a proxy that strips its path too.
const landingPrefix = "./"

// landingPage is exporter-toolkit's landing page with the modules and the
// recent probes added, rebuilt per request so it is always current.
func landingPage(cfg *config.Config, history *History) (http.Handler, error) {
	var b strings.Builder
	b.WriteString("<h2>Modules</h2>\n<table><tr><th>Module</th><th>Prober</th><th>Timeout</th></tr>\n")
	for _, name := range cfg.ModuleNames() {
		m := cfg.Modules[name]
		timeout := "scrape timeout"
		if m.Timeout > 0 {
			timeout = m.Timeout.String()
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			html.EscapeString(name), html.EscapeString(m.Prober), html.EscapeString(timeout))
	}
	b.WriteString("</table>\n<h2>Recent probes</h2>\n<table><tr><th>Module</th><th>Target</th><th>Result</th><th>Started</th><th>Debug</th></tr>\n")
	for _, p := range history.List() {
		result := "<span style=\"color:red\">failure</span>"
		if p.Success {
			result = "success"
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td><a href=\"%slogs?id=%d\">Logs</a></td></tr>\n",
			html.EscapeString(p.Module), html.EscapeString(p.Target), result,
			p.Start.UTC().Format("2006-01-02 15:04:05Z"), landingPrefix, p.ID)
	}
	b.WriteString("</table>\n")
	return web.NewLandingPage(web.LandingConfig{
		RoutePrefix: landingPrefix,
		// No /debug/pprof here: the page would link to profiles that are not served.
		Profiling:   "false",
		Name:        "isp-checker",
		Description: "Blackbox-style exporter for internet connection and website health",
		Version:     version.Info(),
		Form: web.LandingForm{
			Action: "probe",
			Inputs: []web.LandingFormInput{
				{Label: "Target", Type: "text", Name: "target", Placeholder: "https://example.com"},
				{Label: "Module", Type: "text", Name: "module", Placeholder: "http_2xx"},
				{Label: "Debug", Type: "checkbox", Name: "debug", Value: "true"},
			},
		},
		Links: []web.LandingLinks{
			{Address: "metrics", Text: "Metrics"},
			{Address: "config", Text: "Configuration"},
		},
		ExtraHTML: b.String(),
	})
}
