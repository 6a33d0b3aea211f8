# Starcite: one binary per node. `make run` starts a single node on the
# embedded defaults; `make test` runs everything CI runs.
GO      ?= go
BIN     := bin/starcite
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

# Unit-level packages run under the race detector; the black-box suites
# under test/ drive real processes and run one package at a time so that
# clusters do not compete for the two cores of a small CI machine.
UNIT_PKGS := ./fsm/... ./edge/... ./dataplane/... ./archive/... ./actors/... ./sup/... ./app/...
E2E_PKGS  := ./test/...

.PHONY: build run test vet fmt-check fuzz cluster cluster-stop clean

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

# Everything CI runs. Needs the test services (Postgres, an S3-compatible
# server); .ci/services.sh installs and starts them when missing.
test: build vet fmt-check
	eval "$$(.ci/services.sh up)" && export STARCITE_REQUIRE_SERVICES=1 && \
	$(GO) test -race -count=1 $(UNIT_PKGS) && \
	STARCITE_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 30m $(E2E_PKGS)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Short fuzzing of every parser (FUZZTIME per target).
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzApply$$' -fuzztime=$(FUZZTIME) ./fsm/
	$(GO) test -run='^$$' -fuzz='^FuzzStateful$$' -fuzztime=$(FUZZTIME) ./fsm/
	$(GO) test -run='^$$' -fuzz='^FuzzReadSnapshot$$' -fuzztime=$(FUZZTIME) ./fsm/
	$(GO) test -run='^$$' -fuzz='^FuzzJSONC$$' -fuzztime=$(FUZZTIME) ./fsm/jsonc/

clean:
	rm -rf bin
