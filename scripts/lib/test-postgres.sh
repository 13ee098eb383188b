# Sourced by scripts/test.sh and scripts/test-sanitize.sh: a throw-away
# PostgreSQL 15 cluster for one test run, made in a temporary directory on a
# free port and removed at exit whatever happens.
#
#   source scripts/lib/test-postgres.sh
#   start_test_postgres || exit 1   # exports TEST_DATABASE_URL
#
# It installs the EXIT, INT and TERM traps; the caller's exit status is kept.
# Expects to run from the repository root. Also: say (a heading), step NAME
# CMD... (runs CMD, notes a failure, goes on) and finish_steps (the summary;
# exits 1 if a step failed).

say() { printf '\n==> %s\n' "$*"; }

_test_postgres_cleanup() {
  local status=$?
  trap '' INT TERM
  if [[ -n "${PG_DIR:-}" ]]; then
    scripts/postgres.sh stop "$PG_DIR" >/dev/null 2>&1 ||
      echo "$0: could not stop the PostgreSQL in $PG_DIR" >&2
    rm -rf "$PG_DIR"
  fi
  exit "$status"
}

_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_test_postgres() {
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/chat-test-postgres.XXXXXX") || return 1
  trap _test_postgres_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  say "starting a throw-away PostgreSQL in $PG_DIR"
  TEST_DATABASE_URL=
  local port
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 30000))
    _port_in_use "$port" && continue
    if TEST_DATABASE_URL=$(scripts/postgres.sh start "$PG_DIR" "$port"); then
      break
    fi
  done
  if [[ -z "$TEST_DATABASE_URL" ]]; then
    echo "$0: could not start PostgreSQL" >&2
    return 1
  fi
  export TEST_DATABASE_URL
  echo "PostgreSQL 15 on 127.0.0.1:$port"
}

# Runs every step even when one fails; finish_steps reports and exits
# non-zero if any did.
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

finish_steps() {
  echo
  if ((${#failed[@]} > 0)); then
    echo "FAILED: ${failed[*]}"
    exit 1
  fi
  echo "All tests passed."
}
