package collector

import (
	"bytes"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// The text the /probe fast path writes is byte for byte what expfmt writes
// from Gather, escapes, special values, dropped samples and all; and what
// Gather returns is what a Registry gathers.
func TestEmitterWriteTextMatchesExpfmt(t *testing.T) {
	e := NewEmitter(nil)
	e.Gauge("probe_b", "b with \\ and\nnewline", 2, "phase", "tls")
	e.Gauge("probe_b", "b with \\ and\nnewline", 1, "phase", "connect")
	e.Counter("probe_a_total", "a", 3)
	e.Bool("probe_c", "c", true, "y", "a", "x", "2")
	e.Bool("probe_c", "c", false, "x", "10", "y", "b\"q\\\n")
	e.Gauge("probe_b", "b", 9, "phase", "tls") // duplicate: dropped
	e.Gauge("probe_bad", "bad", 1, "label", string([]byte{0xff}))
	e.Gauge("probe_bad", "bad", 2, "__reserved", "x")
	e.Gauge("probe_bad", "bad", 3, "l", "1", "l", "2")
	e.Gauge("9bad", "bad", 4)
	for i, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1, 0, 1, 1e-7, 123456789012, -0.25, 10, -3, 64, 65535, 999999, -999999, 1e6, 1e6 + 1, 2.5, math.Copysign(0, -1)} {
		e.Gauge("probe_v", "v", v, "i", strconv.Itoa(i))
	}
	mfs, err := e.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&want, mf); err != nil {
			t.Fatal(err)
		}
	}
	var got bytes.Buffer
	e.WriteText(&got)
	if got.String() != want.String() {
		t.Errorf("WriteText wrote\n%s\nexpfmt writes\n%s", got.String(), want.String())
	}
	if strings.Contains(got.String(), "9bad") {
		t.Errorf("a name that is not a legacy metric name was written:\n%s", got.String())
	}
	// What else is dropped as invalid is what client_golang refuses: a
	// Registry gathering the same samples (less the duplicate, which it
	// would refuse as a whole, and the name only UTF-8 names allow, which
	// the Emitter refuses: every name this exporter writes is a legacy one)
	// writes the same text.
	e.samples = slices.DeleteFunc(e.samples, func(s sample) bool { return s.name == "probe_b" && s.value == 9 || s.name == "9bad" })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	rmfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var fromReg strings.Builder
	for _, mf := range rmfs {
		_, _ = expfmt.MetricFamilyToText(&fromReg, mf)
	}
	if fromReg.String() != want.String() {
		t.Errorf("a registry gathers\n%s\nthe emitter\n%s", fromReg.String(), want.String())
	}
}

// /probe answers Prometheus's scrape (its Accept header, gzip accepted)
// in the text format, uncompressed when small; a protobuf client gets
// protobuf; gzip is used for big answers when accepted.
func TestServeMetricsFormats(t *testing.T) {
	small := NewEmitter(nil)
	small.Gauge("probe_success", "s", 1)
	big := NewEmitter(nil)
	for i := range 400 {
		big.Gauge("probe_hop_rtt_seconds", "a long series", float64(i), "hop", strconv.Itoa(i), "address", "2001:db8::"+strconv.Itoa(i))
	}
	const promAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
	for _, tc := range []struct {
		name         string
		em           *Emitter
		accept, enc  string
		wantType     string
		wantEncoding string
	}{
		{"prometheus small", small, promAccept, "gzip", "text/plain", ""},
		{"prometheus big", big, promAccept, "gzip", "text/plain", "gzip"},
		{"big, no gzip", big, promAccept, "", "text/plain", ""},
		{"big, gzip refused", big, promAccept, "gzip;q=0", "text/plain", ""},
		{"protobuf", small, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "", "application/vnd.google.protobuf", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/probe", nil)
		r.Header.Set("Accept", tc.accept)
		if tc.enc != "" {
			r.Header.Set("Accept-Encoding", tc.enc)
		}
		w := httptest.NewRecorder()
		ServeMetrics(w, r, tc.em, slog.New(slog.DiscardHandler))
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
			t.Errorf("%s: Content-Type %q, want %s", tc.name, ct, tc.wantType)
		}
		if ce := w.Header().Get("Content-Encoding"); ce != tc.wantEncoding {
			t.Errorf("%s: Content-Encoding %q, want %q", tc.name, ce, tc.wantEncoding)
		}
		if tc.wantType == "text/plain" && tc.wantEncoding == "" {
			var want bytes.Buffer
			tc.em.WriteText(&want)
			if w.Body.String() != want.String() {
				t.Errorf("%s: body\n%s\nwant\n%s", tc.name, w.Body.String(), want.String())
			}
		}
	}
}
