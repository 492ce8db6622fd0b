#!/usr/bin/env bash
# /probe?module=http_2xx against a loopback site: probes per second and peak
# RSS, isp-checker and Debian's prometheus-blackbox-exporter in one run, each
# driven by wrk with the same connections and duration.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-15s}
CONNS=${CONNS:-32}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk missing (apt-get install wrk)"; exit 1; }
BB=$(command -v prometheus-blackbox-exporter || true)

go build -o "$tmp/isp-checker" ./cmd/isp-checker
go build -o "$tmp/target" ./bench/target
"$tmp/target" -listen 127.0.0.1:18080 & pids+=($!)

cat > "$tmp/modules.yml" <<'YML'
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
YML
"$tmp/isp-checker" --config.file "$tmp/modules.yml" --web.listen-address 127.0.0.1:19799 --log.level=warn \
  --probes.max-concurrent=0 & pids+=($!); isp=$!
if [[ -n "$BB" ]]; then
  "$BB" --config.file "$tmp/modules.yml" --web.listen-address 127.0.0.1:19115 --log.level=warn & pids+=($!); bb=$!
fi
sleep 1.5

url_target='target=http://127.0.0.1:18080/&module=http_2xx'
hwm() { awk '/VmHWM/ {print $2/1024 " MiB"}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print $2/1024 " MiB"}' "/proc/$1/status"; }
probe() { curl -fsS "http://$1/probe?$url_target" | grep -E '^probe_success' ; }

echo "== http_2xx probes/s against a loopback site (wrk -c$CONNS -d$DURATION, $(nproc) cores)"
printf '%-28s %12s %12s %12s %14s\n' exporter "probes/s" "p50" "p99" "peak RSS"
bench_one() {
  local name=$1 addr=$2 pid=$3
  probe "$addr" >/dev/null || { echo "$name: probe failed"; return; }
  local out
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "http://$addr/probe?$url_target")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-28s %12s %12s %12s %14s\n' "$name" "$rps" "$p50" "$p99" "$(hwm "$pid")"
  grep -E 'Non-2xx|Socket errors' <<<"$out" || true
}
bench_one isp-checker 127.0.0.1:19799 "$isp"
if [[ -n "${bb:-}" ]]; then
  bench_one "blackbox_exporter $("$BB" --version 2>&1 | awk 'NR==1{print $3}')" 127.0.0.1:19115 "$bb"
else
  echo "prometheus-blackbox-exporter not installed: no side-by-side figure"
fi
