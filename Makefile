# The project's commands. `make ci` is what .ci/run runs after setting up the machine.
GO ?= go
PKGS := ./...

.PHONY: all build check fmt vet staticcheck test integration bench bench-web screenshots ci

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

# Page loads of the console with 1,000 devices and 10,000 clusters in the store.
bench-web:
	$(GO) test -run '^$$' -bench Pages -benchtime 20x ./internal/web

# Screenshots of the console's main pages, taken by the chromium test (needs chromium).
screenshots:
	IOG_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -tags integration -count=1 -run '^TestBrowser$$' ./internal/web

ci: check integration
