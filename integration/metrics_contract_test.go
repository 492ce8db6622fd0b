// Package integration holds the tests that look at isp-checker from the
// outside: a real Prometheus scraping the exporter and evaluating the alert
// rules, promtool, helm and docker-compose over the files in alerts/,
// dashboards/, examples/ and charts/, and the check that every PromQL
// expression in them names a metric the exporter emits.
//
// The package has tests only: the metric contract below is test data, so
// nothing the binary imports can depend on it.
package integration

// Emitted is the metric contract: the names each prober's metrics view writes
// (collector/<prober>.go), the ones every probe writes ("common") and the
// exporter's own on /metrics ("exporter"). Dashboards and alert rules may name
// only these, the client_golang go_* and process_* metrics, and the series
// Prometheus makes itself (Synthetic); TestQueriesNameEmittedMetrics checks
// that.
//
// The list is checked two ways:
//   - TestEmittedMatchesRender renders a fully populated Result of every
//     prober registered in this build through collector.Render and compares
//     the names with the prober's entry here (both directions), and gathers
//     the exporter's registry for "exporter";
//   - TestContractMatchesDocs compares it with docs/metrics.md.
//
// Probers still being written keep their planned names here; the render check
// covers each one as soon as it has a row in the probers table.
var Emitted = map[string][]string{
	"common": {
		"probe_success",
		"probe_duration_seconds",
		"probe_timeout_seconds",
		"probe_dns_lookup_time_seconds",
		"probe_ip_protocol",
		"probe_ip_addr_hash",
	},
	"http": {
		"probe_http_duration_seconds",
		"probe_http_status_code",
		"probe_http_version",
		"probe_http_ssl",
		"probe_http_redirects",
		"probe_http_content_length",
		"probe_http_uncompressed_body_length",
		"probe_http_last_modified_timestamp_seconds",
		"probe_failed_due_to_regex",
		"probe_failed_due_to_cel",
		"probe_ssl_earliest_cert_expiry",
		"probe_ssl_last_chain_expiry_timestamp_seconds",
		"probe_ssl_last_chain_info",
		"probe_ssl_verified",
		"probe_tls_version_info",
		"probe_tls_cipher_info",
	},
	"tcp": {
		"probe_tcp_connect_duration_seconds",
		"probe_expect_info",
		"probe_failed_due_to_regex",
		"probe_failed_due_to_bytes",
		"probe_ssl_earliest_cert_expiry",
		"probe_ssl_last_chain_expiry_timestamp_seconds",
		"probe_ssl_last_chain_info",
		"probe_ssl_verified",
		"probe_tls_version_info",
		"probe_tls_cipher_info",
	},
	"unix": {
		"probe_expect_info",
		"probe_failed_due_to_regex",
		"probe_failed_due_to_bytes",
		"probe_ssl_earliest_cert_expiry",
		"probe_ssl_last_chain_expiry_timestamp_seconds",
		"probe_ssl_last_chain_info",
		"probe_ssl_verified",
		"probe_tls_version_info",
		"probe_tls_cipher_info",
	},
	"grpc": {
		"probe_grpc_duration_seconds",
		"probe_grpc_status_code",
		"probe_grpc_healthcheck_response",
		"probe_grpc_ssl",
		"probe_ssl_earliest_cert_expiry",
		"probe_ssl_last_chain_expiry_timestamp_seconds",
		"probe_ssl_last_chain_info",
		"probe_ssl_verified",
		"probe_tls_version_info",
		"probe_tls_cipher_info",
	},
	"websocket": {
		"probe_websocket_duration_seconds",
		"probe_websocket_status_code",
		"probe_websocket_connection_upgraded",
		"probe_websocket_failed_due_to_regex",
		"probe_ssl_earliest_cert_expiry",
		"probe_ssl_last_chain_expiry_timestamp_seconds",
		"probe_ssl_last_chain_info",
		"probe_ssl_verified",
		"probe_tls_version_info",
		"probe_tls_cipher_info",
	},
	"icmp": {
		"probe_icmp_duration_seconds",
		"probe_icmp_reply_hop_limit",
		"probe_icmp_packets_sent",
		"probe_icmp_packets_received",
		"probe_icmp_packet_loss_ratio",
		"probe_icmp_rtt_min_seconds",
		"probe_icmp_rtt_max_seconds",
		"probe_icmp_rtt_mean_seconds",
		"probe_icmp_rtt_stddev_seconds",
		"probe_icmp_jitter_seconds",
		"probe_icmp_duplicates",
	},
	"dns": {
		"probe_dns_duration_seconds",
		"probe_dns_answer_rrs",
		"probe_dns_authority_rrs",
		"probe_dns_additional_rrs",
		"probe_dns_query_succeeded",
		"probe_dns_serial",
		"probe_dns_rcode",
		"probe_dns_answer_min_ttl_seconds",
		"probe_dns_authenticated_data",
		"probe_dns_truncated",
		"probe_dns_retried_over_tcp",
	},
	"traceroute": {
		"probe_traceroute_hops",
		"probe_traceroute_destination_reached",
		"probe_traceroute_hop_rtt_seconds",
		"probe_traceroute_hop_loss_ratio",
		"probe_traceroute_path_hash",
	},
	"mtu": {
		"probe_path_mtu_bytes",
		"probe_path_mtu_max_size_bytes",
		"probe_path_mtu_black_hole",
	},
	"throughput": {
		"probe_throughput_bytes_per_second",
		"probe_throughput_bytes",
		"probe_throughput_transfer_seconds",
		"probe_throughput_connections",
		"probe_throughput_wait_seconds",
		"probe_latency_idle_seconds",
		"probe_latency_loaded_seconds",
		"probe_latency_samples",
		"probe_latency_lost_samples",
		"probe_throughput_rpm",
	},
	"responsiveness": {
		"probe_responsiveness_rpm",
		"probe_responsiveness_latency_seconds",
		"probe_responsiveness_probes",
		"probe_responsiveness_probe_errors",
		"probe_responsiveness_goodput_bytes_per_second",
		"probe_responsiveness_connections",
		"probe_responsiveness_goodput_saturated",
		"probe_responsiveness_stable",
		"probe_responsiveness_confidence",
		"probe_responsiveness_idle_latency_seconds",
		"probe_responsiveness_grade",
		"probe_responsiveness_wait_seconds",
	},
	"isp": {
		"probe_isp_health_score",
		"probe_isp_fault",
		"probe_isp_verdict",
		"probe_isp_dimension_score",
		"probe_isp_check_success",
	},
	"exporter": {
		"isp_checker_build_info",
		"isp_checker_probes_total",
		"isp_checker_probe_duration_seconds",
		"isp_checker_probes_in_flight",
		"isp_checker_probes_rejected_total",
		"isp_checker_target_policy_denied_total",
		"isp_checker_config_last_reload_successful",
		"isp_checker_config_last_reload_success_timestamp_seconds",
		"blackbox_exporter_config_last_reload_successful",
		"blackbox_exporter_config_last_reload_success_timestamp_seconds",
		"blackbox_module_unknown_total",
		"isp_checker_speedtest_bytes_total",
		"isp_checker_speedtest_requests_total",
		"isp_checker_speedtest_rpm_requests_total",
		"isp_checker_icmp_echo_requests_total",
		"isp_checker_icmp_echo_request_errors_total",
		"isp_checker_icmp_echo_replies_total",
		"isp_checker_icmp_echo_replies_duplicate_total",
		"isp_checker_icmp_echo_replies_late_total",
		"isp_checker_icmp_echo_replies_foreign_total",
		"isp_checker_icmp_errors_received_total",
		"isp_checker_icmp_receive_queue_drops_total",
		"isp_checker_icmp_send_delay_seconds",
		"isp_checker_icmp_sockets",
		"isp_checker_parked_probes_total",
		"isp_checker_parked_requests_read_total",
		"isp_checker_parked_connections",
	},
}

// Histograms are the names in Emitted that are histograms: queries use them
// with the _bucket, _sum and _count suffixes.
var Histograms = []string{"isp_checker_probe_duration_seconds", "isp_checker_icmp_send_delay_seconds"}

// Synthetic are the series Prometheus writes itself for every scrape and for
// alerts; queries may name them too.
var Synthetic = []string{
	"up",
	"scrape_duration_seconds",
	"scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling",
	"scrape_series_added",
	"ALERTS",
	"ALERTS_FOR_STATE",
}

// Pushgateway are the series a Pushgateway adds to every group that
// `isp-checker run --push` pushes; queries may name them too.
var Pushgateway = []string{
	"push_time_seconds",
	"push_failure_time_seconds",
}
