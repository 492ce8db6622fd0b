// Package collector turns prober Results into Prometheus metrics: one
// renderer per prober (collector/NAME.go), the metrics every probe shares
// (Render), and the exposition of one probe's metrics (ServeMetrics). It
// knows nothing of HTTP routes; package server does.
package collector

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/isp-checker/isp-checker/prober"
)

// Emitter collects the constant metrics of one probe. Adding a metric only
// records it: the samples are validated, sorted and encoded when the probe's
// answer is written (WriteText, the /probe fast path) or gathered (Gather,
// Collect: debug output, history, tests), since building a client_golang
// Desc and Metric per sample costs more than many a probe's own work.
type Emitter struct {
	samples []sample
	logger  *slog.Logger
}

// sample is one metric as a renderer added it; labels are name, value pairs.
type sample struct {
	name, help string
	typ        prometheus.ValueType
	labels     []string
	value      float64
}

// NewEmitter returns an empty Emitter; logger receives metrics that could
// not be built (for example a label value that is not valid UTF-8).
func NewEmitter(logger *slog.Logger) *Emitter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Emitter{logger: logger, samples: make([]sample, 0, 24)} // an icmp probe writes 17
}

// Gauge adds a gauge. labels are name, value pairs.
func (e *Emitter) Gauge(name, help string, v float64, labels ...string) {
	e.add(prometheus.GaugeValue, name, help, v, labels)
}

// Counter adds a counter (a total that only grows within the probe).
func (e *Emitter) Counter(name, help string, v float64, labels ...string) {
	e.add(prometheus.CounterValue, name, help, v, labels)
}

// Bool adds a gauge that is 1 when b is true, else 0.
func (e *Emitter) Bool(name, help string, b bool, labels ...string) {
	e.Gauge(name, help, boolFloat(b), labels...)
}

func (e *Emitter) add(t prometheus.ValueType, name, help string, v float64, labels []string) {
	e.samples = append(e.samples, sample{name: name, help: help, typ: t, labels: labels[:len(labels)&^1], value: v})
}

// Describe implements prometheus.Collector (unchecked: the set varies).
func (e *Emitter) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. Metrics with the same name share
// one Desc, so a name must always carry the same label names.
func (e *Emitter) Collect(ch chan<- prometheus.Metric) {
	descs := map[string]*prometheus.Desc{}
	for _, s := range e.samples {
		names, values := s.split()
		key := s.name + "\xff" + strings.Join(names, "\xff")
		d, ok := descs[key]
		if !ok {
			d = prometheus.NewDesc(s.name, s.help, names, nil)
			descs[key] = d
		}
		m, err := prometheus.NewConstMetric(d, s.typ, s.value, values...)
		if err != nil {
			e.logger.Error("dropping metric", "metric", s.name, "err", err)
			continue
		}
		ch <- m
	}
}

func (s *sample) split() (names, values []string) {
	names = make([]string, 0, len(s.labels)/2)
	values = make([]string, 0, len(s.labels)/2)
	for i := 0; i+1 < len(s.labels); i += 2 {
		names = append(names, s.labels[i])
		values = append(values, s.labels[i+1])
	}
	return names, values
}

// family is one metric name's valid samples, sorted for exposition.
type family struct {
	name, help string
	typ        prometheus.ValueType
	metrics    []series
}

// series is a valid sample with its labels sorted by name.
type series struct {
	s      *sample
	labels []labelPair
}

type labelPair struct{ name, value string }

// families validates, groups and sorts the samples as a Registry would:
// families by name, series by label values; a sample with an invalid name
// or label (a label value that is not UTF-8, say) is dropped and logged, and
// so is one repeating an earlier sample's name and labels. It allocates
// little: it runs for every probe.
func (e *Emitter) families() []family {
	n := 0
	for i := range e.samples {
		n += len(e.samples[i].labels) / 2
	}
	pairs := make([]labelPair, 0, n)
	all := make([]series, 0, len(e.samples))
	for i := range e.samples {
		s := &e.samples[i]
		start := len(pairs)
		var err error
		if pairs, err = s.appendLabels(pairs); err != nil {
			pairs = pairs[:start]
			e.logger.Error("dropping metric", "metric", s.name, "err", err)
			continue
		}
		all = append(all, series{s: s, labels: pairs[start:len(pairs):len(pairs)]})
	}
	// Stable: of repeated series the first added comes first, and is kept.
	slices.SortStableFunc(all, func(a, b series) int {
		if c := strings.Compare(a.s.name, b.s.name); c != 0 {
			return c
		}
		return compareSeries(a.labels, b.labels)
	})
	kept := all[:0]
	for _, sr := range all {
		if len(kept) > 0 {
			if prev := kept[len(kept)-1]; prev.s.name == sr.s.name && slices.Equal(prev.labels, sr.labels) {
				e.logger.Error("dropping duplicate metric", "metric", sr.s.name, "labels", sr.labels)
				continue
			}
		}
		kept = append(kept, sr)
	}
	names := 0
	for i := range kept {
		if i == 0 || kept[i].s.name != kept[i-1].s.name {
			names++
		}
	}
	out := make([]family, 0, names)
	for i := 0; i < len(kept); {
		j := i + 1
		for j < len(kept) && kept[j].s.name == kept[i].s.name {
			j++
		}
		first := kept[i].s
		out = append(out, family{name: first.name, help: first.help, typ: first.typ, metrics: kept[i:j]})
		i = j
	}
	return out
}

// appendLabels checks a sample's name and labels (what NewDesc and
// NewConstMetric check) and appends its labels, sorted by name, to pairs.
func (s *sample) appendLabels(pairs []labelPair) ([]labelPair, error) {
	if !validName(s.name) {
		return pairs, fmt.Errorf("%q is not a valid metric name", s.name)
	}
	start := len(pairs)
	for i := 0; i+1 < len(s.labels); i += 2 {
		n, v := s.labels[i], s.labels[i+1]
		if !validName(n) || strings.HasPrefix(n, "__") {
			return pairs, fmt.Errorf("%q is not a valid label name", n)
		}
		if !utf8.ValidString(v) {
			return pairs, fmt.Errorf("label %s: value %q is not valid UTF-8", n, v)
		}
		pairs = append(pairs, labelPair{n, v})
	}
	mine := pairs[start:]
	slices.SortFunc(mine, func(a, b labelPair) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(mine); i++ {
		if mine[i].name == mine[i-1].name {
			return pairs, fmt.Errorf("label %s given twice", mine[i].name)
		}
	}
	return pairs, nil
}

// validName reports whether n is a legacy metric or label name
// ([a-zA-Z_:][a-zA-Z0-9_:]*; colons are for recording rules, but allowed):
// every name this exporter writes is one, and the text writer writes no
// other (client_golang would also take UTF-8 names, quoted).
func validName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func compareSeries(a, b []labelPair) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i].value, b[i].value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// Gather implements prometheus.Gatherer: the families of families() as a
// Registry would gather them.
func (e *Emitter) Gather() ([]*dto.MetricFamily, error) {
	fams := e.families()
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		t := dto.MetricType_GAUGE
		if f.typ == prometheus.CounterValue {
			t = dto.MetricType_COUNTER
		}
		mf := &dto.MetricFamily{Name: proto.String(f.name), Help: proto.String(f.help), Type: t.Enum()}
		for _, sr := range f.metrics {
			m := &dto.Metric{}
			for _, l := range sr.labels {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.name), Value: proto.String(l.value)})
			}
			if f.typ == prometheus.CounterValue {
				m.Counter = &dto.Counter{Value: proto.Float64(sr.s.value)}
			} else {
				m.Gauge = &dto.Gauge{Value: proto.Float64(sr.s.value)}
			}
			mf.Metric = append(mf.Metric, m)
		}
		out = append(out, mf)
	}
	return out, nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Renderer writes a prober's own metrics for its Result (the probers
// table's Render column).
type Renderer func(prober.Result, *Emitter)

// RendererOf makes the Renderer of a prober whose Result type is T from its
// typed view, RenderHTTP and the like; a Result of another type renders
// nothing.
func RendererOf[T prober.Result](f func(T, *Emitter)) Renderer {
	return func(r prober.Result, e *Emitter) {
		if t, ok := r.(T); ok {
			f(t, e)
		}
	}
}

// Render writes every metric of a probe result: the prober's own (own may
// be nil), then the common ones, as blackbox_exporter names them.
func Render(res prober.Result, own Renderer, e *Emitter) {
	c := res.Base()
	if own != nil {
		own(res, e)
	}
	if c.Resolved {
		e.Gauge("probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds", c.DNSLookupSeconds)
	}
	if c.IPProtocol != 0 {
		e.Gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6", float64(c.IPProtocol))
		e.Gauge("probe_ip_addr_hash", "Specifies the hash of IP address. It's useful to detect if the IP address changes.", ipHash(c.IPAddr))
	}
	e.Gauge("probe_timeout_seconds", "Returns the timeout the probe ran with in seconds", c.TimeoutSeconds)
	e.Gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds", c.DurationSeconds)
	e.Bool("probe_success", "Displays whether or not the probe was a success", c.Success)
}

// ipHash is a stable number per address, so changes() can see a new one.
func ipHash(addr string) float64 {
	h := fnv.New32a()
	if ip := net.ParseIP(addr); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		h.Write(ip)
	} else {
		h.Write([]byte(addr))
	}
	return float64(h.Sum32())
}
