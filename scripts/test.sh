#!/usr/bin/env bash
# `make test`: every test, against a throw-away PostgreSQL 15 cluster that is
# made for this run in a temporary directory, on a free port, and removed at
# the end whatever happens.
#
# Steps, all run even when one fails (the exit status is non-zero if any did):
#   1. ctest --test-dir build --output-on-failure   C++ unit and integration
#   2. make -C gateway test                         the gateway's Go tests
#      make -C deploy/k8s test                      the Kubernetes manifests
#   3. cd tests/e2e && go test -count=1 ./...       end to end, real binaries
#
# Exported to the tests: TEST_DATABASE_URL (superuser URL of the cluster's
# `postgres` database; tests create their own databases) and BUILD_DIR.
# Environment: BUILD_DIR (default build), CTEST_PARALLEL_LEVEL (ctest's own).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT" || exit 1
BUILD_DIR=$(realpath -m "${BUILD_DIR:-build}")
export BUILD_DIR
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH=$PATH:/usr/local/go/bin
fi

say() { printf '\n==> %s\n' "$*"; }

PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/chat-test-postgres.XXXXXX") || exit 1
cleanup() {
  local status=$?
  trap '' INT TERM
  scripts/postgres.sh stop "$PG_DIR" >/dev/null 2>&1 ||
    echo "test.sh: could not stop the PostgreSQL in $PG_DIR" >&2
  rm -rf "$PG_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

say "starting a throw-away PostgreSQL in $PG_DIR"
TEST_DATABASE_URL=
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  port_in_use "$port" && continue
  if TEST_DATABASE_URL=$(scripts/postgres.sh start "$PG_DIR" "$port"); then
    break
  fi
done
if [[ -z "$TEST_DATABASE_URL" ]]; then
  echo "test.sh: could not start PostgreSQL" >&2
  exit 1
fi
export TEST_DATABASE_URL
echo "PostgreSQL 15 on 127.0.0.1:$port"

failed=()
step() {
  local name=$1
  shift
  say "$name: $*"
  if "$@"; then
    echo "--> $name: passed"
  else
    echo "--> $name: FAILED"
    failed+=("$name")
  fi
}

step "C++ tests" ctest --test-dir "$BUILD_DIR" --output-on-failure
step "gateway tests" "${MAKE:-make}" --no-print-directory -C gateway test
step "deploy manifest tests" "${MAKE:-make}" --no-print-directory -C deploy/k8s test
if [[ -f tests/e2e/go.mod ]]; then
  step "end-to-end tests" bash -c 'cd tests/e2e && exec go test -count=1 ./...'
else
  say "end-to-end tests: skipped, tests/e2e/go.mod does not exist yet"
fi

echo
if ((${#failed[@]} > 0)); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "All tests passed."
