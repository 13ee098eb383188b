#!/usr/bin/env bash
# Makes (or reuses) the Python venv with the pinned schemathesis of
# tests/openapi/requirements.txt and prints the path of its `st` command.
# The venv lives in $BUILD_DIR/openapi-fuzz-venv (default build/) and is
# made again when the requirements change. Needs python3 with venv
# (scripts/install-deps.sh) and PyPI.
#
#   scripts/openapi-fuzz-venv.sh     prints .../openapi-fuzz-venv/bin/st
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BUILD_DIR=$(realpath -m "${BUILD_DIR:-$ROOT/build}")
REQUIREMENTS="$ROOT/tests/openapi/requirements.txt"
VENV="$BUILD_DIR/openapi-fuzz-venv"
STAMP="$VENV/.requirements"

if [[ ! -x "$VENV/bin/st" ]] || ! cmp -s "$REQUIREMENTS" "$STAMP"; then
  rm -rf "$VENV"
  mkdir -p "$BUILD_DIR"
  # Debian's own python3 when there is one: the venv needs its venv module.
  python=python3
  [[ -x /usr/bin/python3 ]] && python=/usr/bin/python3
  "$python" -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    --require-virtualenv -r "$REQUIREMENTS" >&2
  cp "$REQUIREMENTS" "$STAMP"
fi
echo "$VENV/bin/st"
