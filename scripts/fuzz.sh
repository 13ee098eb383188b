#!/usr/bin/env bash
# `make fuzz` / `make fuzz-smoke`: builds the libFuzzer targets of fuzz/ with
# clang (-DCHAT_FUZZ=ON: -fsanitize=fuzzer,address,undefined) in build-fuzz/
# and runs each for FUZZ_SECONDS, one after the other, starting from its
# checked-in seeds in fuzz/corpus/<target>/. New inputs go to
# build-fuzz/corpus/<target>/ (kept between runs, never checked in); a crash
# or sanitizer report stops that target, leaves the input in
# build-fuzz/artifacts/ and fails the run. Reproduce one with
#   build-fuzz/fuzz/<target> build-fuzz/artifacts/<file>
#
# Environment: FUZZ_SECONDS (default 60), FUZZ_TARGETS (default: every
# fuzz/*_fuzz.cc), CXX (default clang++-14), JOBS.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT" || exit 1

CXX=${CXX:-clang++-14}
CC=${CC:-clang-14}
export CC CXX
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
BUILD=$ROOT/build-fuzz
if [[ -n "${FUZZ_TARGETS:-}" ]]; then
  read -ra targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for source in fuzz/*_fuzz.cc; do
    name=${source##*/}
    targets+=("${name%.cc}")
  done
fi

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "fuzz: $CXX is missing; run scripts/install-deps.sh" >&2
  exit 1
fi

start=$SECONDS
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCHAT_FUZZ=ON >/dev/null || exit 1
cmake --build "$BUILD" --parallel "$JOBS" --target "${targets[@]}" || exit 1
echo "fuzz: build took $((SECONDS - start)) s"

# Every UBSan finding is fatal (the build has -fno-sanitize-recover).
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

mkdir -p "$BUILD/artifacts"
failed=()
for target in "${targets[@]}"; do
  corpus=$BUILD/corpus/$target
  mkdir -p "$corpus"
  printf '\n==> %s for %s s\n' "$target" "$FUZZ_SECONDS"
  # -max_len keeps inputs near the size of real tokens and chunks.
  if "$BUILD/fuzz/$target" -max_total_time="$FUZZ_SECONDS" -max_len=4096 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/$target-" \
    "$corpus" "fuzz/corpus/$target" 2>"$BUILD/$target.log"; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' \
      "$BUILD/$target.log" || true
    echo "--> $target: no crash"
  else
    tail -n 60 "$BUILD/$target.log"
    echo "--> $target: FAILED (log: $BUILD/$target.log)"
    failed+=("$target")
  fi
done

echo
if ((${#failed[@]} > 0)); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "No fuzz target crashed."
