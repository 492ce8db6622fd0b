#!/usr/bin/env bash
# The icmp prober at scale, side by side with fping and smokeping_prober on
# the same targets in the same run (bench/icmp/main.go says what each column
# is). Two shapes, as in issue 15:
#
#   burst  1,000 and 2,000 concurrent probes of 10 echoes 10 ms apart
#   fleet  10,000 concurrent probes of 10 echoes 1 s apart (10,000 echoes a
#          second, as Prometheus scraping 10,000 ping targets)
#
# and two socket modes:
#
#   privileged    raw sockets; the exporter runs as root
#   unprivileged  datagram ("ping") sockets; the exporter (and
#                 smokeping_prober) run as nobody, with no capabilities, so
#                 they get the receive buffer an unprivileged user gets
#                 (net.core.rmem_max); fping stays raw (fping 5.1 drops
#                 every datagram-socket reply: it checks the identifier the
#                 kernel rewrote)
#
# Everything runs in a throw-away network namespace with only loopback
# (targets 127.20.x.y), whose ping_group_range admits every group: the
# host's sysctls and the other processes' raw sockets are left alone (a raw
# socket sees every ICMP packet of its namespace). Needs root.
#
# Env: SHAPES ("burst fleet"), MODES ("privileged unprivileged"), ROUNDS (3),
# TOOLS (fping,smokeping), PATHS (probe,floor,inprocess; floor is a trivial
# net/http server whose handler waits as long as a probe, scraped the same
# way: what net/http alone costs), BURST_PROBES ("1000 2000"), FLEET_PROBES
# (10000), PPROF (a directory: build the exporter with -tags benchpprof,
# save its heap, goroutine and CPU profiles there and print its runtime
# memory figures per probe; the snapshots cost the exporter CPU and a
# collection mid-round, so leave PPROF out for the CPU and RSS columns). Prints the machine's load before and after
# each run: the cores are shared with whatever else runs. With two sizes or
# more in a shape (BURST_PROBES, or FLEET_PROBES="5000 10000"), it also
# prints how much the peak RSS grew per added probe between them.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHAPES=${SHAPES:-burst fleet}
MODES=${MODES:-privileged unprivileged}
ROUNDS=${ROUNDS:-3}
TOOLS=${TOOLS:-fping,smokeping}
PATHS=${PATHS:-probe,floor,inprocess}
PPROF=${PPROF:-}
BURST_PROBES=${BURST_PROBES:-1000 2000}
FLEET_PROBES=${FLEET_PROBES:-10000}
tmp=$(mktemp -d)
chmod 755 "$tmp"
ns="isp-checker-bench-icmp-$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

[[ $(id -u) == 0 ]] || { echo "bench/icmp: needs root (raw ICMP sockets, a network namespace)"; exit 1; }
command -v fping >/dev/null || echo "fping missing (apt-get install fping): no side-by-side figure"
command -v prometheus-smokeping-prober >/dev/null || echo "prometheus-smokeping-prober missing: no smokeping_prober row"
pprof=()
if [[ -n $PPROF ]]; then
  mkdir -p "$PPROF"
  pprof=(-pprof "$PPROF")
  go build -tags benchpprof -o "$tmp/isp-checker" ./cmd/isp-checker
else
  go build -o "$tmp/isp-checker" ./cmd/isp-checker
fi
go build -o "$tmp/icmpbench" ./bench/icmp

ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
ulimit -n 65536 2>/dev/null || true

echo "== $(nproc) cores; $(uname -sr); net.core.rmem_max $(cat /proc/sys/net/core/rmem_max)"
for mode in $MODES; do
  user=()
  [[ $mode == unprivileged ]] && user=(-exporter-user nobody)
  for shape in $SHAPES; do
    case $shape in
      burst) sizes=$BURST_PROBES interval=10ms ;;
      fleet) sizes=$FLEET_PROBES interval=1s ;;
      *) echo "unknown shape $shape"; exit 1 ;;
    esac
    : > "$tmp/peaks"
    for n in $sizes; do
      echo
      echo "--- $shape, $mode sockets, $n probes; load $(cut -d' ' -f1-3 /proc/loadavg)"
      ip netns exec "$ns" "$tmp/icmpbench" -probes "$n" -packets 10 -interval "$interval" -rounds "$ROUNDS" \
        -socket "$mode" "${user[@]}" -paths "$PATHS" -tools "$TOOLS" -exporter "$tmp/isp-checker" "${pprof[@]}" |
        tee "$tmp/out"
      # Each round's peak RSS, per process: "n tool round MiB".
      awk -v n="$n" '/^round [0-9]/ && /\/probe/ && match($0, /[0-9.]+ MiB/) {
        tool = ($0 ~ /net\/http floor/) ? "floor" : "isp-checker"
        print n, tool, $2, substr($0, RSTART, RLENGTH - 4) }' "$tmp/out" >> "$tmp/peaks"
    done
    # With two sizes or more: how much the peak grew per added concurrent
    # probe, between the smallest and the largest (each a fresh process):
    # the growth per probe without what every process pays once (its code
    # paged in, the runtime's first heap, the engine's sockets), which the
    # per-probe column spreads over the probes.
    awk -v shape="$shape" -v mode="$mode" '
      { key = $2 " " $3; if (!(key in lo) || $1 < lo[key]) { lo[key] = $1; lom[key] = $4 }
        if (!(key in hi) || $1 > hi[key]) { hi[key] = $1; him[key] = $4 } }
      END { for (k in lo) if (hi[k] > lo[k]) { split(k, f, " ")
        printf "-- %s, %s sockets, %s round %s: peak RSS grew by %.1f kB per probe from %d to %d probes\n",
          shape, mode, f[1], f[2], (him[k] - lom[k]) * 1024 / (hi[k] - lo[k]), lo[k], hi[k] } }' "$tmp/peaks" | sort
  done
done
