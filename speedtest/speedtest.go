// Package speedtest serves the far end of a throughput probe, so that two
// isp-checkers can measure the path between two sites without a third-party
// server:
//
//	GET  /speedtest/download?bytes=N  sends N bytes (default and cap: MaxBytes)
//	POST /speedtest/upload            reads and discards the body (cap: MaxBytes)
//
// and the far end of a responsiveness (RPM) test, as
// draft-ietf-ippm-responsiveness-09 defines its server, for isp-checker's
// own prober and for standard clients (goresponsiveness, Apple's
// networkQuality):
//
//	GET  /.well-known/nq         the configuration document naming the three URLs below
//	GET  /speedtest/rpm/small    1 byte, for the latency probes
//	GET  /speedtest/rpm/large    endless random data, until the client stops
//	POST /speedtest/rpm/upload   reads and discards an endless body
//
// The endpoints are opt-in (isp-checker serve --speedtest.enable). Every
// throughput request is size-capped and at most MaxConcurrent run at once;
// the responsiveness transfers are bounded by time (RPMMaxDuration) and by
// their own RPMMaxConcurrent, since a standard client needs dozens at once
// and never asks for a size (more get 503 at once either way). Bytes and
// requests are counted in isp_checker_speedtest_bytes_total{direction},
// isp_checker_speedtest_requests_total{direction,result} and
// isp_checker_speedtest_rpm_requests_total{endpoint,result}.
//
// The draft requires HTTP/2 over TLS: serve the handler with TLS (in
// isp-checker, --web.config.file), where net/http negotiates h2, and set
// http.Server.ConnContext to Handler.ConnContext.
package speedtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Routes served by Handler.Routes.
const (
	DownloadPath = "/speedtest/download"
	UploadPath   = "/speedtest/upload"
)

// Defaults for Options' zero values.
const (
	DefaultMaxBytes      = 1 << 30 // 1 GiB per request
	DefaultMaxConcurrent = 32
)

// Results of a request, the result label of isp_checker_speedtest_requests_total.
const (
	ResultSuccess    = "success"     // the whole transfer happened
	ResultAborted    = "aborted"     // the client went away mid-transfer (normal at the end of a timed probe)
	ResultBadRequest = "bad_request" // bad parameters or method (400, 405)
	ResultTooLarge   = "too_large"   // an upload above MaxBytes (413)
	ResultBusy       = "busy"        // MaxConcurrent transfers were running (503)
)

// Options configure the endpoints.
type Options struct {
	// MaxBytes caps one request's transfer, either direction. 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxConcurrent caps the transfers running at once; past it requests
	// get 503. 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	// RPMMaxConcurrent caps the responsiveness test's load-generating
	// transfers (large downloads and uploads) running at once; small and
	// configuration requests do not count. 0 means DefaultRPMMaxConcurrent.
	RPMMaxConcurrent int
	// RPMMaxDuration ends a responsiveness download or upload that has run
	// this long. 0 means DefaultRPMMaxDuration.
	RPMMaxDuration time.Duration
	// SendBufferTime is how much unsent data, in time at the connection's
	// rate, a responsiveness download keeps in the kernel
	// (TCP_NOTSENT_LOWAT, Linux). 0 means DefaultSendBufferTime; negative
	// leaves the kernel's default.
	SendBufferTime time.Duration
	// PublicURL is the base the configuration document's URLs start with
	// (see ParsePublicURL); nil builds it from each request's scheme and
	// Host, which is right unless a proxy stands in front.
	PublicURL *url.URL
	// RoutePrefix is the path the endpoints are served under
	// (--web.route-prefix, e.g. "/isp/"); without PublicURL the
	// configuration document's URLs start with it.
	RoutePrefix string
	// Registerer receives the counters; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger logs refused and failed requests (debug level).
	Logger *slog.Logger
}

// Handler serves the speed-test endpoints.
type Handler struct {
	maxBytes int64
	sem      chan struct{}
	logger   *slog.Logger
	bytes    *prometheus.CounterVec
	requests *prometheus.CounterVec

	// Responsiveness endpoints.
	lgcSem         chan struct{}
	rpmMaxDuration time.Duration
	sendBuffer     time.Duration
	publicURL      *url.URL
	routePrefix    string // without its trailing slash
	rpmRequests    *prometheus.CounterVec
}

// chunkSize is how much is written or read per call.
const chunkSize = 128 << 10

// payload is the data sent by downloads: random, so compression on the path
// (a proxy, a VPN) cannot inflate the rate; 1 MiB, larger than any
// compressor's window. Built on first use, so an exporter without the
// endpoints does not carry it; read-only after that.
var payload = sync.OnceValue(func() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(0x15bc4ec4e5, 0x5beed))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
})

// New returns the endpoints' handler and registers its counters.
func New(o Options) *Handler {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RPMMaxConcurrent <= 0 {
		o.RPMMaxConcurrent = DefaultRPMMaxConcurrent
	}
	if o.RPMMaxDuration <= 0 {
		o.RPMMaxDuration = DefaultRPMMaxDuration
	}
	if o.SendBufferTime == 0 {
		o.SendBufferTime = DefaultSendBufferTime
	}
	h := &Handler{
		maxBytes:       o.MaxBytes,
		sem:            make(chan struct{}, o.MaxConcurrent),
		logger:         o.Logger,
		lgcSem:         make(chan struct{}, o.RPMMaxConcurrent),
		rpmMaxDuration: o.RPMMaxDuration,
		sendBuffer:     o.SendBufferTime,
		publicURL:      o.PublicURL,
		routePrefix:    strings.TrimSuffix(o.RoutePrefix, "/"),
		rpmRequests:    newRPMRequests(),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isp_checker_speedtest_bytes_total",
			Help: "Bytes sent (download) or received (upload) by the speed-test endpoints.",
		}, []string{"direction"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "isp_checker_speedtest_requests_total",
			Help: "Requests to the speed-test endpoints, by direction and result (success, aborted, bad_request, too_large, busy).",
		}, []string{"direction", "result"}),
	}
	for _, d := range []string{"download", "upload"} {
		h.bytes.WithLabelValues(d)
		for _, r := range []string{ResultSuccess, ResultAborted, ResultBadRequest, ResultTooLarge, ResultBusy} {
			if d == "download" && r == ResultTooLarge {
				continue
			}
			h.requests.WithLabelValues(d, r)
		}
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(h.bytes, h.requests, h.rpmRequests)
	}
	return h
}

// MaxBytes is the per-request cap in force.
func (h *Handler) MaxBytes() int64 { return h.maxBytes }

// Routes returns the endpoints by path, for server.Options.Extra.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		DownloadPath:  http.HandlerFunc(h.Download),
		UploadPath:    http.HandlerFunc(h.Upload),
		WellKnownPath: http.HandlerFunc(h.WellKnown),
		RPMSmallPath:  http.HandlerFunc(h.Small),
		RPMLargePath:  http.HandlerFunc(h.Large),
		RPMUploadPath: http.HandlerFunc(h.RPMUpload),
	}
}

func (h *Handler) refuse(w http.ResponseWriter, direction, result string, code int, msg string) {
	h.requests.WithLabelValues(direction, result).Inc()
	h.logger.Debug("speed-test request refused", "direction", direction, "result", result, "reason", msg)
	http.Error(w, msg, code)
}

// acquire takes a transfer slot, or answers 503.
func (h *Handler) acquire(w http.ResponseWriter, direction string) bool {
	select {
	case h.sem <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "1")
		h.refuse(w, direction, ResultBusy, http.StatusServiceUnavailable,
			fmt.Sprintf("speed test busy: %d transfers running; try again later", cap(h.sem)))
		return false
	}
}

func (h *Handler) release() { <-h.sem }

// noCache marks a response as never to be cached or transformed, so no
// proxy serves a copy instead of measuring the path.
func noCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store, no-transform")
}

// Download serves GET /speedtest/download?bytes=N: N bytes of random data
// (default MaxBytes), with a Content-Length. HEAD answers the headers only.
func (h *Handler) Download(w http.ResponseWriter, r *http.Request) {
	const dir = "download"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.refuse(w, dir, ResultBadRequest, http.StatusMethodNotAllowed, "speed-test download needs GET")
		return
	}
	n := h.maxBytes
	if s := r.URL.Query().Get("bytes"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 || v > h.maxBytes {
			h.refuse(w, dir, ResultBadRequest, http.StatusBadRequest,
				fmt.Sprintf("bytes=%q: want a whole number from 0 to %d (the server's --speedtest.max-bytes)", s, h.maxBytes))
			return
		}
		n = v
	}
	if !h.acquire(w, dir) {
		return
	}
	defer h.release()
	noCache(w)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		h.requests.WithLabelValues(dir, ResultSuccess).Inc()
		return
	}
	var sent int64
	counter := h.bytes.WithLabelValues(dir)
	off := 0
	for sent < n {
		chunk := payload()[off:min(off+chunkSize, len(payload()))]
		if rest := n - sent; int64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		k, err := w.Write(chunk)
		sent += int64(k)
		counter.Add(float64(k))
		if err != nil {
			h.requests.WithLabelValues(dir, ResultAborted).Inc()
			h.logger.Debug("speed-test download aborted", "sent", sent, "of", n, "err", err)
			return
		}
		off = (off + k) % len(payload())
	}
	h.requests.WithLabelValues(dir, ResultSuccess).Inc()
}

// UploadResult is the JSON body of a successful upload.
type UploadResult struct {
	Bytes          int64   `json:"bytes"`
	Seconds        float64 `json:"seconds"`
	BytesPerSecond float64 `json:"bytes_per_second"`
}

// Upload serves POST (or PUT) /speedtest/upload: it reads and discards the
// body, at most MaxBytes, and answers with an UploadResult. A larger
// Content-Length is refused at once with 413; a chunked body that grows past
// the cap gets 413 when it does.
func (h *Handler) Upload(w http.ResponseWriter, r *http.Request) {
	const dir = "upload"
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		h.refuse(w, dir, ResultBadRequest, http.StatusMethodNotAllowed, "speed-test upload needs POST or PUT")
		return
	}
	if r.ContentLength > h.maxBytes {
		h.refuse(w, dir, ResultTooLarge, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("upload of %d bytes is above the limit of %d bytes (the server's --speedtest.max-bytes)", r.ContentLength, h.maxBytes))
		return
	}
	if !h.acquire(w, dir) {
		return
	}
	defer h.release()
	start := time.Now()
	body := http.MaxBytesReader(w, r.Body, h.maxBytes)
	counter := h.bytes.WithLabelValues(dir)
	buf := make([]byte, chunkSize)
	var got int64
	for {
		k, err := body.Read(buf)
		got += int64(k)
		counter.Add(float64(k))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				h.refuse(w, dir, ResultTooLarge, http.StatusRequestEntityTooLarge,
					fmt.Sprintf("upload is above the limit of %d bytes (the server's --speedtest.max-bytes)", h.maxBytes))
				return
			}
			h.requests.WithLabelValues(dir, ResultAborted).Inc()
			h.logger.Debug("speed-test upload aborted", "received", got, "err", err)
			return
		}
	}
	h.requests.WithLabelValues(dir, ResultSuccess).Inc()
	writeUploadResult(w, got, start)
}

// writeUploadResult answers a finished upload of got bytes that began at
// start with its UploadResult.
func writeUploadResult(w http.ResponseWriter, got int64, start time.Time) {
	secs := time.Since(start).Seconds()
	res := UploadResult{Bytes: got, Seconds: secs}
	if secs > 0 {
		res.BytesPerSecond = float64(got) / secs
	}
	noCache(w)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}
