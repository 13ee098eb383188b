#!/usr/bin/env bash
# `make test`: every test, against a throw-away PostgreSQL 15 cluster that is
# made for this run in a temporary directory, on a free port, and removed at
# the end whatever happens.
#
# Steps, all run even when one fails (the exit status is non-zero if any did):
#   1. ctest --test-dir build --output-on-failure   C++ unit and integration
#   2. make -C gateway test                         the gateway's Go tests
#      make -C deploy/k8s test                      the Kubernetes manifests
#      cd bench/tool && go test ./...               `make bench`'s tool (its
#                                                   pgbench scripts from the SQL)
#   3. cd tests/e2e && go test -count=1 -timeout 30m ./...  end to end, real binaries;
#      among them the browser client's tests in Debian's headless Chromium
#      (webclient_test.go runs web/tests with Playwright; screenshots of
#      failing pages go to web/test-results/), the OpenAPI fuzz test
#      (schemathesis, installed into $BUILD_DIR/openapi-fuzz-venv by
#      scripts/openapi-fuzz-venv.sh, about 4 minutes) and the
#      generated-client test (tests/apiclient)
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

# shellcheck source=scripts/lib/test-postgres.sh
source scripts/lib/test-postgres.sh
start_test_postgres || exit 1

step "C++ tests" ctest --test-dir "$BUILD_DIR" --output-on-failure
step "gateway tests" "${MAKE:-make}" --no-print-directory -C gateway test
step "deploy manifest tests" "${MAKE:-make}" --no-print-directory -C deploy/k8s test
step "bench tool tests" bash -c 'cd bench/tool && GOWORK=off exec go test -count=1 ./...'
if [[ -f tests/e2e/go.mod ]]; then
  step "end-to-end tests" bash -c 'cd tests/e2e && exec go test -count=1 -timeout 30m ./...'
else
  say "end-to-end tests: skipped, tests/e2e/go.mod does not exist yet"
fi

finish_steps
