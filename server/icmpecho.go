package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/isp-checker/isp-checker/internal/icmpecho"
)

// echoEngineCollector exposes the ICMP echo engine's own counters on
// /metrics, by IP version and socket mode, so a user can see the
// exporter's limits: requests the kernel refused, replies that came too
// late for their probe, and packets the kernel dropped because the
// engine's receive queue was full.
type echoEngineCollector struct {
	sent, sendErrors, replies, duplicates, late, foreign, errors, drops, delay, sockets *prometheus.Desc
}

func newEchoEngineCollector() *echoEngineCollector {
	labels := []string{"ip_version", "socket"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	return &echoEngineCollector{
		sent:       d("isp_checker_icmp_echo_requests_total", "ICMP echo requests the engine handed to the kernel."),
		sendErrors: d("isp_checker_icmp_echo_request_errors_total", "ICMP echo requests the kernel refused to send."),
		replies:    d("isp_checker_icmp_echo_replies_total", "ICMP echo replies matched to a running probe (first reply to a request, from its target)."),
		duplicates: d("isp_checker_icmp_echo_replies_duplicate_total", "Further ICMP echo replies to an already answered request."),
		late:       d("isp_checker_icmp_echo_replies_late_total", "ICMP echo replies that arrived after their probe had ended."),
		foreign:    d("isp_checker_icmp_echo_replies_foreign_total", "ICMP echo replies carrying this process's mark from an address other than the probe's target, or naming no probe."),
		errors:     d("isp_checker_icmp_errors_received_total", "ICMP errors (unreachable, time exceeded, too big) about the engine's echo requests."),
		drops:      d("isp_checker_icmp_receive_queue_drops_total", "Packets the kernel dropped because an engine socket's receive queue was full (SO_RXQ_OVFL)."),
		delay:      d("isp_checker_icmp_send_delay_seconds", "How late echo requests left after their planned time (pacing and scheduling lag)."),
		sockets:    d("isp_checker_icmp_sockets", "ICMP sockets the engine has open."),
	}
}

func (c *echoEngineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sent, c.sendErrors, c.replies, c.duplicates, c.late, c.foreign, c.errors, c.drops, c.delay, c.sockets} {
		ch <- d
	}
}

func (c *echoEngineCollector) Collect(ch chan<- prometheus.Metric) {
	for _, v := range []int{4, 6} {
		for _, mode := range []icmpecho.Mode{icmpecho.Privileged, icmpecho.Unprivileged} {
			s := icmpecho.Stats(v, mode)
			lv := []string{map[int]string{4: "4", 6: "6"}[v], string(mode)}
			counter := func(d *prometheus.Desc, n uint64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), lv...)
			}
			counter(c.sent, s.Sent)
			counter(c.sendErrors, s.SendErrors)
			counter(c.replies, s.Replies)
			counter(c.duplicates, s.Duplicates)
			counter(c.late, s.Late)
			counter(c.foreign, s.Foreign)
			counter(c.errors, s.Errors)
			counter(c.drops, s.QueueDrops)
			ch <- prometheus.MustNewConstMetric(c.sockets, prometheus.GaugeValue, float64(s.Sockets), lv...)
			buckets := make(map[float64]uint64, len(icmpecho.SendDelayBuckets))
			var cum uint64
			for i, b := range icmpecho.SendDelayBuckets {
				cum += s.SendDelayCounts[i]
				buckets[b.Seconds()] = cum
			}
			cum += s.SendDelayCounts[len(icmpecho.SendDelayBuckets)]
			ch <- prometheus.MustNewConstHistogram(c.delay, cum, s.SendDelaySum.Seconds(), buckets, lv...)
		}
	}
}
