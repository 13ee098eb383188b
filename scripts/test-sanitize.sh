#!/usr/bin/env bash
# `make test-sanitize`: the C++ unit and integration tests (not the Go ones)
# built with clang twice, each in a build directory of its own, and run
# against one throw-away PostgreSQL 15 cluster:
#
#   build-tsan   -DCHAT_SANITIZE=thread    ThreadSanitizer
#   build-asan   -DCHAT_SANITIZE=address   AddressSanitizer + LeakSanitizer +
#                                          UndefinedBehaviorSanitizer, every
#                                          report fatal
#
# Any sanitizer report fails its test, so the run fails. TSan reads the
# suppressions in tests/tsan.supp (false positives inside Debian's
# uninstrumented libraries only, each with its reason).
#
# Environment: SANITIZERS (default "thread address"), CXX (default
# clang++-14), BUILD_TYPE (default RelWithDebInfo), JOBS,
# CTEST_PARALLEL_LEVEL.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT" || exit 1

CXX=${CXX:-clang++-14}
CC=${CC:-clang-14}
export CC CXX
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
read -ra SANITIZERS <<<"${SANITIZERS:-thread address}"

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "test-sanitize: $CXX is missing; run scripts/install-deps.sh" >&2
  exit 1
fi

# Reports go to stderr, which ctest shows for a failing test; halt at the
# first one so the failing test is the one that caused it.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

build_dir() {
  case "$1" in
    thread) echo "$ROOT/build-tsan" ;;
    address) echo "$ROOT/build-asan" ;;
    *)
      echo "test-sanitize: unknown sanitizer $1 (thread or address)" >&2
      return 1
      ;;
  esac
}

build() {
  local sanitizer=$1 dir start
  dir=$(build_dir "$sanitizer") || return 1
  start=$SECONDS
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DCHAT_SANITIZE="$sanitizer" >/dev/null &&
    cmake --build "$dir" --target chat_tests --parallel "$JOBS" || return 1
  echo "build with $sanitizer sanitizer: $((SECONDS - start)) s"
}

run_tests() {
  local sanitizer=$1 dir start status
  dir=$(build_dir "$sanitizer") || return 1
  start=$SECONDS
  ctest --test-dir "$dir" --output-on-failure
  status=$?
  echo "tests with $sanitizer sanitizer: $((SECONDS - start)) s"
  return "$status"
}

# shellcheck source=scripts/lib/test-postgres.sh
source scripts/lib/test-postgres.sh
start_test_postgres || exit 1

for sanitizer in "${SANITIZERS[@]}"; do
  step "build ($sanitizer)" build "$sanitizer" || continue
  if [[ " ${failed[*]} " == *" build ($sanitizer) "* ]]; then continue; fi
  step "C++ tests ($sanitizer)" run_tests "$sanitizer"
done

finish_steps
