package collector

import (
	"strconv"
	"strings"

	"github.com/isp-checker/isp-checker/prober"
)

// RenderHTTP writes the http prober's metrics with blackbox_exporter's names,
// meanings and presence rules.
func RenderHTTP(r *prober.HTTPResult, e *Emitter) {
	for _, phase := range prober.HTTPPhases {
		if v, ok := r.PhaseSeconds[phase]; ok {
			e.Gauge("probe_http_duration_seconds", "Duration of http request by phase, summed over all redirects", v, "phase", phase)
		}
	}
	e.Gauge("probe_http_content_length", "Length of http content response", float64(r.ContentLength))
	e.Gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body", float64(r.UncompressedBodyLength))
	e.Gauge("probe_http_redirects", "The number of redirects", float64(r.Redirects))
	e.Bool("probe_http_ssl", "Indicates if SSL was used for the final redirect", r.SSL)
	e.Gauge("probe_http_status_code", "Response HTTP status code", float64(r.StatusCode))
	e.Gauge("probe_http_version", "Returns the version of HTTP of the probe response", httpVersionNumber(r.HTTPVersion))
	e.Bool("probe_failed_due_to_regex", "Indicates if probe failed due to regex", r.FailedDueToRegex)
	if r.FailedDueToCEL != nil {
		e.Bool("probe_failed_due_to_cel", "Indicates if probe failed due to CEL expression not matching", *r.FailedDueToCEL)
	}
	if !r.LastModified.IsZero() {
		e.Gauge("probe_http_last_modified_timestamp_seconds", "Returns the Last-Modified HTTP response header in unixtime", float64(r.LastModified.Unix()))
	}
	renderTLS(r.TLS, e)
}

// httpVersionNumber turns "HTTP/1.1" into 1.1 and "HTTP/2.0" into 2; 0 when
// there was no response.
func httpVersionNumber(proto string) float64 {
	v, err := strconv.ParseFloat(strings.TrimPrefix(proto, "HTTP/"), 64)
	if err != nil {
		return 0
	}
	return v
}
