#!/usr/bin/env bash
# The domain unit tests link the rules and the in-memory stores only: no
# gRPC, no libpqxx (docs/architecture.md "The layers of a service"). ctest
# runs this with the test executables' paths.
set -uo pipefail
failed=0
for binary in "$@"; do
  if hits=$(ldd "$binary" | grep -E 'libgrpc|libpqxx|libpq\.'); then
    echo "FAIL $(basename "$binary") links:"
    echo "$hits"
    failed=1
  else
    echo "ok   $(basename "$binary")"
  fi
done
exit "$failed"
