package collector

import (
	"bytes"
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

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// serveMetrics writes a probe's metrics. The text format (what Prometheus
// scrapes with its default settings, and what Prometheus 3 accepts second
// after OpenMetrics) is written straight from the Emitter; any other format
// a client asks for (protobuf) goes through promhttp.
func serveMetrics(w http.ResponseWriter, r *http.Request, em *Emitter, logger *slog.Logger) {
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	if format.FormatType() != expfmt.TypeTextPlain {
		promhttp.HandlerFor(em, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}).ServeHTTP(w, r)
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	em.WriteText(buf)
	h := w.Header()
	h.Set("Content-Type", string(format))
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	if buf.Len() >= gzipMinBytes && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		_, _ = gz.Write(buf.Bytes())
		_ = gz.Close()
		return
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
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
	var b []byte
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
			b = appendFloat(b, sr.value)
			b = append(b, '\n')
		}
	}
	_, _ = w.Write(b)
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
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
