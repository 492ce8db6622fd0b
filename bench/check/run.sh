#!/usr/bin/env bash
# isp-checker check on 10,000 loopback URLs: URLs per second, peak RSS and
# the most file descriptors open at once (sockets are bounded by --concurrency).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-10000}
CONC=${CONC:-64}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/isp-checker" ./cmd/isp-checker
go build -o "$tmp/target" ./bench/target
"$tmp/target" -listen 127.0.0.1:18081 & pids+=($!)
sleep 0.5
for ((i = 0; i < N; i++)); do echo "http://127.0.0.1:18081/page/$i"; done > "$tmp/urls.txt"

start=$(date +%s.%N)
"$tmp/isp-checker" check "$tmp/urls.txt" --format=csv -o "$tmp/out.csv" --concurrency="$CONC" 2>"$tmp/stderr" &
pid=$!
maxfd=0; hwm=0
while kill -0 "$pid" 2>/dev/null; do
  fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l || echo 0)
  ((fds > maxfd)) && maxfd=$fds
  h=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  ((h > hwm)) && hwm=$h
  sleep 0.05
done
wait "$pid" || true
end=$(date +%s.%N)
rows=$(($(wc -l <"$tmp/out.csv") - 1))
active=$(grep -c ',active,' "$tmp/out.csv" || true)
echo "== isp-checker check: $N loopback URLs, --concurrency=$CONC, $(nproc) cores"
awk -v s="$start" -v e="$end" -v n="$rows" -v a="$active" -v h="$hwm" -v f="$maxfd" 'BEGIN {
  printf "rows %d (active %d)  elapsed %.2fs  %.0f URLs/s  peak RSS %.1f MiB  max open fds %d\n", n, a, e - s, n / (e - s), h / 1024, f }'
tail -1 "$tmp/stderr"
