# Starcite: one binary per node. `make run` starts a single node on the
# embedded defaults; `make test` runs everything CI runs.
GO      ?= go
BIN     := bin/starcite
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

# Unit tests: every package outside test/, in-process, no services (the
# archive adapters' Postgres and S3 tests skip loudly without them);
# ./docs checks that every reference to docs/ resolves and none leaves
# the repository. The black-box suites under test/ drive real processes
# and run one package at a time so that clusters do not compete for the
# two cores of a small CI machine. SERVICE_PKGS are the packages whose
# tests need the test services (Postgres, an S3-compatible server); make
# test starts the services just before them.
UNIT_PKGS     = $(shell $(GO) list ./... | grep -v '^starcite/test/')
SERVICE_PKGS := starcite/archive starcite/test/archive
E2E_PKGS      = $(filter-out $(SERVICE_PKGS),$(shell $(GO) list ./test/...))

# The Go client (client/) is a module of its own: its checks and tests
# run inside it (`go -C client`).
CLIENT := -C client

# staticcheck is installed with `go install` at this version (one that
# builds with the Go of go.mod) into bin/tools.
STATICCHECK_VERSION := v0.8.2
STATICCHECK         := bin/tools/staticcheck

.PHONY: build run test unit verify vet fmt-check tidy-check staticcheck fuzz cluster cluster-stop clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./app

# A working single node on 127.0.0.1:4000 with the local-file archive.
# Auth defaults to `none` here (the binary's own default is jwt); any
# variable set in the environment wins, e.g.
#   PORT=4100 STARCITE_RAFT_DATA_DIR=./data-2 make run
run: build
	STARCITE_AUTH_MODE=$${STARCITE_AUTH_MODE:-none} ./$(BIN) server

# A 3-node cluster on 127.0.0.1-3 (ports 4000/7100/7200 on each address)
# in the background; data and logs under ./cluster-data.
cluster: build
	rel/dev-cluster.sh start

cluster-stop:
	rel/dev-cluster.sh stop

# Everything CI runs: the checks, the unit tests under the race
# detector, short fuzzing, then the suites that need the test services
# (.ci/services.sh installs and starts them when missing) and the other
# black-box suites.
test: verify build
	$(GO) test -race -count=1 $(filter-out $(SERVICE_PKGS),$(UNIT_PKGS))
	$(GO) test $(CLIENT) -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_CI)
	eval "$$(.ci/services.sh up)" && export STARCITE_REQUIRE_SERVICES=1 && \
	$(GO) test -race -count=1 $(filter-out starcite/test/%,$(SERVICE_PKGS)) && \
	STARCITE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 30m $(filter starcite/test/%,$(SERVICE_PKGS))
	STARCITE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 30m $(E2E_PKGS)

# The edit-test loop: unit tests of every package outside test/, under
# the race detector, no services, no processes (about a minute on two
# cores).
unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)
	$(GO) test $(CLIENT) -race -count=1 ./...

# Static checks: go.mod and go.sum tidy, gofmt, go vet, staticcheck.
verify: tidy-check fmt-check vet staticcheck

tidy-check:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }
	@$(GO) mod tidy $(CLIENT) -diff >/dev/null || { echo "client/go.mod not tidy: run go mod tidy in client/"; $(GO) mod tidy $(CLIENT) -diff; exit 1; }

vet:
	$(GO) vet ./...
	$(GO) vet $(CLIENT) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

$(STATICCHECK):
	GOBIN=$(CURDIR)/bin/tools $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...
	cd client && ../$(STATICCHECK) ./...

# Short fuzzing of every parser: FUZZTIME per target (make test runs each
# for FUZZTIME_CI). A failing input is written to the package's
# testdata/fuzz/<target>/, where it stays as a regression seed.
FUZZTIME    ?= 10s
FUZZTIME_CI ?= 5s
FUZZ_TARGETS := \
	./fsm/:FuzzApply ./fsm/:FuzzStateful ./fsm/:FuzzReadSnapshot ./fsm/:FuzzParseHeader ./fsm/jsonc/:FuzzJSONC \
	./edge/:FuzzDecodeCreateBody ./edge/:FuzzDecodeAppendBody ./edge/:FuzzDecodePatchBody ./edge/:FuzzParseListQuery \
	./edge/:FuzzParseTailQuery ./edge/:FuzzRedactQuery ./edge/:FuzzDecodeFrame \
	./edge/:FuzzVerifyToken ./edge/:FuzzSignedToken ./edge/:FuzzParseJWKS ./edge/:FuzzRequestToken \
	./client/:FuzzDecodeFrame ./client/:FuzzDecodePhoenixFrame
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$fn $$pkg ($(FUZZTIME))"; \
		case $$pkg in ./client/*) mod="$(CLIENT)"; pkg=./$${pkg#./client/};; *) mod=;; esac; \
		$(GO) test $$mod -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

# The fault-injection suite (test/chaos) for DURATION: a 3-node cluster in
# network namespaces (needs root), faults at random, then the checker's
# verdict and figures. CHAOS_HISTORY keeps the history file (by default
# it is kept only when the run fails).
DURATION      ?= 30m
CHAOS_HISTORY ?=
.PHONY: chaos
chaos: build
	STARCITE_BIN=$(CURDIR)/$(BIN) STARCITE_CHAOS_DURATION=$(DURATION) STARCITE_CHAOS_HISTORY=$(CHAOS_HISTORY) \
	$(GO) test -count=1 -v -run '^TestChaos$$' -timeout 24h ./test/chaos/

clean:
	rm -rf bin

# ---- Docker: the image and a static 3-node cluster in containers (rel/) ----
# The image is FROM scratch: rel/docker-context.sh fills a temporary build
# context with bin/starcite, this machine's CA bundle and a minimal
# /etc/passwd, so nothing is pulled.
IMAGE           ?= starcite
COMPOSE_PROJECT ?= starcite
# The Compose plugin when it exists, else the standalone docker-compose.
COMPOSE         ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
IMAGE_TAG       := $(subst +,-,$(VERSION))

.PHONY: docker cluster-certs cluster-up cluster-down

docker: build
	@ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	rel/docker-context.sh "$$ctx" $(BIN) && \
	docker build --build-arg VERSION=$(VERSION) -f rel/Dockerfile \
		-t $(IMAGE):latest -t $(IMAGE):$(IMAGE_TAG) "$$ctx" && \
	echo "built $(IMAGE):latest and $(IMAGE):$(IMAGE_TAG)"

# Dev certificates of the container cluster's inter-node TLS, made once in
# CLUSTER_CERTS with `starcite cert`. The keys are made readable by the
# containers' user (uid 10001, not this machine's): dev keys only.
CLUSTER_CERTS ?= $(CURDIR)/cluster-certs
cluster-certs: build
	@test -f $(CLUSTER_CERTS)/ca.pem || $(BIN) cert ca --dir $(CLUSTER_CERTS)
	@for i in 1 2 3; do test -f $(CLUSTER_CERTS)/node$$i.pem || \
		$(BIN) cert node node$$i --host node$$i --dir $(CLUSTER_CERTS) || exit 1; done
	@chmod 0644 $(CLUSTER_CERTS)/*-key.pem

# Three nodes on 127.0.0.1:4001-4003 (auth none, file archive on a shared
# volume, mutual TLS between the nodes); variables of rel/compose.yml
# (STARCITE_HTTP_PORT_1, ...) apply.
cluster-up: docker cluster-certs
	STARCITE_IMAGE=$${STARCITE_IMAGE:-$(IMAGE):latest} STARCITE_CLUSTER_CERTS=$(CLUSTER_CERTS) \
		$(COMPOSE) -p $(COMPOSE_PROJECT) -f rel/compose.yml up -d
	rel/compose-wait.sh $(COMPOSE_PROJECT) 180

# Removes the cluster's containers, networks and volumes (all its data).
cluster-down:
	STARCITE_CLUSTER_CERTS=$(CLUSTER_CERTS) $(COMPOSE) -p $(COMPOSE_PROJECT) -f rel/compose.yml down --volumes --remove-orphans

# Benchmarks (README, "Performance"): `make bench` runs every workload of
# `starcite bench` against a single node, then against the local 3-node
# cluster; `make bench-compare` runs the closed-loop append workload
# against the 3-node cluster and a 3-node NATS JetStream cluster (R3,
# fsync always) and prints the ratio. Tables on stdout, JSON under
# bench-results/. BENCH_ARGS passes more flags to `starcite bench`.
BENCH_DURATION ?= 10s
BENCH_WARMUP   ?= 2s
BENCH_ARGS     ?=

.PHONY: bench bench-compare

bench: build
	@mkdir -p bench-results; stamp=$$(date +%Y%m%d-%H%M%S); \
	$(BIN) bench --duration $(BENCH_DURATION) --warmup $(BENCH_WARMUP) $(BENCH_ARGS) \
		--json bench-results/starcite-single-$$stamp.json && \
	$(BIN) bench --cluster --duration $(BENCH_DURATION) --warmup $(BENCH_WARMUP) $(BENCH_ARGS) \
		--json bench-results/starcite-cluster3-$$stamp.json

bench-compare: build
	STARCITE_BIN=$(BIN) BENCH_DURATION=$(BENCH_DURATION) BENCH_WARMUP=$(BENCH_WARMUP) test/bench/compare.sh
