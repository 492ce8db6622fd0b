# isp-checker — build, test, lint, bench.
GO        ?= go
GOBIN     := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w \
  -X github.com/prometheus/common/version.Version=$(VERSION) \
  -X github.com/prometheus/common/version.Revision=$(REVISION) \
  -X github.com/prometheus/common/version.Branch=$(BRANCH)

.PHONY: all build deps test unit lint fmt vet bench fuzz fuzz-short clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o isp-checker ./cmd/isp-checker

# deps installs Debian packages and Go tools the tests need (root).
deps:
	bash scripts/deps.sh

# test is the whole suite: formatting, vet, lint, and every test including
# the network lab (which needs root; with CI=true a missing lab fails).
test: deps fmt vet lint unit fuzz-short

unit:
	$(GO) test -count=1 -timeout 30m ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint:
	golangci-lint run ./...

bench:
	bash bench/run.sh

# fuzz runs every Fuzz* target in the module for FUZZTIME (default 60s)
# each; fuzz-short is the few seconds each that make test runs.
fuzz:
	bash scripts/fuzz.sh

fuzz-short:
	FUZZTIME=3s bash scripts/fuzz.sh

clean:
	rm -f isp-checker
