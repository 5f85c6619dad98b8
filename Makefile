# syncd — see README.md.
GO        ?= go
STATICCHECK_VERSION := v0.8.2
PKGS      := ./...

.PHONY: run test test-short test-repeat bench chaos lint fmt build mutate

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

## mutate: mutation testing (gremlins) of the pure core, with the fast tests that need no database;
## not part of make test. Each package's tests are narrowed with GOFLAGS=-run (gremlins has no -run
## of its own) and the files they do not exercise are excluded. MUTATE_WORKERS=N runs N mutants at once.
GREMLINS_VERSION := v0.6.0
MUTATE_WORKERS ?= 1
GREMLINS = $(GO) run github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION) unleash \
	--workers $(MUTATE_WORKERS) --timeout-coefficient 20 --output-statuses lktv
mutate:
	GOFLAGS='-run=.' $(GREMLINS) ./internal/breaker
	GOFLAGS='-run=^(TestDesiredFor|TestDesiredForInvalidRows|TestDiff|TestDiffConvergesProperty|TestUsernameFor|TestNewPassword|TestParseRoles|TestConfigValidate|TestParseLimit|TestLimit|TestDeprovisionKey|TestPlanText|TestManagedOnly|TestConfigDefaultsAndLimits)$$' \
		$(GREMLINS) -E '(apply|auth0|employee|loops|reconciler|scan|status|store)\.go$$' ./reconcile
	GOFLAGS='-run=^(TestRateHeaders|TestGate.*)$$' \
		$(GREMLINS) -E '(client|domain|errors|export|request|roles|token|types|users)\.go$$' ./auth0
	GOFLAGS='-run=^(TestQuery.*|TestSearchQueries)$$' \
		$(GREMLINS) -E '(admin|emulator|export|faults|http|ratelimit|roles|routes|server|token|users)\.go$$' ./auth0/emulator

## lint: go vet and staticcheck
lint:
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## fmt: gofmt every file
fmt:
	gofmt -w $$(git ls-files '*.go')

build:
	$(GO) build -o bin/syncd ./cmd/syncd
