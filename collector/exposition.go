package collector

import (
	"compress/gzip"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// gzipMinBytes is the smallest answer /probe compresses. A probe's answer
// is a couple of kilobytes: gzip would save little and cost more CPU than
// the probe itself (tens of microseconds per answer, measured with
// bench/icmp), so only large ones (long traces, many TLS chains) are
// compressed when the client accepts it.
const gzipMinBytes = 8 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// ServeMetrics writes a probe's metrics. The text format (what Prometheus
// scrapes with its default settings, and what Prometheus 3 accepts second
// after OpenMetrics) is written straight from the Emitter; any other format
// a client asks for (protobuf) goes through promhttp.
func ServeMetrics(w http.ResponseWriter, r *http.Request, em *Emitter, logger *slog.Logger) {
	format, contentType := negotiate(r.Header)
	if format.FormatType() != expfmt.TypeTextPlain {
		promhttp.HandlerFor(em, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}).ServeHTTP(w, r)
		return
	}
	bp := bufPool.Get().(*[]byte)
	body := em.appendText((*bp)[:0])
	defer func() {
		if cap(body) <= 1<<20 {
			*bp = body
			bufPool.Put(bp)
		}
	}()
	h := w.Header()
	h["Content-Type"] = contentType
	h["Vary"] = vary
	if len(body) >= gzipMinBytes && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		_, _ = gz.Write(body)
		_ = gz.Close()
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// vary is the Vary header of every answer; net/http only reads it.
var vary = []string{"Accept", "Accept-Encoding"}

// negotiated caches negotiate's answers by Accept header: a Prometheus
// server sends the same one with every scrape, and parsing it costs as much
// as writing a small answer.
var negotiated struct {
	sync.RWMutex
	m map[string]negotiation
}

type negotiation struct {
	format      expfmt.Format
	contentType []string
}

// negotiate picks the format as promhttp does (DefaultAcceptedFormats);
// contentType is the header value to send, shared (net/http only reads it).
func negotiate(h http.Header) (expfmt.Format, []string) {
	accept := h.Get("Accept")
	negotiated.RLock()
	n, ok := negotiated.m[accept]
	negotiated.RUnlock()
	if ok {
		return n.format, n.contentType
	}
	f := expfmt.NegotiateAccept(h, expfmt.DefaultAcceptedFormats()...)
	n = negotiation{format: f, contentType: []string{string(f)}}
	negotiated.Lock()
	if negotiated.m == nil {
		negotiated.m = map[string]negotiation{}
	}
	if len(negotiated.m) < 64 && len(accept) <= 1024 { // bounded: clients choose the key
		negotiated.m[accept] = n
	}
	negotiated.Unlock()
	return n.format, n.contentType
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// WriteText writes the Emitter's metrics in the Prometheus text format
// (version 0.0.4), exactly as expfmt would write what Gather returns.
func (e *Emitter) WriteText(w io.Writer) {
	_, _ = w.Write(e.appendText(nil))
}

func (e *Emitter) appendText(b []byte) []byte {
	for _, f := range e.families() {
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, "\n# TYPE "...)
		b = append(b, f.name...)
		if f.typ == prometheus.CounterValue {
			b = append(b, " counter\n"...)
		} else {
			b = append(b, " gauge\n"...)
		}
		for _, sr := range f.metrics {
			b = append(b, f.name...)
			for i, l := range sr.labels {
				if i == 0 {
					b = append(b, '{')
				} else {
					b = append(b, ',')
				}
				b = append(b, l.name...)
				b = append(b, `="`...)
				b = appendEscaped(b, l.value, true)
				b = append(b, '"')
			}
			if len(sr.labels) > 0 {
				b = append(b, '}')
			}
			b = append(b, ' ')
			b = appendFloat(b, sr.s.value)
			b = append(b, '\n')
		}
	}
	return b
}

// appendEscaped escapes a HELP text (backslash, newline) or a label value
// (also the double quote), as the text format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat formats a sample value as expfmt does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	case f == math.Trunc(f) && math.Abs(f) < 1e6:
		// Counts (packets, bytes, hops): the same digits as 'g' (which
		// writes an exponent from 1e6 on), without its shortest-digits
		// search.
		return strconv.AppendInt(b, int64(f), 10)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
