# The project's commands. `make ci` is what .ci/run runs after setting up the machine.
GO ?= go
PKGS := ./...

.PHONY: all build check fmt vet staticcheck test integration bench ci

all: build

build:
	$(GO) build -o bin/iog ./cmd/iog

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)

staticcheck:
	$(GO) tool staticcheck $(PKGS)

# Hermetic: loopback only, no root, no Docker, no fixed ports. One package at a time (-p 1): the
# devnet's end-to-end tests keep both cores busy, and timing-bound tests of other packages
# should not share them.
test:
	$(GO) test -race -count=1 -p 1 $(PKGS)

check: fmt vet staticcheck test

# Real PostgreSQL (IOG_TEST_POSTGRES) and a real Docker engine; .ci/run starts both.
integration:
	$(GO) test -count=1 -tags integration -p 1 $(PKGS)

bench:
	$(GO) run ./cmd/iog bench create --runs 20 --nodes 4

ci: check integration
