#!/usr/bin/env bash
# make bench: isp-checker's benchmarks, side by side with the peers Debian
# ships. Traffic stays on loopback. Prints a table of figures.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
bash bench/http/run.sh | tee bench/results/http.txt
if [[ -x bench/icmp/run.sh ]]; then bash bench/icmp/run.sh | tee bench/results/icmp.txt; fi
if [[ -x bench/check/run.sh ]]; then bash bench/check/run.sh | tee bench/results/check.txt; fi
echo "--- Go benchmarks"
go test -run '^$' -bench . -benchmem -benchtime 2s ./prober/ ./collector/ ./server/ 2>&1 | grep -E '^(Benchmark|ok|PASS|FAIL)' || true
