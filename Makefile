# Roost: `make run` builds and starts the server; `make test` runs the whole suite.
# Both install what is missing first (scripts/install-deps.sh).

CARGO ?= cargo
WEB_STAMP := web/dist/.built
WEB_SOURCES := $(shell find web/src web/lint web/index.html web/package.json web/package-lock.json web/vite.config.ts web/tsconfig.json web/.oxlintrc.json -type f 2>/dev/null)

.PHONY: all run build deps test-deps web test test-rust test-web bench openapi fmt lint clean

all: build

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

# The console: reinstalled when the lockfile changes, rebuilt when a source changes.
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_STAMP): web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npm run build --silent
	@touch $@

web: deps $(WEB_STAMP)

build: web
	$(CARGO) build --release -p roost

# Starts the server on http://127.0.0.1:7700 with SQLite in the default data dir
# (/var/lib/roost as root). Extra flags: make run ARGS="--listen 0.0.0.0:7700".
run: build
	./target/release/roost server $(ARGS)

test: test-deps web
	scripts/test.sh

bench: build
	scripts/install-deps.sh --bench
	scripts/bench-api.sh
	scripts/bench-instances.sh
	scripts/bench-networks.sh
	scripts/bench-s3.sh
	scripts/bench-volumes.sh
	scripts/bench-vms.sh
	scripts/bench-sandboxes.sh
	scripts/bench-sandbox-processes.sh
	scripts/bench-templates.sh

# Rewrites openapi.json from the code (the test suite fails while it is stale).
openapi:
	UPDATE_OPENAPI=1 $(CARGO) test -p roost-http --test openapi

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf web/dist web/node_modules
