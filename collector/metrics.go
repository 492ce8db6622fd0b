// Package collector turns prober Results into Prometheus metrics, serves
// /probe, and keeps the exporter's own metrics and the recent probe history.
package collector

import (
	"hash/fnv"
	"log/slog"
	"net"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/isp-checker/isp-checker/prober"
)

// Emitter collects the constant metrics of one probe. Metrics with the same
// name share one Desc, so a name must always carry the same label names.
type Emitter struct {
	metrics []prometheus.Metric
	meta    []metricMeta // parallel to metrics
	descs   map[string]*prometheus.Desc
	logger  *slog.Logger
}

type metricMeta struct {
	name, help string
	typ        prometheus.ValueType
}

// NewEmitter returns an empty Emitter; logger receives metrics that could
// not be built (for example a label value that is not valid UTF-8).
func NewEmitter(logger *slog.Logger) *Emitter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Emitter{descs: map[string]*prometheus.Desc{}, logger: logger}
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
	names := make([]string, 0, len(labels)/2)
	values := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		names = append(names, labels[i])
		values = append(values, labels[i+1])
	}
	key := name + "\xff" + strings.Join(names, "\xff")
	d, ok := e.descs[key]
	if !ok {
		d = prometheus.NewDesc(name, help, names, nil)
		e.descs[key] = d
	}
	m, err := prometheus.NewConstMetric(d, t, v, values...)
	if err != nil {
		e.logger.Error("dropping metric", "metric", name, "err", err)
		return
	}
	e.metrics = append(e.metrics, m)
	e.meta = append(e.meta, metricMeta{name: name, help: help, typ: t})
}

// Describe implements prometheus.Collector (unchecked: the set varies).
func (e *Emitter) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (e *Emitter) Collect(ch chan<- prometheus.Metric) {
	for _, m := range e.metrics {
		ch <- m
	}
}

// Gather implements prometheus.Gatherer. A probe's metrics are served
// straight from the Emitter: a fresh Registry per probe would cost more than
// the probe's own work (its Gather allocates channels for thousands of
// metrics). Families come out sorted by name, metrics by label values; a
// metric repeating an earlier one's name and labels is dropped and logged.
func (e *Emitter) Gather() ([]*dto.MetricFamily, error) {
	fams := map[string]*dto.MetricFamily{}
	seen := map[string]bool{}
	for i, m := range e.metrics {
		meta := e.meta[i]
		pb := &dto.Metric{}
		if err := m.Write(pb); err != nil {
			e.logger.Error("dropping metric", "metric", meta.name, "err", err)
			continue
		}
		key := meta.name
		for _, lp := range pb.GetLabel() {
			key += "\xff" + lp.GetName() + "\xfe" + lp.GetValue()
		}
		if seen[key] {
			e.logger.Error("dropping duplicate metric", "metric", meta.name, "labels", pb.GetLabel())
			continue
		}
		seen[key] = true
		f, ok := fams[meta.name]
		if !ok {
			t := dto.MetricType_GAUGE
			if meta.typ == prometheus.CounterValue {
				t = dto.MetricType_COUNTER
			}
			f = &dto.MetricFamily{Name: proto.String(meta.name), Help: proto.String(meta.help), Type: t.Enum()}
			fams[meta.name] = f
		}
		f.Metric = append(f.Metric, pb)
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		slices.SortFunc(f.Metric, func(a, b *dto.Metric) int { return compareLabels(a.GetLabel(), b.GetLabel()) })
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

func compareLabels(a, b []*dto.LabelPair) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i].GetValue(), b[i].GetValue()); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// renderer adds a prober's own metrics for results of its type.
type renderer func(prober.Result, *Emitter) bool

var renderers []renderer

// registerRenderer installs the metrics view of one Result type. Each
// prober's metrics file calls it from init.
func registerRenderer[T prober.Result](f func(T, *Emitter)) {
	renderers = append(renderers, func(r prober.Result, e *Emitter) bool {
		t, ok := r.(T)
		if ok {
			f(t, e)
		}
		return ok
	})
}

// Render writes every metric of a probe result: the common ones, as
// blackbox_exporter names them, then the prober's own.
func Render(res prober.Result, e *Emitter) {
	c := res.Base()
	for _, r := range renderers {
		if r(res, e) {
			break
		}
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
