#!/usr/bin/env bash
# icmp prober under load: hundreds of concurrent multi-packet probes to
# distinct loopback targets (127.20.x.y), side by side with fping on the same
# targets. Prints CPU per echo, wall time, loss, mean RTT and whether every
# probe got exactly its own replies (no duplicates, no replies from another
# target, no shared identifiers, no leaked goroutines or descriptors).
#
# Rows: isp-checker with raw sockets (as root, host namespace), fping, and —
# when namespaces work — isp-checker with unprivileged datagram sockets in a
# throw-away network namespace whose net.ipv4.ping_group_range admits root
# (the sysctl is per namespace: the host's is not touched). Then the Go
# benchmark BenchmarkICMPConcurrent in both modes.
#
# Needs root. Traffic stays on loopback. Env: PROBES (300), PACKETS (10),
# INTERVAL (10ms), ROUNDS (3), GOBENCH=0 to skip the Go benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
PROBES=${PROBES:-300}
PACKETS=${PACKETS:-10}
INTERVAL=${INTERVAL:-10ms}
ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d)
ns="isp-checker-bench-icmp-$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

[[ $(id -u) == 0 ]] || { echo "bench/icmp: needs root (raw ICMP sockets, namespaces)"; exit 1; }
command -v fping >/dev/null || echo "fping missing (apt-get install fping): no side-by-side figure"
go build -o "$tmp/icmpbench" ./bench/icmp
args=(-probes "$PROBES" -packets "$PACKETS" -interval "$INTERVAL" -rounds "$ROUNDS")

"$tmp/icmpbench" "${args[@]}" -socket privileged
if ip netns add "$ns" 2>/dev/null; then
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
  ip netns exec "$ns" "$tmp/icmpbench" "${args[@]}" -socket unprivileged -fping "" -header=false
else
  echo "(no network namespace: unprivileged row skipped)"
fi

if [[ ${GOBENCH:-1} != 0 ]]; then
  go test -c -o "$tmp/prober.test" ./prober/
  gobench() { (cd prober && "$@" -test.run '^$' -test.bench BenchmarkICMPConcurrent -test.benchtime 3x 2>&1 |
    grep -E '^(Benchmark|PASS|FAIL|---|    icmp_)' | grep -v 'socket mode' || true); }
  echo "--- BenchmarkICMPConcurrent, privileged (raw sockets, host namespace)"
  gobench "$tmp/prober.test"
  if ip netns list | grep -q "^$ns"; then
    echo "--- BenchmarkICMPConcurrent, unprivileged (datagram sockets, namespace $ns)"
    gobench ip netns exec "$ns" "$tmp/prober.test"
  fi
fi
