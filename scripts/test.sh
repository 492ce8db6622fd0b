#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs (scripts/deps.sh),
# checks formatting, vet and lint, and runs every test inside a network namespace
# whose only exit is a capture sink (scripts/hermetic.sh), failing if any packet
# tried to leave.
#
# It needs root (network namespaces, apt-get). Run as another user, it runs
# itself again under sudo, passing PATH on so that Go is found (sudo's
# secure_path leaves out /usr/local/go/bin).
#
# Since it installs everything the tests need, a test that cannot run here
# is a broken set-up: CI=true (the default here; CI=false allows it) makes
# such tests fail with their reason instead of skipping.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
export CI="${CI:-true}"

if ! command -v go >/dev/null; then
  echo "test: Go is not in PATH: install Go $(sed -n 's/^go //p' go.mod) or later from https://go.dev/dl/ and add its bin directory (e.g. /usr/local/go/bin) to PATH" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "test: the suite needs root (network namespaces, apt-get); run it as root, or install sudo" >&2
    exit 1
  fi
  echo "test: the suite needs root; running it again under sudo" >&2
  exec sudo env PATH="$PATH" CI="$CI" bash "$self" "$@"
fi
# A user's PATH (passed on above, or kept by su) has no sbin directories,
# where ip, nft, tc and tcpdump live.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# Under sudo the checkout belongs to someone else, and git (which go build
# asks for the version stamp) refuses such a repository unless told it is safe.
if [[ $(stat -c %u .) != "$(id -u)" ]]; then
  n=${GIT_CONFIG_COUNT:-0}
  export "GIT_CONFIG_KEY_$n=safe.directory" "GIT_CONFIG_VALUE_$n=$PWD" "GIT_CONFIG_COUNT=$((n + 1))"
fi

bash scripts/deps.sh
export PATH="$(go env GOPATH)/bin:$PATH"

echo "test: gofmt, go vet, golangci-lint" >&2
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n $unformatted ]]; then
  printf 'test: gofmt needed on:\n%s\n' "$unformatted" >&2
  exit 1
fi
go vet ./...
# The exporter builds for the platforms where only the echo engine is missing
# (icmp's protocol: tcp and every other prober work there).
for os in darwin freebsd windows; do
  GOOS=$os go build -o /dev/null ./cmd/isp-checker || { echo "test: isp-checker does not build for GOOS=$os" >&2; exit 1; }
done
# Another golangci-lint running (another checkout) makes it give up at once; wait instead.
golangci-lint run --allow-serial-runners ./...

echo "test: go test ./... in a namespace with no way out (scripts/hermetic.sh)" >&2
go mod download
bash scripts/hermetic.sh go test -count=1 -timeout 30m ./...

echo "test: a few seconds of every fuzz target (scripts/fuzz.sh), also hermetic" >&2
FUZZTIME=${FUZZTIME:-3s} bash scripts/hermetic.sh bash scripts/fuzz.sh
