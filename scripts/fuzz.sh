#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 60s): each
# package's Fuzz* functions are found with `go test -list`, so a new target
# is picked up without editing this script. `make fuzz` runs it at length;
# `make test` (and so CI) with FUZZTIME=3s. A failure leaves the input under
# the package's testdata/fuzz/ (commit it with the fix: it becomes a test).
#
#   FUZZTIME=10m scripts/fuzz.sh            # all targets, 10 minutes each
#   scripts/fuzz.sh ./prober FuzzPolicy     # one package, or one target
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
pkgs=${1:-./...}
only=${2:-}

# `go test -list` prints a package's matching names, then "ok <pkg> <time>".
targets=()
names=()
while read -r line; do
  case "$line" in
    Fuzz*) names+=("$line") ;;
    "ok "*)
      pkg=$(awk '{print $2}' <<<"$line")
      for n in "${names[@]}"; do
        if [[ -z "$only" || "$n" == "$only" ]]; then targets+=("$pkg $n"); fi
      done
      names=() ;;
  esac
done < <(go test -list '^Fuzz' $pkgs 2>&1)

if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz: no fuzz targets found in $pkgs" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"
failed=0
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  start=$(date +%s)
  if out=$(go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 10s 2>&1); then
    echo "ok   $pkg $name ($(( $(date +%s) - start ))s)"
  else
    echo "FAIL $pkg $name"
    echo "$out" | tail -30
    failed=$((failed + 1))
  fi
done
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
[[ $failed -eq 0 ]]
