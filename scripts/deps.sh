#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine: packages for the
# network lab and the real peers the tests talk to, and the Go tools. It is
# idempotent and quick when everything is already there.
set -euo pipefail

packages=(
  iproute2 nftables iputils-ping fping traceroute mtr-tiny dnsutils dnsmasq-base
  prometheus prometheus-blackbox-exporter prometheus-smokeping-prober prometheus-pushgateway
  wrk hyperfine docker-compose ca-certificates
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gobin="$(go env GOPATH)/bin"
if ! "$gobin/golangci-lint" version 2>/dev/null | grep -q "version 2.15.0"; then
  echo "deps: installing golangci-lint v2.15.0" >&2
  GOFLAGS= go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
fi
if ! "$gobin/helm" version 2>/dev/null | grep -q "v3.22"; then
  echo "deps: installing helm v3.22.0" >&2
  GOFLAGS= go install helm.sh/helm/v3/cmd/helm@v3.22.0
fi
