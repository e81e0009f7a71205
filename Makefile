# blockgate: make run | test | bench | lint | build
GO        ?= go
# Executions per fuzz target: a count, not a duration, so that a loaded
# machine cannot turn the fuzzing deadline into a spurious failure.
FUZZTIME  ?= 4000x
BENCHTIME ?= 5s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

# Fuzz targets run briefly by `make test`, as package:Target.
FUZZ := \
	./blocks/state/:FuzzParseQuery \
	./blocks/state/statemem/:FuzzStateKey \
	./tenants/:FuzzParseComponent \
	./tenants/:FuzzParseApp \
	./gateway/gatewaysidecars/:FuzzKey \
	./gateway/gatewayhttp/:FuzzStateKey \
	./gateway/gatewayhttp/:FuzzStateBodies \
	./auth/authjwt/:FuzzVerify \
	./auth/authoidc/:FuzzVerify \
	./auth/authoidc/:FuzzParseFederation \
	./auth/authpolicy/:FuzzParseAccessControl \
	./auth/authpolicy/:FuzzInvokeDecision \
	./auth/authca/:FuzzSignCSR \
	./blocks/pubsub/:FuzzNewEnvelope \
	./blocks/pubsub/:FuzzDecodeEvent \
	./blocks/pubsub/:FuzzParseSubscription \
	./blocks/pubsub/pubsubjs/:FuzzEscapeToken \
	./blocks/pubsub/pubsubjs/:FuzzHeaderValue \
	./blocks/invoke/invokeresiliency/:FuzzParse \
	./blocks/pubsub/:FuzzAppendEnvelope

.PHONY: build run test unit e2e fuzz bench lint js-deps clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/blockgate .

run: build
	./bin/blockgate serve --dev

js-deps: e2e/js/node_modules/.package-lock.json

e2e/js/node_modules/.package-lock.json: e2e/js/package.json e2e/js/package-lock.json
	npm ci --prefix e2e/js --no-audit --no-fund

test: unit fuzz e2e

unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /e2e)

e2e: js-deps
	$(GO) test -count=1 -timeout 10m ./e2e/

fuzz:
	@set -e; for t in $(FUZZ); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# statebench: gateway vs raw pgx on the state API; pubsubbench: gateway vs
# raw JetStream on the pub/sub API (see BENCHMARKS.md). About 4 min in all.
# Extra flags go last and win, e.g. make bench STATEBENCH_FLAGS="-rounds 1"
# PUBSUBBENCH_FLAGS="-rounds 1".
bench: build
	$(GO) run ./bench/statebench -bin bin/blockgate -duration 10s -clients 16 -keys 10000 -rounds 3 \
		-json bin/statebench.json $(STATEBENCH_FLAGS)
	$(GO) run ./bench/pubsubbench -bin bin/blockgate -duration 5s -publishers 16 -batch 100 -rate 1000 -rounds 3 \
		-json bin/pubsubbench.json $(PUBSUBBENCH_FLAGS)
	$(GO) run ./bench/invokebench -bin bin/blockgate -rate 1000 -duration 10s -rounds 5 -keep-awake \
		-json bin/invokebench.json $(INVOKEBENCH_FLAGS)
	$(GO) run ./bench/neighbourbench -bin bin/blockgate -duration 20s -json bin/neighbourbench.json $(NEIGHBOURBENCH_FLAGS)
	$(GO) run ./bench/clusterbench -bin bin/blockgate -duration 15s -workers 18 -rounds 3 -json bin/clusterbench.json $(CLUSTERBENCH_FLAGS)
	$(GO) run ./bench/xdsbench -nodes 1000 -changes 5 -json bin/xdsbench.json $(XDSBENCH_FLAGS)

lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf bin .blockgate
