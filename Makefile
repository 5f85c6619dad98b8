# syncd — see README.md.
GO        ?= go
STATICCHECK_VERSION := v0.8.2
PKGS      := ./...

.PHONY: run test test-short test-repeat bench chaos lint fmt build

## run: the demo — throwaway Postgres, the Auth0 emulator, sample employees and the daemon
run:
	$(GO) run ./cmd/syncd demo

## test: every test, with the race detector
test:
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-short: the fast tests only (skips the short chaos suite and the syncbench smoke test)
test-short:
	$(GO) test -race -short -count=1 -timeout 10m $(PKGS)

## test-repeat: the whole suite N times (default 10), failures counted per test; LOAD=1 keeps every core busy meanwhile
N ?= 10
test-repeat:
	$(GO) run ./cmd/testrepeat -n $(N) $(if $(filter 1,$(LOAD)),-load,)

## bench: the benchmark programs; results in BENCHMARKS.md and bench.json
bench:
	$(GO) run ./cmd/syncbench -out bench.json -md BENCHMARKS.md

## chaos: the long failure suite (a short version runs inside make test)
chaos:
	$(GO) run ./cmd/syncchaos

## lint: go vet and staticcheck
lint:
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## fmt: gofmt every file
fmt:
	gofmt -w $$(git ls-files '*.go')

build:
	$(GO) build -o bin/syncd ./cmd/syncd
