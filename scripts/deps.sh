#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine: packages for the
# network lab, the hermetic run and the real peers the tests talk to, and the
# Go tools. It checks first and says what is missing, installs only that, and
# is quick when everything is there. Installing needs root.
set -euo pipefail

# What apt cannot provide comes first, before anything is installed.
if ! command -v go >/dev/null; then
  want=$(sed -n 's/^go //p' "$(dirname "$0")/../go.mod")
  echo "deps: Go is not in PATH: install Go $want or later from https://go.dev/dl/ (e.g. into /usr/local/go) and add its bin directory to PATH" >&2
  exit 1
fi
packages=(
  iproute2 nftables iputils-ping fping traceroute mtr-tiny dnsutils dnsmasq-base
  prometheus prometheus-blackbox-exporter prometheus-smokeping-prober prometheus-pushgateway
  wrk hyperfine docker-compose ca-certificates
  tcpdump util-linux
)
for tool in dpkg-query apt-get; do
  if ! command -v "$tool" >/dev/null; then
    echo "deps: $tool not found: this script installs Debian packages; elsewhere, install the equivalents of: ${packages[*]}" >&2
    exit 1
  fi
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gobin="$(go env GOPATH)/bin"
if ! "$gobin/golangci-lint" version 2>/dev/null | grep -q "version 2.15.0"; then
  echo "deps: installing golangci-lint v2.15.0 into $gobin" >&2
  GOFLAGS= go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
fi
if ! "$gobin/helm" version 2>/dev/null | grep -q "v3.22"; then
  echo "deps: installing helm v3.22.0 into $gobin" >&2
  GOFLAGS= go install helm.sh/helm/v3/cmd/helm@v3.22.0
fi
