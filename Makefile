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

# test is the whole suite, as the README and CI run it (scripts/test.sh):
# deps, formatting, vet, lint, and every test inside a network namespace that
# nothing can leave (scripts/hermetic.sh). It needs root; as another user it
# runs itself again under sudo. With CI=true a missing lab fails. It ends
# with a few seconds of every fuzz target (fuzz-short), also hermetic.
test:
	bash scripts/test.sh

# unit runs the tests in place, without the hermetic namespace.
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
# each; fuzz-short is the few seconds each that the test suite runs.
fuzz:
	bash scripts/fuzz.sh

fuzz-short:
	FUZZTIME=3s bash scripts/fuzz.sh

clean:
	rm -f isp-checker
