// Package samples flattens gathered metric families for tests that compare
// a probe's metrics with the values they expect.
package samples

import (
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Of maps "name{label=value,…}" to each gauge or counter sample's value.
func Of(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

// OfText parses a text exposition (a /probe answer) and flattens it as Of
// does.
func OfText(text string) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	list := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		list = append(list, mf)
	}
	return Of(list), nil
}

// Keys returns the keys of m that start with prefix, sorted and joined by
// spaces.
func Keys(m map[string]float64, prefix string) string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

// Set sorts space-separated lists of keys into one, as Keys writes it.
func Set(keys ...string) string {
	f := strings.Fields(strings.Join(keys, " "))
	sort.Strings(f)
	return strings.Join(f, " ")
}

// The icmp prober's metric sets, as Keys writes them.
const (
	ICMPPhases   = "probe_icmp_duration_seconds{phase=resolve} probe_icmp_duration_seconds{phase=rtt} probe_icmp_duration_seconds{phase=setup}"
	ICMPCounts   = "probe_icmp_duplicates probe_icmp_packet_loss_ratio probe_icmp_packets_received probe_icmp_packets_sent"
	ICMPRTTStats = "probe_icmp_rtt_max_seconds probe_icmp_rtt_mean_seconds probe_icmp_rtt_min_seconds probe_icmp_rtt_stddev_seconds"
)
