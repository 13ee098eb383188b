#!/usr/bin/env bash
# `make bench` (issues 3 and 4): loads a throw-away copy of the whole stack on
# loopback and prints one markdown table.
#
#   1. Tools, installed when missing: ghz (pinned, `go install` into
#      $BENCH_TOOLS, default build/bench-tools), wrk and pgbench (Debian),
#      and bench/tool (benchtool, standard library only).
#   2. A stack of its own: a private PostgreSQL cluster in a temp dir
#      (scripts/postgres.sh), chat-migrate, the three services (message with
#      PROVIDER=echo and DB_POOL_SIZE=concurrency) and the gateway, on free
#      ports. One user, $BENCH_APPEND_CONVS conversations for appends, and one
#      conversation seeded with $BENCH_MESSAGES messages by SQL.
#   3. At the same concurrency, $BENCH_DURATION s each after a warm-up:
#      append-message over gRPC (ghz), REST (wrk) and as the same SQL in
#      pgbench (role chat_message, BEGIN; set_config; the statement of
#      services/message/message_storage.cc; COMMIT, -M prepared); the same
#      for the first page of 50 of the big conversation and for the page after
#      message $BENCH_DEEP_SEQ.
#   4. The message service restarted with PROVIDER=openai against a fake
#      OpenAI-compatible provider (benchtool provider): time to the first
#      delta through the stack (REST SSE) against the provider's own, then
#      the RSS of every process with $BENCH_STREAMS streams held open.
#   5. The table: rates, p50/p99, non-OK answers, CPU per process, the
#      targets as ratios with PASS or MISS, and the machine.
# Everything it starts stops on exit (also on Ctrl-C) and the temp dir goes.
#
# Environment: BUILD_DIR (default build), BENCH_TOOLS, BENCH_CONCURRENCY (16),
# BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_MESSAGES (1000000),
# BENCH_DEEP_SEQ (900000), BENCH_STREAMS (1000), BENCH_TTFB_REQUESTS (200),
# BENCH_APPEND_CONVS (256), BENCH_GHZ_CONNECTIONS (1), BENCH_OUT (also write
# the table to this file), BENCH_KEEP=1 (keep the temp dir with the logs and
# raw outputs), BENCH_PERF=1 (perf record -a during the gRPC runs, reports in
# the temp dir; needs perf), PG_BIN.
#
# About 3 minutes and 2 GB in /tmp (the seeded cluster and its WAL). The
# pgbench script is made from the service's own SQL at run time
# (benchtool pgscript); see BENCHMARKS.md for what differs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export PATH=$PATH:/usr/local/go/bin

BUILD_DIR=$(cd "${BUILD_DIR:-$ROOT/build}" 2>/dev/null && pwd -P || echo "${BUILD_DIR:-$ROOT/build}")
TOOLS=${BENCH_TOOLS:-$ROOT/build/bench-tools}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
MESSAGES=${BENCH_MESSAGES:-1000000}
DEEP_SEQ=${BENCH_DEEP_SEQ:-900000}
STREAMS=${BENCH_STREAMS:-1000}
TTFB_REQUESTS=${BENCH_TTFB_REQUESTS:-200}
# ghz sends its concurrent calls over one HTTP/2 connection, as a gRPC client
# (and the gateway) does; one connection per worker costs ghz twice the CPU.
GHZ_CONNECTIONS=${BENCH_GHZ_CONNECTIONS:-1}
APPEND_CONVS=${BENCH_APPEND_CONVS:-256}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
readonly GHZ_VERSION=v0.120.0
readonly PAGE_SIZE=50
readonly DATABASE=chat_bench
readonly CONTENT="Benchmark message: the quick brown fox jumps over the lazy dog, then asks the assistant what to do next."

say() { printf 'bench | %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

declare -A PIDS=()
NAMES=()
WORK=
PROVIDER_PID=
PG_STARTED=0
FAILED=1

# --- tools -------------------------------------------------------------------

apt_install() {
  ((EUID == 0)) || die "$* missing; install the Debian packages $* (or run as root)"
  say "installing $* (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; } ||
    die "apt-get install $* failed"
}

install_tools() {
  command -v go >/dev/null || die "go is not installed (make deps)"
  mkdir -p "$TOOLS"
  if [[ ! -x "$TOOLS/ghz" ]] ||
    ! go version -m "$TOOLS/ghz" 2>/dev/null | grep -Eq "mod[[:space:]]+github.com/bojand/ghz[[:space:]]+$GHZ_VERSION"; then
    say "installing ghz $GHZ_VERSION into $TOOLS (go install, about a minute)"
    GOWORK=off GOBIN=$TOOLS go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" ||
      die "go install ghz failed"
  fi
  command -v wrk >/dev/null || apt_install wrk
  [[ -x "$PG_BIN/pgbench" && -x "$PG_BIN/psql" ]] || apt_install postgresql-contrib postgresql-client
  [[ -x "$PG_BIN/pgbench" ]] || die "no $PG_BIN/pgbench"
  command -v curl >/dev/null || apt_install curl
  command -v openssl >/dev/null || apt_install openssl
  (cd "$ROOT/bench/tool" && GOWORK=off CGO_ENABLED=0 go build -o "$TOOLS/benchtool" .) ||
    die "building bench/tool failed"
  GHZ=$TOOLS/ghz
  BT=$TOOLS/benchtool
}

# --- processes ---------------------------------------------------------------

# start NAME BINARY [VAR=value...]: in a session of its own, logging to
# $WORK/logs/NAME.log.
start() {
  local name=$1 binary=$2
  shift 2
  env "$@" setsid "$binary" </dev/null >>"$WORK/logs/$name.log" 2>&1 &
  PIDS[$name]=$!
  NAMES+=("$name")
}

alive() { [[ -n "${PIDS[$1]:-}" ]] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

stop() {
  local name deadline
  for name in "$@"; do
    alive "$name" && kill -TERM "${PIDS[$name]}" 2>/dev/null || true
  done
  deadline=$((SECONDS + 15))
  for name in "$@"; do
    [[ -n "${PIDS[$name]:-}" ]] || continue
    while alive "$name" && ((SECONDS < deadline)); do sleep 0.1; done
    alive "$name" && kill -KILL "${PIDS[$name]}" 2>/dev/null || true
    wait "${PIDS[$name]}" 2>/dev/null || true
    unset "PIDS[$name]"
  done
}

show_logs() {
  local f
  for f in "$WORK"/logs/*.log; do
    [[ -s "$f" ]] || continue
    echo "---- last lines of $(basename "$f") ----" >&2
    tail -n 15 "$f" >&2
  done
}

cleanup() {
  local status=$?
  trap '' INT TERM HUP
  ((status != 0 || FAILED)) && [[ -n "$WORK" && -d "$WORK/logs" ]] && show_logs
  stop gateway
  stop auth conversation message
  if [[ -n "$PROVIDER_PID" ]]; then
    kill -TERM "$PROVIDER_PID" 2>/dev/null || true
    wait "$PROVIDER_PID" 2>/dev/null || true
  fi
  if ((PG_STARTED)); then
    "$ROOT/scripts/postgres.sh" stop "$WORK/postgres" >&2 || say "could not stop PostgreSQL in $WORK/postgres"
  fi
  if [[ -n "$WORK" ]]; then
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
      say "kept $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$status"
}

check_alive() {
  local name
  for name in "${NAMES[@]}"; do
    [[ -z "${PIDS[$name]:-}" ]] || alive "$name" || die "$name exited (see its log below)"
  done
}

wait_ready() {
  local deadline=$((SECONDS + 60)) code
  while :; do
    check_alive
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)
    [[ "$code" == 200 ]] && return 0
    ((SECONDS < deadline)) || die "$BASE/readyz did not answer 200 within 60 s (last: ${code:-none})"
    sleep 0.2
  done
}

start_message() {
  start message "$BUILD_DIR/services/message/chat-message" \
    DATABASE_URL="$(role_url chat_message)" GRPC_LISTEN="127.0.0.1:$MSG_PORT" \
    AUTH_ADDR="127.0.0.1:$AUTH_PORT" DB_POOL_SIZE="$CONCURRENCY" "$@"
}

role_url() { printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$1" "$ROLE_PASSWORD" "$PG_PORT" "$DATABASE"; }

start_stack() {
  local ports
  mapfile -t ports < <("$BT" ports 6)
  PG_PORT=${ports[0]} AUTH_PORT=${ports[1]} CONV_PORT=${ports[2]}
  MSG_PORT=${ports[3]} GW_PORT=${ports[4]} PROVIDER_PORT=${ports[5]}
  BASE=http://127.0.0.1:$GW_PORT

  say "starting PostgreSQL in $WORK/postgres on 127.0.0.1:$PG_PORT"
  PG_STARTED=1
  ADMIN_URL=$(PG_BIN=$PG_BIN "$ROOT/scripts/postgres.sh" start "$WORK/postgres" "$PG_PORT" "$DATABASE")
  POSTMASTER=$(head -n 1 "$WORK/postgres/pgdata/postmaster.pid")
  ROLE_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

  say "applying migrations"
  DATABASE_URL=$ADMIN_URL CHAT_AUTH_DB_PASSWORD=$ROLE_PASSWORD \
    CHAT_CONVERSATION_DB_PASSWORD=$ROLE_PASSWORD CHAT_MESSAGE_DB_PASSWORD=$ROLE_PASSWORD \
    "$BUILD_DIR/deploy/migrate/chat-migrate" --migrations_dir "$ROOT/deploy/migrations" \
    >"$WORK/logs/migrate.log" 2>&1 || die "chat-migrate failed: $(tail -n 5 "$WORK/logs/migrate.log")"

  (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$WORK/signing.pem" 2>/dev/null) || die "openssl genpkey failed"

  say "starting the services and the gateway"
  start auth "$BUILD_DIR/services/auth/chat-auth" \
    DATABASE_URL="$(role_url chat_auth)" GRPC_LISTEN="127.0.0.1:$AUTH_PORT" \
    AUTH_SIGNING_KEY_FILE="$WORK/signing.pem"
  start conversation "$BUILD_DIR/services/conversation/chat-conversation" \
    DATABASE_URL="$(role_url chat_conversation)" GRPC_LISTEN="127.0.0.1:$CONV_PORT" \
    AUTH_ADDR="127.0.0.1:$AUTH_PORT"
  start_message PROVIDER=echo
  start gateway "$BUILD_DIR/bin/chat-gateway" \
    GATEWAY_LISTEN="127.0.0.1:$GW_PORT" AUTH_ADDR="127.0.0.1:$AUTH_PORT" \
    CONVERSATION_ADDR="127.0.0.1:$CONV_PORT" MESSAGE_ADDR="127.0.0.1:$MSG_PORT"
  wait_ready
}

psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" "$@"; }

# The big conversation: $MESSAGES messages with positions 1..n, UUIDv7-shaped
# ids in position order, alternating user/assistant, 1 ms apart, and the
# conversation's count and last position to match.
seed() {
  say "seeding $MESSAGES messages into one conversation (SQL as the admin)"
  local t0=$SECONDS
  psql_admin -v uid="$USER_ID" -v cid="$BIG_CONV" -v n="$MESSAGES" >/dev/null <<'SQL'
SET synchronous_commit = off;
BEGIN;
INSERT INTO messages (user_id, conversation_id, seq, id, role, content, status,
                      model, metadata, created_at, updated_at)
SELECT :'uid'::uuid, :'cid'::uuid, g,
       (lpad(to_hex(b.ms + g), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0') ||
        '8' || lpad(to_hex(g), 15, '0'))::uuid,
       CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
       'Seeded message ' || g || ': ' || repeat('lorem ipsum dolor sit amet ', 4),
       'complete', CASE WHEN g % 2 = 1 THEN '' ELSE 'bench-model' END, '{}'::jsonb,
       b.t + g * interval '1 millisecond', b.t + g * interval '1 millisecond'
FROM (SELECT t, (extract(epoch FROM t) * 1000)::bigint AS ms
      FROM (SELECT now() - (:n + 1) * interval '1 millisecond' AS t) x) b,
     generate_series(1, :n) g;
UPDATE conversations c
SET message_count = :n, last_seq = :n, last_message_at = m.created_at,
    updated_at = GREATEST(c.updated_at, m.created_at)
FROM messages m
WHERE c.user_id = :'uid' AND c.id = :'cid'
  AND m.user_id = :'uid' AND m.conversation_id = :'cid' AND m.seq = :n;
COMMIT;
VACUUM (ANALYZE) messages;
ANALYZE conversations;
CHECKPOINT;
SQL
  local count
  count=$(psql_admin -t -A -c "SELECT message_count FROM conversations WHERE id = '$BIG_CONV'")
  [[ "$count" == "$MESSAGES" ]] || die "seeding left message_count = $count"
  say "seeded in $((SECONDS - t0)) s"
}

# --- measurements --------------------------------------------------------------

# measure PREFIX COMMAND...: the command under benchtool run (CPU of the
# stack around it); its status is in RC.
measure() {
  local prefix=$1
  shift
  RC=0
  "$BT" run -results "$RESULTS" -prefix "$prefix" -postmaster "$POSTMASTER" \
    -pids "message=${PIDS[message]},gateway=${PIDS[gateway]},auth=${PIDS[auth]},conversation=${PIDS[conversation]}" \
    -- "$@" || RC=$?
  check_alive
}

ghz_load() { # PREFIX LABEL METHOD (data flags...)
  local prefix=$1 label=$2 method=$3
  shift 3
  local common=(--insecure --proto chat/v1/message.proto --import-paths "$ROOT/proto,/usr/include"
    --call "chat.v1.MessageService.$method" --metadata "{\"authorization\":\"Bearer $TOKEN\"}"
    --concurrency "$CONCURRENCY" --connections "$GHZ_CONNECTIONS" --duration-stop wait
    --timeout 10s "$@")
  say "$label: gRPC (ghz)"
  "$GHZ" "${common[@]}" --duration "${WARMUP}s" --format json --output /dev/null "127.0.0.1:$MSG_PORT" ||
    die "ghz warm-up failed"
  local perf_pid=
  if [[ "${BENCH_PERF:-0}" == 1 ]]; then
    perf record -q -a -g -F 499 -o "$WORK/out/$prefix.perf" -- sleep "$DURATION" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  measure "$prefix" "$GHZ" "${common[@]}" --duration "${DURATION}s" --format json \
    --output "$WORK/out/$prefix.json" "127.0.0.1:$MSG_PORT"
  if [[ -n "$perf_pid" ]]; then
    wait "$perf_pid" || true
    {
      echo "== the machine, by thread name (chat-message's threads are grpcpp_sync_ser and nexting_thread)"
      perf report -q -i "$WORK/out/$prefix.perf" --stdio --no-children --sort comm -g none \
        --percent-limit 1 2>/dev/null
      echo "== chat-message (pid ${PIDS[message]}), by library, % of its own samples"
      perf report -q -i "$WORK/out/$prefix.perf" --stdio --no-children --sort dso -g none \
        --pid "${PIDS[message]}" --percentage relative --percent-limit 1 2>/dev/null
      echo "== chat-message, by symbol"
      perf report -q -i "$WORK/out/$prefix.perf" --stdio --no-children --sort dso,sym -g none \
        --pid "${PIDS[message]}" --percentage relative --percent-limit 0.5 2>/dev/null
    } | cut -c 1-160 >"$WORK/out/$prefix.perf.txt" || true
    say "perf profile of the machine during $prefix: $WORK/out/$prefix.perf.txt"
  fi
  ((RC == 0)) || say "ghz exited with status $RC"
  "$BT" ghzsum -in "$WORK/out/$prefix.json" -results "$RESULTS" -prefix "$prefix"
}

wrk_load() { # PREFIX LABEL MODE URL (wrk flags...)
  local prefix=$1 label=$2 mode=$3 url=$4
  shift 4
  say "$label: REST (wrk)"
  local env=(BENCH_MODE="$mode" BENCH_CONVS="$WORK/convs" BENCH_TOKEN="$TOKEN" BENCH_CONTENT="$CONTENT")
  env "${env[@]}" BENCH_OUT=/dev/null wrk -t 2 -c "$CONCURRENCY" -d "${WARMUP}s" \
    -s "$ROOT/bench/wrk/bench.lua" "$@" "$url" >/dev/null || die "wrk warm-up failed"
  measure "$prefix" env "${env[@]}" BENCH_OUT="$WORK/out/$prefix.wrk" wrk -t 2 -c "$CONCURRENCY" \
    -d "${DURATION}s" --timeout 10s -s "$ROOT/bench/wrk/bench.lua" "$@" "$url" >"$WORK/out/$prefix.txt"
  ((RC == 0)) || die "wrk exited with status $RC"
  "$BT" wrksum -in "$WORK/out/$prefix.wrk" -results "$RESULTS" -prefix "$prefix"
}

pgbench_load() { # PREFIX LABEL SCRIPT (pgbench -D flags...)
  local prefix=$1 label=$2 script=$3
  shift 3
  say "$label: the same SQL in pgbench"
  local common=(-h 127.0.0.1 -p "$PG_PORT" -U chat_message -n -M prepared
    -c "$CONCURRENCY" -j 2 -f "$script" -D user="$USER_ID" "$@")
  PGPASSWORD=$ROLE_PASSWORD "$PG_BIN/pgbench" "${common[@]}" -T "$WARMUP" "$DATABASE" \
    >"$WORK/out/$prefix.warmup" 2>&1 || die "pgbench warm-up failed: $(tail -n 5 "$WORK/out/$prefix.warmup")"
  PGPASSWORD=$ROLE_PASSWORD measure "$prefix" "$PG_BIN/pgbench" "${common[@]}" -T "$DURATION" \
    --log --log-prefix="$WORK/out/$prefix.log" "$DATABASE" >"$WORK/out/$prefix.txt" 2>&1
  "$BT" pgsum -stdout "$WORK/out/$prefix.txt" -logs "$WORK/out/$prefix.log" -rc "$RC" \
    -results "$RESULTS" -prefix "$prefix"
}

main() {
  install_tools
  for binary in services/auth/chat-auth services/conversation/chat-conversation \
    services/message/chat-message bin/chat-gateway deploy/migrate/chat-migrate; do
    [[ -x "$BUILD_DIR/$binary" ]] || die "$BUILD_DIR/$binary is missing; run \`make build\` (or set BUILD_DIR)"
  done

  WORK=$(mktemp -d /tmp/chat-bench.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  mkdir -p "$WORK/logs" "$WORK/out"
  # A copy of the binaries: a rebuild during the run cannot change them.
  local binary
  for binary in services/auth/chat-auth services/conversation/chat-conversation \
    services/message/chat-message bin/chat-gateway deploy/migrate/chat-migrate; do
    mkdir -p "$WORK/bin/$(dirname "$binary")"
    cp "$BUILD_DIR/$binary" "$WORK/bin/$binary"
  done
  BUILD_DIR=$WORK/bin
  RESULTS=$WORK/results
  {
    echo "machine.nproc=$(nproc)"
    echo "machine.cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "machine.kernel=$(uname -r)"
    echo "machine.date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine.loadavg=$(cut -d ' ' -f 1-3 /proc/loadavg)"
    echo "machine.postgres=$("$PG_BIN/postgres" --version | awk '{print $3}')"
    echo "config.concurrency=$CONCURRENCY"
    echo "config.duration=$DURATION"
    echo "config.warmup=$WARMUP"
    echo "config.ghz_connections=$GHZ_CONNECTIONS"
    echo "config.messages=$MESSAGES"
    echo "config.deep_seq=$DEEP_SEQ"
  } >"$RESULTS"

  start_stack
  "$BT" setup -base "$BASE" -convs "$APPEND_CONVS" -out "$WORK"
  TOKEN=$(<"$WORK/token")
  USER_ID=$(<"$WORK/user_id")
  BIG_CONV=$(<"$WORK/big_conv")
  seed

  # Appends: conversations picked at random among $APPEND_CONVS by every tool.
  local src=$ROOT/services/message/message_storage.cc
  "$BT" pgscript -src "$src" -kind append -convs "$WORK/convs" -out "$WORK/append.sql"
  "$BT" pgscript -src "$src" -kind list -out "$WORK/list.sql"
  "$BT" ghzdata -convs "$WORK/convs" -content "$CONTENT" -out "$WORK/append.json"
  local conv_vars=() i=0 id
  while read -r id; do
    conv_vars+=(-D "c$i=$id")
    i=$((i + 1))
  done <"$WORK/convs"
  pgbench_load append.pg "append" "$WORK/append.sql" "${conv_vars[@]}" \
    -D role=user -D content="$CONTENT" -D status=complete -D meta='{}' \
    -D ts="$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')"
  ghz_load append.grpc "append" CreateMessage --data-file "$WORK/append.json"
  wrk_load append.rest "append" append "$BASE"

  # Every append that answered OK is stored once, and the counts match.
  psql_admin -t -A -F ' ' -c "SELECT (SELECT count(*) FROM messages WHERE conversation_id <> '$BIG_CONV'),
      (SELECT sum(message_count) FROM conversations WHERE id <> '$BIG_CONV')" |
    { read -r stored counted && printf 'append.check.stored=%s\nappend.check.counted=%s\n' "$stored" "$counted"; } >>"$RESULTS"

  # Listings of the big conversation: the first page and one deep in it.
  local deep_token list_url="$BASE/v1/conversations/$BIG_CONV/messages?page_size=$PAGE_SIZE"
  deep_token=$("$BT" token -conv "$BIG_CONV" -seq "$DEEP_SEQ")
  local first_data="{\"conversation_id\":\"$BIG_CONV\",\"page_size\":$PAGE_SIZE}"
  local deep_data="{\"conversation_id\":\"$BIG_CONV\",\"page_size\":$PAGE_SIZE,\"page_token\":\"$deep_token\"}"
  # The deep token must work and land where it says.
  local page
  page=$(curl -sf "$list_url&page_token=$deep_token" -H "Authorization: Bearer $TOKEN") ||
    die "the deep page token was refused"
  grep -q "Seeded message $((DEEP_SEQ + 1)):" <<<"$page" || die "the deep page does not start after message $DEEP_SEQ"
  local list_vars=(-D conv="$BIG_CONV" -D lim=$((PAGE_SIZE + 1)))
  pgbench_load list1.pg "list, first page" "$WORK/list.sql" "${list_vars[@]}" -D after=0
  ghz_load list1.grpc "list, first page" ListMessages --data "$first_data"
  wrk_load list1.rest "list, first page" get "$list_url" -H "Authorization: Bearer $TOKEN"
  pgbench_load listdeep.pg "list, deep page" "$WORK/list.sql" "${list_vars[@]}" -D after="$DEEP_SEQ"
  ghz_load listdeep.grpc "list, deep page" ListMessages --data "$deep_data"
  wrk_load listdeep.rest "list, deep page" get "$list_url&page_token=$deep_token" \
    -H "Authorization: Bearer $TOKEN"

  # Chat: the message service again, now against the fake provider.
  say "restarting the message service with PROVIDER=openai and a fake provider"
  "$BT" provider -listen "127.0.0.1:$PROVIDER_PORT" -first-delay 50ms -interval 10ms -chunks 5 \
    -lifetime 10m >>"$WORK/logs/provider.log" 2>&1 &
  PROVIDER_PID=$!
  stop message
  local threads=$((STREAMS + 100))
  ((threads >= 1100)) || threads=1100
  start_message PROVIDER=openai PROVIDER_BASE_URL="http://127.0.0.1:$PROVIDER_PORT/v1" \
    PROVIDER_API_KEY=bench-key PROVIDER_MODEL=bench-model \
    MAX_STREAMS_PER_USER=$((STREAMS + 10)) STREAM_THREADS="$threads"
  wait_ready
  say "chat: time to first byte, $TTFB_REQUESTS replies each way"
  "$BT" ttfb -base "$BASE" -token-file "$WORK/token" -provider "http://127.0.0.1:$PROVIDER_PORT/v1" \
    -n "$TTFB_REQUESTS" -results "$RESULTS" >&2
  check_alive
  say "chat: $STREAMS streams open at once"
  "$BT" streams -base "$BASE" -token-file "$WORK/token" -provider "http://127.0.0.1:$PROVIDER_PORT/v1" \
    -n "$STREAMS" -results "$RESULTS" \
    -pids "message=${PIDS[message]},gateway=${PIDS[gateway]},auth=${PIDS[auth]},conversation=${PIDS[conversation]}" >&2
  check_alive

  FAILED=0
  local table
  table=$("$BT" report -results "$RESULTS")
  [[ -z "${BENCH_OUT:-}" ]] || printf '%s\n' "$table" >"$BENCH_OUT"
  printf '\n%s\n' "$table"
}

main "$@"
