# Entry points (README.md); each installs what is missing first.
#
#   make run     build, then PostgreSQL (.data/postgres), migrations, the three
#                gRPC services and the gateway on http://127.0.0.1:8080
#   make test    build, then every test against a throw-away PostgreSQL
#   make test-sanitize
#                the C++ unit and integration tests built with clang under
#                ThreadSanitizer (build-tsan/) and under AddressSanitizer +
#                UndefinedBehaviorSanitizer (build-asan/), run against a
#                throw-away PostgreSQL; any sanitizer report fails
#   make fuzz    the libFuzzer targets of fuzz/ (build-fuzz/), each for
#                FUZZ_SECONDS (default 60); fails on a crash
#   make fuzz-smoke
#                the same for 10 s each (CI)
#   make build   C++ services and tools into build/, the browser client (web/)
#                into gateway/webdist/dist/, the gateway into build/bin/
#   make bench   load a private stack with ghz, wrk and pgbench; prints a table
#   make deps    install missing Debian packages (scripts/install-deps.sh)
#   make fmt     clang-format, gofmt and prettier (web/) the sources in place
#   make clean   remove build outputs (never .data/, which holds your data)
#
# Sanitizers and fuzzing (docs/architecture.md "Testing"). CMake takes
# -DCHAT_SANITIZE=thread|address or -DCHAT_FUZZ=ON (clang only, e.g.
# CXX=clang++-14), each in a build directory of its own. Debian's gRPC,
# protobuf, Abseil and libpq are not instrumented: tests/tsan.supp holds the
# TSan suppressions for false positives inside them (none today; it says how
# the one gRPC test avoids them), never for our code. A fuzz target's corpus
# is fuzz/corpus/<target>/ (checked-in seeds; new inputs go to
# build-fuzz/corpus/<target>/); a crash leaves its input in
# build-fuzz/artifacts/, and becomes a unit test beside the code it broke.
# Reproduce one with build-fuzz/fuzz/<target> <file>.
#
# No `make -j` needed: ninja builds in parallel with one job per core
# (override with JOBS=n).

SHELL      := /bin/bash
BUILD_DIR  := build
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

# Go may be installed in /usr/local/go/bin without being on PATH.
export PATH := $(PATH):/usr/local/go/bin

# Sources we format: everything but generated and build output.
PRUNE       := \( -path ./$(BUILD_DIR) -o -path './build-*' -o -path ./.data -o -path ./.git \
                  -o -path ./gateway/gen -o -path ./gateway/bin -o -path ./web/node_modules \) -prune -o
CXX_SOURCES  = $(shell find . $(PRUNE) -type f \( -name '*.cc' -o -name '*.h' \) -print)
GO_SOURCES   = $(shell find . $(PRUNE) -type f -name '*.go' -print)

FUZZ_SECONDS ?= 60
# make run REPLICAS=n: n processes of each service (scripts/run.sh).
REPLICAS ?= 1

.PHONY: all deps build web run test test-sanitize fuzz fuzz-smoke bench fmt clean
all: build

# The browser client (web/, docs/web-client.md): `npm ci` when the lock file
# changed, the production build when a source changed. It writes
# gateway/webdist/dist/, which the gateway embeds, so it runs before the
# gateway's go build (a gateway built without it serves a "not built" page).
WEB_SOURCES = web/index.html web/vite.config.ts web/tsconfig.json web/package.json \
              $(shell find web/src web/public -type f 2>/dev/null)
WEB_OUT     := gateway/webdist/dist/index.html
WEB_DEPS    := web/node_modules/.ci-stamp

$(WEB_DEPS): web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

$(WEB_OUT): $(WEB_DEPS) $(WEB_SOURCES)
	cd web && npm run build

web: $(WEB_OUT)

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD_DIR) --parallel $(JOBS)
	$(MAKE) web
	$(MAKE) -C gateway build

run: build
	@BUILD_DIR=$(abspath $(BUILD_DIR)) REPLICAS=$(REPLICAS) scripts/run.sh

test: build
	@BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/test.sh

test-sanitize: deps
	@JOBS=$(JOBS) scripts/test-sanitize.sh

fuzz: deps
	@JOBS=$(JOBS) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

fuzz-smoke: deps
	@JOBS=$(JOBS) FUZZ_SECONDS=10 scripts/fuzz.sh

bench: build
	@BUILD_DIR=$(abspath $(BUILD_DIR)) bash bench/run.sh

fmt:
	clang-format -i $(CXX_SOURCES)
	gofmt -l -w $(GO_SOURCES)
	cd web && npm run fmt

clean:
	rm -rf $(BUILD_DIR) build-tsan build-asan build-fuzz gateway/webdist/dist web/node_modules
	$(MAKE) -C gateway clean
