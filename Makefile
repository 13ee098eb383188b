# Entry points (README.md); each installs what is missing first.
#
#   make run     build, then PostgreSQL (.data/postgres), migrations, the three
#                gRPC services and the gateway on http://127.0.0.1:8080
#   make test    build, then every test against a throw-away PostgreSQL
#   make build   C++ services and tools into build/, the gateway into build/bin/
#   make bench   load a private stack with ghz, wrk and pgbench; prints a table
#   make deps    install missing Debian packages (scripts/install-deps.sh)
#   make fmt     clang-format and gofmt the sources in place
#   make clean   remove build outputs (never .data/, which holds your data)
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
PRUNE       := \( -path ./$(BUILD_DIR) -o -path ./.data -o -path ./.git \
                  -o -path ./gateway/gen -o -path ./gateway/bin \) -prune -o
CXX_SOURCES  = $(shell find . $(PRUNE) -type f \( -name '*.cc' -o -name '*.h' \) -print)
GO_SOURCES   = $(shell find . $(PRUNE) -type f -name '*.go' -print)

.PHONY: all deps build run test bench fmt clean
all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD_DIR) --parallel $(JOBS)
	$(MAKE) -C gateway build

run: build
	@BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/run.sh

test: build
	@BUILD_DIR=$(abspath $(BUILD_DIR)) scripts/test.sh

bench: build
	@BUILD_DIR=$(abspath $(BUILD_DIR)) bash bench/run.sh

fmt:
	clang-format -i $(CXX_SOURCES)
	gofmt -l -w $(GO_SOURCES)

clean:
	rm -rf $(BUILD_DIR)
	$(MAKE) -C gateway clean
