package speedtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Routes of the responsiveness test (draft-ietf-ippm-responsiveness-09,
// § Responsiveness Test Server): the configuration document at the
// draft's well-known URI, and the three URLs it names.
const (
	WellKnownPath = "/.well-known/nq"
	RPMSmallPath  = "/speedtest/rpm/small"
	RPMLargePath  = "/speedtest/rpm/large"
	RPMUploadPath = "/speedtest/rpm/upload"
)

// Defaults of the responsiveness endpoints' bounds.
const (
	// DefaultRPMMaxConcurrent fits one standard client at a time with room
	// to spare: goresponsiveness runs up to 16 load-generating connections
	// per direction (32 at once in its parallel mode), Apple's
	// networkQuality up to about 20 per direction.
	DefaultRPMMaxConcurrent = 64
	// DefaultRPMMaxDuration outlasts any test the draft describes: with
	// draft 09's 5 s interval, 16 connections take 75 s to ramp up, and
	// responsiveness needs at least 4 intervals (20 s) more.
	DefaultRPMMaxDuration = 3 * time.Minute
	// DefaultSendBufferTime is draft 09's 5 ms of unsent data a server
	// should keep at most (TCP_REPLENISH_TIME, emulated with
	// TCP_NOTSENT_LOWAT).
	DefaultSendBufferTime = 5 * time.Millisecond
)

// Endpoints, the endpoint label of isp_checker_speedtest_rpm_requests_total.
const (
	EndpointConfig = "config"
	EndpointSmall  = "small"
	EndpointLarge  = "large"
	EndpointUpload = "upload"
)

// ResultTimeLimit: a large download or upload ran for RPMMaxDuration and
// was ended by the server.
const ResultTimeLimit = "time_limit"

// newRPMRequests counts the responsiveness endpoints' requests.
func newRPMRequests() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "isp_checker_speedtest_rpm_requests_total",
		Help: "Requests to the responsiveness-test endpoints (/.well-known/nq and /speedtest/rpm/*), by endpoint (config, small, large, upload) and result (success, aborted, bad_request, busy, time_limit).",
	}, []string{"endpoint", "result"})
	for _, e := range []string{EndpointConfig, EndpointSmall} {
		v.WithLabelValues(e, ResultSuccess)
		v.WithLabelValues(e, ResultBadRequest)
	}
	for _, e := range []string{EndpointLarge, EndpointUpload} {
		for _, r := range []string{ResultSuccess, ResultAborted, ResultBadRequest, ResultBusy, ResultTimeLimit} {
			v.WithLabelValues(e, r)
		}
	}
	return v
}

// ParsePublicURL checks a base URL for the configuration document: http
// or https, a host, no query or fragment. A path is kept as a prefix (a
// reverse proxy that serves isp-checker under /isp/).
func ParsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("public URL %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("public URL %q: want http:// or https:// and a host, e.g. https://speed.example.net", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("public URL %q: want no user, query or fragment", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// nqURLs are the configuration document's URLs: the draft's names since
// draft 02, and the older ones with "https_", the only ones
// goresponsiveness reads (sent only over https, which those names promise;
// Apple's reference server configurations carry both sets too).
// The draft asks servers not to send names it does not define; clients
// must ignore them, and without them the standard client refuses to run.
type nqURLs struct {
	Small       string `json:"small_download_url"`
	Large       string `json:"large_download_url"`
	Upload      string `json:"upload_url"`
	SmallHTTPS  string `json:"small_https_download_url,omitempty"`
	LargeHTTPS  string `json:"large_https_download_url,omitempty"`
	UploadHTTPS string `json:"https_upload_url,omitempty"`
}

type nqConfig struct {
	Version int    `json:"version"`
	URLs    nqURLs `json:"urls"`
}

// base is where the client reached this server: PublicURL, or the
// request's own scheme and Host (and the route prefix), so the three URLs share the host the
// draft requires and lead back to the same listener.
func (h *Handler) base(r *http.Request) url.URL {
	if h.publicURL != nil {
		return *h.publicURL
	}
	u := url.URL{Scheme: "http", Host: r.Host, Path: h.routePrefix}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if u.Host == "" { // HTTP/1.0 without Host: the address it connected to
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			u.Host = a.String()
		}
	}
	return u
}

// WellKnown serves GET /.well-known/nq, the configuration document.
func (h *Handler) WellKnown(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.rpmRefuse(w, EndpointConfig, ResultBadRequest, http.StatusMethodNotAllowed, "the responsiveness configuration needs GET")
		return
	}
	b := h.base(r)
	at := func(path string) string {
		u := b
		u.Path += path
		return u.String()
	}
	doc := nqConfig{Version: 1, URLs: nqURLs{Small: at(RPMSmallPath), Large: at(RPMLargePath), Upload: at(RPMUploadPath)}}
	if b.Scheme == "https" {
		doc.URLs.SmallHTTPS, doc.URLs.LargeHTTPS, doc.URLs.UploadHTTPS = doc.URLs.Small, doc.URLs.Large, doc.URLs.Upload
	}
	body, err := json.Marshal(doc)
	if err != nil { // cannot happen: strings only
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	noCache(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(body, '\n'))
	}
	h.rpmRequests.WithLabelValues(EndpointConfig, ResultSuccess).Inc()
}

// Small serves the 1-byte object of the latency probes. A request on a
// connection that carries no load-generating transfer is a foreign probe,
// whose connection the client never uses again (goresponsiveness leaves
// thousands of them open until it exits): the answer says
// "Connection: close", which HTTP/2 turns into a GOAWAY, so the
// connection ends a second after the response.
func (h *Handler) Small(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.rpmRefuse(w, EndpointSmall, ResultBadRequest, http.StatusMethodNotAllowed, "the small object needs GET")
		return
	}
	hd := w.Header()
	// The draft asks for small response headers: no Date.
	hd["Date"] = nil
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Length", "1")
	noCache(w)
	if c := connOf(r.Context()); c != nil && !c.busy() {
		hd.Set("Connection", "close")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte{'x'})
	}
	h.rpmRequests.WithLabelValues(EndpointSmall, ResultSuccess).Inc()
}

// acquireLGC takes a load-generating slot, or answers 503.
func (h *Handler) acquireLGC(w http.ResponseWriter, endpoint string) bool {
	select {
	case h.lgcSem <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "1")
		h.rpmRefuse(w, endpoint, ResultBusy, http.StatusServiceUnavailable,
			fmt.Sprintf("responsiveness test busy: %d load-generating transfers running; try again later", cap(h.lgcSem)))
		return false
	}
}

func (h *Handler) rpmRefuse(w http.ResponseWriter, endpoint, result string, code int, msg string) {
	h.rpmRequests.WithLabelValues(endpoint, result).Inc()
	h.logger.Debug("responsiveness request refused", "endpoint", endpoint, "result", result, "reason", msg)
	http.Error(w, msg, code)
}

// grace is how long past RPMMaxDuration a blocked read or write may wait
// before its deadline ends it: the loops stop cleanly at the bound, the
// deadline only catches a client that stopped reading or sending.
func (h *Handler) grace() time.Duration { return min(10*time.Second, h.rpmMaxDuration/2) }

// beginLGC starts a load-generating transfer on endpoint ep, which takes
// the methods m1 and m2: it refuses any other method (need says which one
// the endpoint needs) and a transfer past the slot limit, and marks r's
// connection as loaded. When ok is false the refusal is written; otherwise
// end frees the slot and the connection's mark.
func (h *Handler) beginLGC(w http.ResponseWriter, r *http.Request, ep, m1, m2, need string) (c *conn, end func(), ok bool) {
	if r.Method != m1 && r.Method != m2 {
		w.Header().Set("Allow", m1+", "+m2)
		h.rpmRefuse(w, ep, ResultBadRequest, http.StatusMethodNotAllowed, need)
		return nil, nil, false
	}
	if !h.acquireLGC(w, ep) {
		return nil, nil, false
	}
	c = connOf(r.Context())
	c.begin()
	return c, func() { c.end(); <-h.lgcSem }, true
}

// Large serves the endless download of a load-generating connection:
// random data with no Content-Length, until the client stops (the normal
// end) or RPMMaxDuration has passed, when the body ends cleanly. The draft
// asks for at least 8 GB; a length would either end fast links early or
// turn the time bound into an error.
func (h *Handler) Large(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointLarge
	c, end, ok := h.beginLGC(w, r, ep, http.MethodGet, http.MethodHead, "the large object needs GET")
	if !ok {
		return
	}
	defer end()
	start := time.Now()
	stop := start.Add(h.rpmMaxDuration)
	_ = http.NewResponseController(w).SetWriteDeadline(stop.Add(h.grace()))
	noCache(w)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		h.rpmRequests.WithLabelValues(ep, ResultSuccess).Inc()
		return
	}
	counter := h.bytes.WithLabelValues("download")
	var sent int64
	for off := 0; ; {
		if time.Now().After(stop) {
			h.rpmRequests.WithLabelValues(ep, ResultTimeLimit).Inc()
			h.logger.Debug("responsiveness download reached the time limit", "sent", sent, "limit", h.rpmMaxDuration)
			return
		}
		chunk := payload()[off:min(off+lgcChunk, len(payload()))]
		k, err := w.Write(chunk)
		sent += int64(k)
		counter.Add(float64(k))
		c.wrote(k, h.sendBuffer)
		if err != nil {
			h.rpmRequests.WithLabelValues(ep, transferEnd(err, stop)).Inc()
			h.logger.Debug("responsiveness download ended by the client", "sent", sent, "seconds", time.Since(start).Seconds(), "err", err)
			return
		}
		off = (off + k) % len(payload())
	}
}

// lgcChunk is the large download's write size: one HTTP/2 frame, so the
// unsent-data bound is checked often.
const lgcChunk = 16 << 10

// transferEnd names how a transfer that failed ended: by its deadline
// (a client that stopped reading or sending past the time limit) or by the
// client going away.
func transferEnd(err error, stop time.Time) string {
	if errors.Is(err, os.ErrDeadlineExceeded) || time.Now().After(stop) {
		return ResultTimeLimit
	}
	return ResultAborted
}

// RPMUpload serves the endless upload of a load-generating connection: it
// reads and discards the body, with no size limit, until the client ends
// it (200 with an UploadResult), stops (the normal end) or RPMMaxDuration
// has passed (200 with what arrived; the rest of the body is refused).
func (h *Handler) RPMUpload(w http.ResponseWriter, r *http.Request) {
	const ep = EndpointUpload
	_, end, ok := h.beginLGC(w, r, ep, http.MethodPost, http.MethodPut, "the upload URL needs POST")
	if !ok {
		return
	}
	defer end()
	start := time.Now()
	stop := start.Add(h.rpmMaxDuration)
	_ = http.NewResponseController(w).SetReadDeadline(stop.Add(h.grace()))
	counter := h.bytes.WithLabelValues("upload")
	buf := make([]byte, chunkSize)
	var got int64
	result := ResultSuccess
	for {
		if time.Now().After(stop) {
			result = ResultTimeLimit
			break
		}
		k, err := r.Body.Read(buf)
		got += int64(k)
		counter.Add(float64(k))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			end := transferEnd(err, stop)
			h.rpmRequests.WithLabelValues(ep, end).Inc()
			h.logger.Debug("responsiveness upload ended by the client", "received", got, "seconds", time.Since(start).Seconds(), "err", err)
			if end == ResultTimeLimit {
				w.WriteHeader(http.StatusRequestTimeout)
			}
			return
		}
	}
	h.rpmRequests.WithLabelValues(ep, result).Inc()
	writeUploadResult(w, got, start)
}
