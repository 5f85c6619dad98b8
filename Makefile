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

# ── Release, image, deployment checks ────────────────────────────────────────
# VERSION defaults to the newest v* tag (plus -dirty), else a Go-style
# pseudo-version of the commit (v0.0.0-UTCTIME-COMMIT12, +dirty when modified);
# the commit and the modified flag are always linked in.
COMMIT    := $(shell git rev-parse HEAD 2>/dev/null)
MODIFIED  := $(shell git status --porcelain 2>/dev/null | grep -q . && echo true || echo false)
VERSION   ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || \
  TZ=UTC git show -s --abbrev=12 --date=format-local:%Y%m%d%H%M%S --format='v0.0.0-%cd-%h' HEAD 2>/dev/null)$(if $(filter true,$(MODIFIED)),$(if $(findstring -dirty,$(shell git describe --tags --match 'v*' --dirty 2>/dev/null)),,+dirty))
BUILDINFO := github.com/syncd/syncd/internal/buildinfo
LDFLAGS   := -s -w -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).modified=$(MODIFIED) $(if $(VERSION),-X $(BUILDINFO).version=$(VERSION))
PLATFORMS := linux/amd64 linux/arm64 darwin/arm64
DIST      ?= dist
SHA256SUM := $(shell command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo 'shasum -a 256')
# Packages the shipped binary must never link: the Docker backend of the tests.
FORBIDDEN := github.com/syncd/syncd/testcontainers/docker|github.com/testcontainers/|github.com/docker/|github.com/moby/

.PHONY: release image test-image

## release: static binaries (CGO_ENABLED=0, -trimpath) for linux/amd64, linux/arm64, darwin/arm64 in dist/, with SHA256SUMS
release:
	@if $(GO) list -deps ./cmd/syncd | grep -E '$(FORBIDDEN)'; then echo "release: cmd/syncd imports the test-only Docker path (above)" >&2; exit 1; fi
	rm -rf $(DIST) && mkdir -p $(DIST)
	set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; \
	  echo "build $(DIST)/syncd-$$os-$$arch"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $(DIST)/syncd-$$os-$$arch ./cmd/syncd; \
	  if $(GO) version -m $(DIST)/syncd-$$os-$$arch | grep -E '$(FORBIDDEN)'; then echo "release: $(DIST)/syncd-$$os-$$arch links the test-only Docker path" >&2; exit 1; fi; \
	done
	cd $(DIST) && $(SHA256SUM) syncd-* > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

# The image: FROM scratch, the static linux binary of IMAGE_ARCH built here,
# the host's CA certificates, a non-root user. Nothing is pulled.
IMAGE      ?= localhost/syncd
IMAGE_TAG  ?= $(subst +,-,$(or $(VERSION),dev))
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
PODMAN     ?= podman
CA_BUNDLE  ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_CTX  := $(DIST)/image

## image: build the container image $(IMAGE):$(IMAGE_TAG) with podman (Containerfile); prints its size
image:
	rm -rf $(IMAGE_CTX) && mkdir -p $(IMAGE_CTX)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o $(IMAGE_CTX)/syncd ./cmd/syncd
	@if $(GO) version -m $(IMAGE_CTX)/syncd | grep -E '$(FORBIDDEN)'; then echo "image: the binary links the test-only Docker path" >&2; exit 1; fi
	cp $(CA_BUNDLE) $(IMAGE_CTX)/ca-certificates.crt
	cp deploy/image/passwd deploy/image/group $(IMAGE_CTX)/
	$(PODMAN) build --platform linux/$(IMAGE_ARCH) -f Containerfile \
	  --build-arg VERSION="$(or $(VERSION),$(COMMIT))" --build-arg REVISION="$(COMMIT)" \
	  --build-arg CREATED="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	  -t $(IMAGE):$(IMAGE_TAG) $(IMAGE_CTX)
	@$(PODMAN) image inspect --format '$(IMAGE):$(IMAGE_TAG) {{.Size}} bytes' $(IMAGE):$(IMAGE_TAG)

## test-image: build the image and test it (podman, a throwaway PostgreSQL, the emulator), the systemd unit and upgrades
test-image: image
	SYNCD_TEST_IMAGE=$(IMAGE):$(IMAGE_TAG) $(GO) test -tags image -count=1 -v -timeout 15m ./deploy/
