#!/usr/bin/env bash
# `make bench` (issues 3 and 4): loads a throw-away copy of the whole stack on
# loopback and prints one markdown table.
#
#   1. Tools, installed when missing: ghz (pinned, `go install` into
#      $BENCH_TOOLS, default build/bench-tools), wrk, h2load and pgbench
#      (Debian),
#      and bench/tool (benchtool: the standard library and grpc-go, pinned
#      in bench/tool/go.mod), protoc (Debian, a build dependency).
#   2. A stack of its own: a private PostgreSQL cluster in a temp dir
#      (scripts/postgres.sh), chat-migrate, the three services (message with
#      PROVIDER=echo and DB_POOL_SIZE=concurrency; auth with access tokens of
#      4 hours: the one token of the run outlives a full run, which takes
#      longer than the default 15 minutes) and the gateway, on free
#      ports. One user, $BENCH_APPEND_CONVS conversations for appends, one
#      conversation seeded with $BENCH_MESSAGES messages by SQL (one branch:
#      each message the child of the one before, all of it active) and a
#      small one of $BENCH_SMALL_MESSAGES seeded the same way.
#   3. At the same concurrency, $BENCH_DURATION s each after a warm-up:
#      append-message over gRPC (ghz; listings with h2load, a C client
#      that, like wrk and pgbench, neither decodes the answers nor costs
#      more than they do per call; once more with benchtool grpcload, a
#      grpc-go client that does not decode them either; and the first page
#      with ghz), REST (wrk) and as the same SQL in
#      pgbench (role chat_message, BEGIN; set_config; the statement of
#      services/message/message_storage.cc; COMMIT, -M prepared); the same
#      for the first page of 50 of the big conversation and for the page after
#      message $BENCH_DEEP_SEQ; the first page of 50 of the user's
#      conversations (ListConversations, and the conversation service's
#      SQL in pgbench as role chat_conversation). The listings' pgbench
#      twins read as the services do, in one round trip: the account's
#      setting and the statement in one pipeline (DbReader). Each listing's
#      three measurements whose ratios are targets (pgbench, h2load, wrk)
#      run in $BENCH_LIST_ROUNDS rounds of $BENCH_DURATION s, taken in turn,
#      so that what the machine's other tenants do falls on the twin and
#      on the service alike; grpcload and ghz run once, for comparison.
#   4. Conversation trees: both seeded conversations get side branches (every
#      $BENCH_BRANCH_EVERY-th message of the active branch two older,
#      inactive versions); the two pages again, now of the active branch of
#      a tree; then, $BENCH_SWITCH_CONCURRENCY request(s) in flight, in each
#      of the two conversations: switching the active branch to a newer
#      version of the message $BENCH_SWITCH_DEPTH above the leaf and back
#      (UpdateConversation active_message_id over gRPC, and the conversation
#      service's SQL in pgbench), against an append in the same
#      conversation; $BENCH_SWITCH_ROUNDS rounds of
#      $BENCH_SWITCH_ROUND_DURATION s, the rounds of these eight
#      measurements in turn.
#   5. Chat (issue 11): the message service restarted with PROVIDER=openai
#      against a fake OpenAI-compatible provider (benchtool provider, over
#      HTTP/2 and TLS unless BENCH_PROVIDER_PROTO says otherwise; a
#      "[hold]" marker in the last message makes it send its first chunk and
#      wait for POST /release, each release letting go of the replies held
#      until then). One at a time, $BENCH_TTFB_REQUESTS replies each way:
#      time to the first delta through the stack (REST SSE) against the
#      provider's own. Then $BENCH_STREAMS held replies in progress at once
#      (SSE streams through the gateway): the RSS and threads of every
#      process at idle, with all of them open and after the release; each
#      must end with `done`. Then the time to the first delta again, while
#      $BENCH_TTFB_BACKGROUND held replies of another account are in
#      progress (opened first, released after, each must end with `done`).
#      Last,
#      $BENCH_RESUME_REQUESTS times, one at a time: a held reply, its first
#      delta, and GET .../messages/{id}/stream with Last-Event-ID: 0, timed
#      to the first replayed delta; then the reply is cancelled.
#   6. The table: rates, p50/p99, non-OK answers, CPU per process, the
#      targets as ratios or values with PASS or MISS (issue 11: the message
#      service under 64 threads with 10,000 replies in progress, under
#      16 KiB of RSS per reply in progress for it and for the gateway, the
#      first delta at 1,000 in progress within 5 ms of the provider's), and
#      the machine.
# Everything it starts stops on exit (also on Ctrl-C) and the temp dir goes.
# The open files limit (ulimit -n) is raised to the hard limit first: every
# reply in progress is a connection at the gateway, the message service, the
# provider and the client.
#
# Environment: BUILD_DIR (default build), BENCH_TOOLS, BENCH_CONCURRENCY (16),
# BENCH_DURATION (10), BENCH_WARMUP (2), BENCH_MESSAGES (1000000),
# BENCH_DEEP_SEQ (900000), BENCH_SMALL_MESSAGES (100), BENCH_BRANCH_EVERY
# (1000), BENCH_BRANCH_AT (10: the depths of the branch points are 10, 1010,
# 2010, ...: the first page and the page after message 900,000 each hold one),
# BENCH_LIST_ROUNDS (3), BENCH_SWITCH_DEPTH (10), BENCH_SWITCH_CONCURRENCY
# (1), BENCH_SWITCH_ROUNDS (3), BENCH_SWITCH_ROUND_DURATION (4), BENCH_STREAMS (10000: replies in
# progress at once), BENCH_TTFB_REQUESTS (200), BENCH_TTFB_BACKGROUND (1000:
# replies in progress during the second time-to-first-delta run, of another
# account than the measured replies'; 0 skips it), BENCH_TTFB_SAME_USER=1
# (those background replies on the measured account instead: each measured
# start then counts them, start_reply's per-user cap),
# BENCH_RESUME_REQUESTS (200; 0 skips them), BENCH_APPEND_CONVS (256),
# BENCH_GHZ_CONNECTIONS (1), BENCH_PROVIDER_PROTO (h2: how the fake
# provider of step 5 is spoken to: h2 is HTTP/2 over TLS with a certificate
# made at the start, trusted by PROVIDER_CA_FILE; h1tls is HTTP/1.1 over
# TLS (PROVIDER_HTTP_VERSION=1.1), a TLS connection per reply, as a message
# service before HTTP/2 support spoke to an https provider; http1 is plain
# HTTP/1.1, a connection per reply, which such a service can also be run
# against), BENCH_OUT (also write the table to this file),
# BENCH_KEEP=1 (keep the temp dir with the logs and raw outputs),
# BENCH_ONLY=chat (step 5 alone, after the setup: no seeding, no loads),
# BENCH_ONLY=transfer (export and import alone, bench/transfer.sh; also run
# last in a full run, with its own table),
# BENCH_ONLY=search (the search step of bench/search.sh alone, after the
# setup; a full run runs it after step 4; its variables are there),
# BENCH_ONLY=reads (steps 2 and 3 and the conversation listing alone: the
# appends, the listings of messages and of conversations; no branch
# switches, search, chat or transfers),
# BENCH_PERF=1 (perf record -a during the gRPC, REST and pgbench runs, and
# the gateway's pprof CPU profile during the REST runs; reports in the temp
# dir; needs perf), PG_BIN. The message service of step 5 gets
# MAX_STREAMS_PER_USER = the larger of BENCH_STREAMS and
# BENCH_TTFB_BACKGROUND, plus 10, and PROVIDER_TIMEOUT and
# PROVIDER_IDLE_TIMEOUT of 30 minutes (replies are held while the others
# open).
#
# About 10 minutes and 2 GB in /tmp (the seeded cluster and its WAL). The
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
SMALL_MESSAGES=${BENCH_SMALL_MESSAGES:-100}
BRANCH_EVERY=${BENCH_BRANCH_EVERY:-1000}
BRANCH_AT=${BENCH_BRANCH_AT:-10}
SWITCH_DEPTH=${BENCH_SWITCH_DEPTH:-10}
SWITCH_CONCURRENCY=${BENCH_SWITCH_CONCURRENCY:-1}
LIST_ROUNDS=${BENCH_LIST_ROUNDS:-3}
SWITCH_ROUNDS=${BENCH_SWITCH_ROUNDS:-3}
SWITCH_ROUND_DURATION=${BENCH_SWITCH_ROUND_DURATION:-4}
STREAMS=${BENCH_STREAMS:-10000}
TTFB_REQUESTS=${BENCH_TTFB_REQUESTS:-200}
TTFB_BACKGROUND=${BENCH_TTFB_BACKGROUND:-1000}
RESUME_REQUESTS=${BENCH_RESUME_REQUESTS:-200}
PROVIDER_PROTO=${BENCH_PROVIDER_PROTO:-h2}
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
  command -v h2load >/dev/null || apt_install nghttp2-client
  [[ -x "$PG_BIN/pgbench" && -x "$PG_BIN/psql" ]] || apt_install postgresql-contrib postgresql-client
  [[ -x "$PG_BIN/pgbench" ]] || die "no $PG_BIN/pgbench"
  command -v curl >/dev/null || apt_install curl
  command -v protoc >/dev/null || apt_install protobuf-compiler
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
  mapfile -t ports < <("$BT" ports 7)
  PG_PORT=${ports[0]} AUTH_PORT=${ports[1]} CONV_PORT=${ports[2]}
  MSG_PORT=${ports[3]} GW_PORT=${ports[4]} PROVIDER_PORT=${ports[5]} PPROF_PORT=${ports[6]}
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
    AUTH_SIGNING_KEY_FILE="$WORK/signing.pem" ACCESS_TOKEN_TTL=4h
  start conversation "$BUILD_DIR/services/conversation/chat-conversation" \
    DATABASE_URL="$(role_url chat_conversation)" GRPC_LISTEN="127.0.0.1:$CONV_PORT" \
    AUTH_ADDR="127.0.0.1:$AUTH_PORT"
  start_message PROVIDER=echo
  start gateway "$BUILD_DIR/bin/chat-gateway" \
    GATEWAY_LISTEN="127.0.0.1:$GW_PORT" AUTH_ADDR="127.0.0.1:$AUTH_PORT" \
    CONVERSATION_ADDR="127.0.0.1:$CONV_PORT" MESSAGE_ADDR="127.0.0.1:$MSG_PORT" \
    GATEWAY_PPROF_LISTEN="127.0.0.1:$PPROF_PORT"
  wait_ready
}

psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" "$@"; }

# Seeded conversations are trees as the message service keeps them
# (deploy/migrations/0005_conversation_trees.sql): every message has a
# parent_id (the message before it; the nil UUID for the root), the messages
# of the active branch have active = true, and the conversation's
# active_leaf_id is the end of that branch. Seeding makes one branch of n
# messages; add_branches later gives it side branches. The message at depth
# d (1..n) has the position seq(d) = d + 2 * (branch points at depths <= d),
# so that the two older versions of each branch point (depths
# $BRANCH_AT, $BRANCH_AT + $BRANCH_EVERY, ...) fit in the two positions
# before it: positions follow creation order, as they would had the user
# made those versions first. Ids are UUIDv7-shaped and in position order,
# created_at 1 ms apart, from a base time in ms (SEED_BASE[conversation]).
declare -A SEED_BASE=()
SWITCH_X=
SWITCH_O=
seed_sql_functions() {
  cat <<'SQL'
SET synchronous_commit = off;
CREATE FUNCTION pg_temp.bench_seq(d bigint, every bigint, at bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE
AS $$ SELECT d + 2 * ((d + every - at) / every) $$;
CREATE FUNCTION pg_temp.bench_id(base bigint, seq bigint)
RETURNS uuid LANGUAGE sql IMMUTABLE
AS $$ SELECT (lpad(to_hex(base + seq), 12, '0') || '7' || lpad(to_hex(seq % 4096), 3, '0') ||
              '8' || lpad(to_hex(seq), 15, '0'))::uuid $$;
CREATE FUNCTION pg_temp.bench_at(base bigint, seq bigint)
RETURNS timestamptz LANGUAGE sql IMMUTABLE
AS $$ SELECT to_timestamp((base + seq) / 1000.0) $$;
SQL
}

# seq_of DEPTH: the position of the message at that depth of a seeded branch.
seq_of() { echo $(($1 + 2 * (($1 + BRANCH_EVERY - BRANCH_AT) / BRANCH_EVERY))); }

# seed CONV N: one branch of N messages, alternating user/assistant, the
# conversation's count, last position and active leaf to match.
seed() {
  local conv=$1 n=$2 t0=$SECONDS base
  say "seeding $n messages into one conversation (SQL as the admin)"
  # Room for the positions and a margin.
  base=$(($(date +%s%3N) - $(seq_of "$n") - 1000))
  SEED_BASE[$conv]=$base
  {
    seed_sql_functions
    cat <<'SQL'
BEGIN;
INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, active,
                      role, content, status, model, metadata, created_at, updated_at)
SELECT :'uid'::uuid, :'cid'::uuid, q.seq, pg_temp.bench_id(:base, q.seq),
       CASE WHEN d = 1 THEN '00000000-0000-0000-0000-000000000000'::uuid
            ELSE pg_temp.bench_id(:base, q.parent_seq) END,
       true, CASE WHEN d % 2 = 1 THEN 'user' ELSE 'assistant' END,
       'Seeded message ' || d || ': ' || repeat('lorem ipsum dolor sit amet ', 4),
       'complete', CASE WHEN d % 2 = 1 THEN '' ELSE 'bench-model' END, '{}'::jsonb,
       pg_temp.bench_at(:base, q.seq), pg_temp.bench_at(:base, q.seq)
FROM generate_series(1::bigint, :n) d
CROSS JOIN LATERAL (SELECT pg_temp.bench_seq(d, :every, :at) AS seq,
                           pg_temp.bench_seq(d - 1, :every, :at) AS parent_seq) q;
UPDATE conversations c
SET message_count = :n, last_seq = l.seq, last_message_at = pg_temp.bench_at(:base, l.seq),
    updated_at = GREATEST(c.updated_at, pg_temp.bench_at(:base, l.seq)),
    active_leaf_id = pg_temp.bench_id(:base, l.seq)
FROM (SELECT pg_temp.bench_seq(:n, :every, :at) AS seq) l
WHERE c.user_id = :'uid' AND c.id = :'cid';
COMMIT;
VACUUM (ANALYZE) messages;
ANALYZE conversations;
CHECKPOINT;
SQL
  } | psql_admin -v uid="$USER_ID" -v cid="$conv" -v n="$n" -v base="$base" \
    -v every="$BRANCH_EVERY" -v at="$BRANCH_AT" >/dev/null
  local state
  state=$(psql_admin -t -A -F ' ' -c "SELECT c.message_count, c.active_leaf_id = m.id AND m.seq = c.last_seq
      FROM conversations c JOIN messages m ON m.user_id = c.user_id AND m.conversation_id = c.id
      WHERE c.id = '$conv' AND m.seq = $(seq_of "$n") AND m.active")
  [[ "$state" == "$n t" ]] || die "seeding left message_count and leaf: '$state'"
  say "seeded in $((SECONDS - t0)) s"
}

# add_branches CONV N: side branches on the branch seed made: at every
# branch point two older versions (the positions just before it), not
# active.
add_branches() {
  local conv=$1 n=$2 base=${SEED_BASE[$1]}
  say "adding side branches to a conversation of $n messages"
  {
    seed_sql_functions
    cat <<'SQL'
BEGIN;
INSERT INTO messages (user_id, conversation_id, seq, id, parent_id, active,
                      role, content, status, model, metadata, created_at, updated_at)
SELECT :'uid'::uuid, :'cid'::uuid, v.seq, pg_temp.bench_id(:base, v.seq),
       pg_temp.bench_id(:base, pg_temp.bench_seq(v.d - 1, :every, :at)),
       false, CASE WHEN v.d % 2 = 1 THEN 'user' ELSE 'assistant' END,
       'Seeded message ' || v.d || ', older version ' || v.k || ': ' ||
         repeat('lorem ipsum dolor sit amet ', 4),
       'complete', CASE WHEN v.d % 2 = 1 THEN '' ELSE 'bench-model' END, '{}'::jsonb,
       pg_temp.bench_at(:base, v.seq), pg_temp.bench_at(:base, v.seq)
FROM (SELECT d, k, pg_temp.bench_seq(d, :every, :at) - 3 + k AS seq
        FROM generate_series(:at::bigint, :n, :every) d, generate_series(1, 2) k) v;
UPDATE conversations c
SET message_count = (SELECT count(*) FROM messages m
                      WHERE m.user_id = :'uid' AND m.conversation_id = :'cid')
WHERE c.user_id = :'uid' AND c.id = :'cid';
COMMIT;
VACUUM (ANALYZE) messages;
SQL
  } | psql_admin -v uid="$USER_ID" -v cid="$conv" -v n="$n" -v base="$base" \
    -v every="$BRANCH_EVERY" -v at="$BRANCH_AT" >/dev/null
}

# new_switch_pair CONV: a newer version X of the active message O that is
# $SWITCH_DEPTH messages above the leaf, made as a client would (a create
# under O's parent, which makes X the leaf, then the branch back through O;
# the service's own SQL functions, as the admin), so that switching to X
# and back moves $SWITCH_DEPTH + 1 messages off and on the active branch.
# Sets SWITCH_X and SWITCH_O.
new_switch_pair() {
  local ids
  ids=$(psql_admin -t -A -F ' ' -v uid="$USER_ID" -v cid="$1" -v depth="$SWITCH_DEPTH" <<'SQL'
SELECT set_config('app.user_id', :'uid', false) \gset
SELECT id AS o, parent_id AS p, role AS r, seq AS s FROM messages
 WHERE user_id = :'uid' AND conversation_id = :'cid' AND active
 ORDER BY seq DESC OFFSET :depth LIMIT 1 \gset
SELECT id AS x FROM append_message(:'uid', :'cid', gen_random_uuid(), :'p', :'r',
  'A newer version of the message at position ' || :s, 'complete', '', now(), '{}') \gset
SELECT activate_branch(:'uid', :'cid', :'o') IS NOT NULL AS back \gset
SELECT :'x', :'o', :'back';
SQL
  )
  local back
  read -r SWITCH_X SWITCH_O back <<<"$ids"
  [[ "$back" == t ]] || die "new_switch_pair printed '$ids'"
}

# switch_request CONV MESSAGE: an UpdateConversationRequest (ghz call data)
# that makes the active branch pass through MESSAGE.
switch_request() {
  printf '{"id":"%s","conversation":{"active_message_id":"%s"},"update_mask":{"paths":["active_message_id"]}}' "$1" "$2"
}

# active_state CONV: "<active messages> <active leaf>" of a conversation.
active_state() {
  psql_admin -t -A -F ' ' -c "SELECT (SELECT count(*) FROM messages
        WHERE user_id = '$USER_ID' AND conversation_id = '$1' AND active),
      (SELECT active_leaf_id FROM conversations WHERE user_id = '$USER_ID' AND id = '$1')"
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

ghz_load() { # PREFIX LABEL SERVICE.METHOD CONCURRENCY (data flags...)
  local prefix=$1 label=$2 call=$3 concurrency=$4 proto port
  shift 4
  case $call in
    MessageService.*) proto=chat/v1/message.proto port=$MSG_PORT ;;
    ConversationService.*) proto=chat/v1/conversation.proto port=$CONV_PORT ;;
    SearchService.*) proto=chat/v1/search.proto port=$MSG_PORT ;;
    *) die "ghz_load: no service for $call" ;;
  esac
  local common=(--insecure --proto "$proto" --import-paths "$ROOT/proto,/usr/include"
    --call "chat.v1.$call" --metadata "{\"authorization\":\"Bearer $TOKEN\"}"
    --concurrency "$concurrency" --connections "$GHZ_CONNECTIONS" --duration-stop wait
    --timeout 10s "$@")
  say "$label: gRPC (ghz)"
  if ((${LOAD_WARMUP:-$WARMUP} > 0)); then
    "$GHZ" "${common[@]}" --duration "${LOAD_WARMUP:-$WARMUP}s" --format json --output /dev/null \
      "127.0.0.1:$port" || die "ghz warm-up failed"
  fi
  local server=message
  [[ $call != ConversationService.* ]] || server=conversation
  perf_begin "$prefix"
  measure "$prefix" "$GHZ" "${common[@]}" --duration "${LOAD_DURATION:-$DURATION}s" --format json \
    --output "$WORK/out/$prefix.json" "127.0.0.1:$port"
  perf_end "$prefix" "$server"
  ((RC == 0)) || say "ghz exited with status $RC"
  "$BT" ghzsum -in "$WORK/out/$prefix.json" -results "$RESULTS" -prefix "$prefix"
}

# BENCH_PERF=1: perf_begin PREFIX starts `perf record -a` for the length of
# a measurement (and, for a REST one, a CPU profile of the gateway from its
# pprof listener); perf_end PREFIX SERVER... writes what they say, by
# process, PostgreSQL's by symbol, and, for each SERVER (a name in PIDS), by
# symbol, to
# $WORK/out/PREFIX.perf.txt (and PREFIX.pprof.txt).
PERF_PID=
PPROF_PID=
perf_begin() {
  [[ "${BENCH_PERF:-0}" == 1 ]] || return 0
  perf record -q -a -g -F 499 -o "$WORK/out/$1.perf" -- sleep "${LOAD_DURATION:-$DURATION}" >/dev/null 2>&1 &
  PERF_PID=$!
  if [[ $1 == *.rest ]]; then
    curl -s -o "$WORK/out/$1.pprof" --max-time $((${LOAD_DURATION:-$DURATION} + 30)) \
      "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=${LOAD_DURATION:-$DURATION}" &
    PPROF_PID=$!
  fi
}
perf_end() {
  [[ "${BENCH_PERF:-0}" == 1 ]] || return 0
  local prefix=$1 name
  shift
  wait "$PERF_PID" || true
  {
    echo "== the machine, by process"
    perf report -q -i "$WORK/out/$prefix.perf" --stdio --no-children --sort comm -g none \
      --percent-limit 1 2>/dev/null
    echo "== postgres (every backend), by symbol, % of its own samples"
    perf report -q -i "$WORK/out/$prefix.perf" --stdio --no-children --sort sym -g none \
      --comm postgres --percentage relative --percent-limit 0.5 2>/dev/null
    for name in "$@"; do
      echo "== chat-$name (pid ${PIDS[$name]}), by library, % of its own samples"
      perf report -q -i "$WORK/out/$prefix.perf" --stdio --no-children --sort dso -g none \
        --pid "${PIDS[$name]}" --percentage relative --percent-limit 1 2>/dev/null
      echo "== chat-$name, by symbol"
      perf report -q -i "$WORK/out/$prefix.perf" --stdio --no-children --sort dso,sym -g none \
        --pid "${PIDS[$name]}" --percentage relative --percent-limit 0.5 2>/dev/null
    done
  } | cut -c 1-160 >"$WORK/out/$prefix.perf.txt" || true
  say "perf profile of the machine during $prefix: $WORK/out/$prefix.perf.txt"
  if [[ -n "$PPROF_PID" ]]; then
    wait "$PPROF_PID" || true
    PPROF_PID=
    go tool pprof -top -nodecount 60 "$WORK/out/$prefix.pprof" >"$WORK/out/$prefix.pprof.txt" 2>&1 || true
    go tool pprof -top -cum -nodecount 60 "$WORK/out/$prefix.pprof" >>"$WORK/out/$prefix.pprof.txt" 2>&1 || true
    say "pprof profile of the gateway during $prefix: $WORK/out/$prefix.pprof.txt"
  fi
}

# grpc_load PREFIX LABEL SERVICE.METHOD REQUEST: the method in a closed loop
# with benchtool grpcload (answers not decoded, so that the client costs
# about what pgbench's and wrk's do), REQUEST in protobuf text format,
# encoded with protoc; same concurrency, warm-up and duration as the others.
grpc_load() {
  local prefix=$1 label=$2 call=$3 text=$4 proto port
  case $call in
    MessageService.*) proto=chat/v1/message.proto port=$MSG_PORT ;;
    ConversationService.*) proto=chat/v1/conversation.proto port=$CONV_PORT ;;
    *) die "grpc_load: no service for $call" ;;
  esac
  protoc -I "$ROOT/proto" -I /usr/include --encode="chat.v1.${call#*.}Request" "$proto" \
    <<<"$text" >"$WORK/out/$prefix.request" || die "protoc could not encode the request of $prefix"
  say "$label: gRPC (benchtool grpcload)"
  local server=message
  [[ $call != ConversationService.* ]] || server=conversation
  perf_begin "$prefix"
  measure "$prefix" "$BT" grpcload -addr "127.0.0.1:$port" -method "/chat.v1.${call%%.*}/${call#*.}" \
    -request "$WORK/out/$prefix.request" -token-file "$WORK/token" -concurrency "$CONCURRENCY" \
    -connections "$GHZ_CONNECTIONS" -warmup "${WARMUP}s" -duration "${DURATION}s" -min-bytes 1000 \
    -results "$RESULTS" -prefix "$prefix"
  perf_end "$prefix" "$server"
  ((RC == 0)) || die "benchtool grpcload exited with status $RC"
}

# h2_load PREFIX LABEL SERVICE.METHOD REQUEST: the method with h2load
# (nghttp2's HTTP/2 load tool, in C), the calls of grpc_load on one HTTP/2
# connection with CONCURRENCY streams at once: a client that costs per call
# what wrk and pgbench do (grpcload, with grpc-go, costs three times as
# much, and that CPU is the machine's). h2load sees HTTP statuses only: the
# gRPC status of every call, warm-up included, is counted from the
# service's access log, and the answers must average -min-bytes.
h2_load() {
  local prefix=$1 label=$2 call=$3 text=$4 proto port server=message
  case $call in
    MessageService.*) proto=chat/v1/message.proto port=$MSG_PORT ;;
    ConversationService.*) proto=chat/v1/conversation.proto port=$CONV_PORT server=conversation ;;
    *) die "h2_load: no service for $call" ;;
  esac
  protoc -I "$ROOT/proto" -I /usr/include --encode="chat.v1.${call#*.}Request" "$proto" \
    <<<"$text" >"$WORK/out/$prefix.request" || die "protoc could not encode the request of $prefix"
  "$BT" grpcbody -in "$WORK/out/$prefix.request" -out "$WORK/out/$prefix.body"
  say "$label: gRPC (h2load)"
  local log=$WORK/logs/$server.log logged method=/chat.v1.${call%%.*}/${call#*.}
  logged=$(stat -c %s "$log")
  perf_begin "$prefix"
  local warmup=()
  ((${LOAD_WARMUP:-$WARMUP} == 0)) || warmup=(--warm-up-time="${LOAD_WARMUP:-$WARMUP}s")
  measure "$prefix" h2load -c "$GHZ_CONNECTIONS" -m "$CONCURRENCY" -D "${LOAD_DURATION:-$DURATION}" "${warmup[@]}" \
    --log-file="$WORK/out/$prefix.h2log" -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer $TOKEN" -d "$WORK/out/$prefix.body" "http://127.0.0.1:$port$method" \
    >"$WORK/out/$prefix.txt" 2>&1
  perf_end "$prefix" "$server"
  # Streams h2load cuts when its time is up (at most one a stream slot)
  # end CANCELLED, or UNIMPLEMENTED when no request had arrived yet: not
  # failures. More of them than slots are.
  local calls=$WORK/out/$prefix.calls failed cut
  tail -c +$((logged + 1)) "$log" | grep -F "\"method\":\"$method\"" >"$calls" || true
  failed=$(grep -v '"code":"0"' "$calls" | grep -Evc '"code":"(1|12)"' || true)
  cut=$(grep -Ec '"code":"(1|12)"' "$calls" || true)
  ((cut <= CONCURRENCY * GHZ_CONNECTIONS)) || failed=$((failed + cut))
  "$BT" h2sum -stdout "$WORK/out/$prefix.txt" -log "$WORK/out/$prefix.h2log" -grpc-errors "$failed" \
    -min-bytes 1000 -rc "$RC" -results "$RESULTS" -prefix "$prefix"
  ((RC == 0)) || die "h2load exited with status $RC: $(tail -n 5 "$WORK/out/$prefix.txt")"
}

wrk_load() { # PREFIX LABEL MODE URL (wrk flags...)
  local prefix=$1 label=$2 mode=$3 url=$4
  shift 4
  say "$label: REST (wrk)"
  local env=(BENCH_MODE="$mode" BENCH_CONVS="$WORK/convs" BENCH_TOKEN="$TOKEN" BENCH_CONTENT="$CONTENT")
  if ((${LOAD_WARMUP:-$WARMUP} > 0)); then
    env "${env[@]}" BENCH_OUT=/dev/null wrk -t 2 -c "$CONCURRENCY" -d "${LOAD_WARMUP:-$WARMUP}s" \
      -s "$ROOT/bench/wrk/bench.lua" "$@" "$url" >/dev/null || die "wrk warm-up failed"
  fi
  perf_begin "$prefix"
  measure "$prefix" env "${env[@]}" BENCH_OUT="$WORK/out/$prefix.wrk" wrk -t 2 -c "$CONCURRENCY" \
    -d "${LOAD_DURATION:-$DURATION}s" --timeout 10s -s "$ROOT/bench/wrk/bench.lua" "$@" "$url" >"$WORK/out/$prefix.txt"
  local server=message
  [[ $prefix != convlist.* ]] || server=conversation
  perf_end "$prefix" gateway "$server"
  ((RC == 0)) || die "wrk exited with status $RC"
  "$BT" wrksum -in "$WORK/out/$prefix.wrk" -results "$RESULTS" -prefix "$prefix"
}

pgbench_load() { # PREFIX LABEL SCRIPT ROLE CONCURRENCY (pgbench -D flags...)
  local prefix=$1 label=$2 script=$3 role=$4 concurrency=$5 threads=2
  shift 5
  ((concurrency >= threads)) || threads=$concurrency
  say "$label: the same SQL in pgbench"
  local common=(-h 127.0.0.1 -p "$PG_PORT" -U "$role" -n -M prepared
    -c "$concurrency" -j "$threads" -f "$script" -D user="$USER_ID" "$@")
  if ((${LOAD_WARMUP:-$WARMUP} > 0)); then
    PGPASSWORD=$ROLE_PASSWORD "$PG_BIN/pgbench" "${common[@]}" -T "${LOAD_WARMUP:-$WARMUP}" "$DATABASE" \
      >"$WORK/out/$prefix.warmup" 2>&1 || die "pgbench warm-up failed: $(tail -n 5 "$WORK/out/$prefix.warmup")"
  fi
  perf_begin "$prefix"
  PGPASSWORD=$ROLE_PASSWORD measure "$prefix" "$PG_BIN/pgbench" "${common[@]}" -T "${LOAD_DURATION:-$DURATION}" \
    --log --log-prefix="$WORK/out/$prefix.log" "$DATABASE" >"$WORK/out/$prefix.txt" 2>&1
  perf_end "$prefix"
  "$BT" pgsum -stdout "$WORK/out/$prefix.txt" -logs "$WORK/out/$prefix.log" -rc "$RC" \
    -results "$RESULTS" -prefix "$prefix"
}

# Steps 2 to 4: the seeded conversations, appends, listings and branch
# switches.
reads_and_writes() {
  seed "$BIG_CONV" "$MESSAGES"
  seed "$SMALL_CONV" "$SMALL_MESSAGES"

  # Appends: conversations picked at random among $APPEND_CONVS by every tool.
  local src=$ROOT/services/message/message_storage.cc
  local conv_src=$ROOT/services/conversation/conversation_storage.cc
  "$BT" pgscript -src "$src" -kind append -convs "$WORK/convs" -out "$WORK/append.sql"
  "$BT" pgscript -src "$src" -kind list -out "$WORK/list.sql"
  "$BT" pgscript -src "$conv_src" -kind switch -out "$WORK/switch.sql"
  "$BT" ghzdata -convs "$WORK/convs" -content "$CONTENT" -out "$WORK/append.json"
  local conv_vars=() i=0 id
  while read -r id; do
    conv_vars+=(-D "c$i=$id")
    i=$((i + 1))
  done <"$WORK/convs"
  local append_vars=(-D role=user -D content="$CONTENT" -D status=complete -D meta='{}'
    -D ts="$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')")
  pgbench_load append.pg "append" "$WORK/append.sql" chat_message "$CONCURRENCY" \
    "${conv_vars[@]}" "${append_vars[@]}"
  ghz_load append.grpc "append" MessageService.CreateMessage "$CONCURRENCY" \
    --data-file "$WORK/append.json"
  wrk_load append.rest "append" append "$BASE"

  # Every append that answered OK is stored once, and the counts match.
  psql_admin -t -A -F ' ' -c "SELECT
      (SELECT count(*) FROM messages WHERE conversation_id NOT IN ('$BIG_CONV', '$SMALL_CONV')),
      (SELECT sum(message_count) FROM conversations WHERE id NOT IN ('$BIG_CONV', '$SMALL_CONV'))" |
    { read -r stored counted && printf 'append.check.stored=%s\nappend.check.counted=%s\n' "$stored" "$counted"; } >>"$RESULTS"

  # The appends left about 30,000 new messages and as many dead versions of
  # the conversations they went to (every append updates its conversation's
  # count, time and leaf). Autovacuum would come for both during the
  # listings below, at a time of its choosing, and its CPU would fall on
  # whichever row ran then (a tree's deep page at 49% of pgbench once, the
  # conversations' first page at 24%): vacuumed now, as autovacuum would
  # have by then on a quieter table.
  psql_admin -c "VACUUM (ANALYZE) messages, conversations" >/dev/null

  # Listings of the big conversation: the first page and one deep in it,
  # first while it is one branch, then (tlist) once it has side branches.
  local deep_seq deep_token list_url="$BASE/v1/conversations/$BIG_CONV/messages?page_size=$PAGE_SIZE"
  deep_seq=$(seq_of "$DEEP_SEQ")
  deep_token=$("$BT" token -conv "$BIG_CONV" -seq "$deep_seq")
  local first_data="{\"conversation_id\":\"$BIG_CONV\",\"page_size\":$PAGE_SIZE}"
  # The deep token must work and land where it says.
  local page
  page=$(curl -sf "$list_url&page_token=$deep_token" -H "Authorization: Bearer $TOKEN") ||
    die "the deep page token was refused"
  grep -q "Seeded message $((DEEP_SEQ + 1)):" <<<"$page" || die "the deep page does not start after message $DEEP_SEQ"
  local list_vars=(-D conv="$BIG_CONV" -D lim=$((PAGE_SIZE + 1)))
  local p
  for p in list tlist; do
    if [[ $p == tlist ]]; then
      add_branches "$BIG_CONV" "$MESSAGES"
      add_branches "$SMALL_CONV" "$SMALL_MESSAGES"
      # Both pages now hold a message with two older versions, and only
      # messages of the active branch.
      local check
      for check in "" "&page_token=$deep_token"; do
        page=$(curl -sf "$list_url$check" -H "Authorization: Bearer $TOKEN") || die "listing the tree failed"
        grep -Eq '"sibling_count": ?3[,}]' <<<"$page" || die "a page of the tree shows no message with its versions: $page"
        ! grep -Eq '(older|newer) version' <<<"$page" || die "a page of the active branch holds an inactive version"
      done
    fi
    ROUND_PG=("$WORK/list.sql" chat_message "$CONCURRENCY" "${list_vars[@]}" -D after=0)
    ROUND_H2=(MessageService.ListMessages "conversation_id: \"$BIG_CONV\" page_size: $PAGE_SIZE")
    ROUND_REST=(get "$list_url" -H "Authorization: Bearer $TOKEN")
    in_rounds "${p}1" "$p, first page"
    grpc_load "${p}1.grpc" "$p, first page" "${ROUND_H2[@]}"
    # The same load with ghz, which decodes every answer: what the load
    # tool's own cost does to the figure.
    [[ $p != list ]] || ghz_load "${p}1.ghz" "$p, first page" MessageService.ListMessages "$CONCURRENCY" \
      --data "$first_data"
    ROUND_PG=("$WORK/list.sql" chat_message "$CONCURRENCY" "${list_vars[@]}" -D after="$deep_seq")
    ROUND_H2=(MessageService.ListMessages
      "conversation_id: \"$BIG_CONV\" page_size: $PAGE_SIZE page_token: \"$deep_token\"")
    ROUND_REST=(get "$list_url&page_token=$deep_token" -H "Authorization: Bearer $TOKEN")
    in_rounds "${p}deep" "$p, deep page"
    grpc_load "${p}deep.grpc" "$p, deep page" "${ROUND_H2[@]}"
  done

  conversation_lists
  [[ ${BENCH_ONLY:-} != reads ]] || return 0

  # Switching the active branch $SWITCH_DEPTH messages above the leaf and
  # back, against appends to the same conversation, in the big and the small
  # one. The switches alternate between a newer version X and the message O
  # it is a version of: ghz sends its call data round-robin, which
  # alternates at concurrency 1; pgbench alternates by itself (pgscript).
  # Each of the eight measurements runs in $SWITCH_ROUNDS rounds of
  # $SWITCH_ROUND_DURATION s, the rounds of all eight taken in turn, so that
  # a change in what the machine's other tenants do falls on all of them
  # alike. Every round makes its own X, and ends by deleting what its
  # appends added (the leaf back where the appends found it), so that the
  # small conversation stays small and each round switches as far from the
  # leaf as the first.
  local round size conv before after count leaf created last_seq
  local -A pg_rc=()
  for ((round = 1; round <= SWITCH_ROUNDS; round++)); do
    for size in big small; do
      if [[ $size == big ]]; then conv=$BIG_CONV; else conv=$SMALL_CONV; fi
      new_switch_pair "$conv"
      before=$(active_state "$conv")
      printf '[%s,\n%s]\n' "$(switch_request "$conv" "$SWITCH_X")" "$(switch_request "$conv" "$SWITCH_O")" \
        >"$WORK/switch.$size.json"
      # The warm-up of each measurement in its first round only.
      ((round == 1)) && LOAD_WARMUP=$WARMUP || LOAD_WARMUP=0
      LOAD_DURATION=$SWITCH_ROUND_DURATION
      ghz_load "switch.$size.grpc.r$round" "switch, $size conversation, round $round" \
        ConversationService.UpdateConversation "$SWITCH_CONCURRENCY" --data-file "$WORK/switch.$size.json"
      pgbench_load "switch.$size.pg.r$round" "switch, $size conversation, round $round" "$WORK/switch.sql" \
        chat_conversation "$SWITCH_CONCURRENCY" -D conv="$conv" -D x="$SWITCH_X" -D o="$SWITCH_O" \
        -D flip=0 -D ts="$(date -u '+%Y-%m-%d %H:%M:%S.%6N+00')"
      ((RC <= ${pg_rc[switch.$size]:-0})) || pg_rc[switch.$size]=$RC
      # Whichever switch came last, the active branch is O's (as before) or
      # X's: $SWITCH_DEPTH messages fewer, ending at X.
      after=$(active_state "$conv")
      count=${before% *} leaf=${before#* }
      [[ "$after" == "$count $leaf" || "$after" == "$((count - SWITCH_DEPTH)) $SWITCH_X" ]] ||
        die "after the switches the active branch is '$after' (before: '$before', X $SWITCH_X)"
      printf 'switch.%s.check=%s\n' "$size" "$after" >>"$RESULTS"

      before=$after
      last_seq=$(psql_admin -t -A -c "SELECT last_seq FROM conversations WHERE user_id = '$USER_ID' AND id = '$conv'")
      echo "$conv" >"$WORK/conv.$size"
      "$BT" ghzdata -convs "$WORK/conv.$size" -content "$CONTENT" -out "$WORK/create.$size.json"
      "$BT" pgscript -src "$src" -kind append -convs "$WORK/conv.$size" -out "$WORK/create.$size.sql"
      ghz_load "create.$size.grpc.r$round" "append, $size conversation, round $round" \
        MessageService.CreateMessage "$SWITCH_CONCURRENCY" --data-file "$WORK/create.$size.json"
      pgbench_load "create.$size.pg.r$round" "append, $size conversation, round $round" \
        "$WORK/create.$size.sql" chat_message "$SWITCH_CONCURRENCY" -D c0="$conv" "${append_vars[@]}"
      ((RC <= ${pg_rc[create.$size]:-0})) || pg_rc[create.$size]=$RC
      unset LOAD_WARMUP LOAD_DURATION
      # Every append went under the active leaf: the branch grew by as many.
      after=$(active_state "$conv")
      created=$(psql_admin -t -A -c "SELECT count(*) FROM messages WHERE user_id = '$USER_ID'
          AND conversation_id = '$conv' AND seq > $last_seq")
      [[ "${after% *}" == "$((${before% *} + created))" ]] ||
        die "after $created appends the active branch is '$after' (before: '$before')"
      printf 'switch.%s.appended_round%s=%s\n' "$size" "$round" "$created" >>"$RESULTS"
      psql_admin -c "BEGIN;
        WITH d AS (DELETE FROM messages WHERE user_id = '$USER_ID' AND conversation_id = '$conv'
                     AND seq > $last_seq RETURNING 1)
        UPDATE conversations SET message_count = message_count - (SELECT count(*) FROM d),
          active_leaf_id = '${before#* }' WHERE user_id = '$USER_ID' AND id = '$conv';
        COMMIT;" >/dev/null
      [[ "$(active_state "$conv")" == "$before" ]] || die "the appends of round $round were not undone"
    done
    # The index entries of the deleted messages lie in the range that the
    # next round's switches scan (every active message after the fork):
    # gone, as autovacuum would make them.
    psql_admin -c "VACUUM (INDEX_CLEANUP ON) messages" >/dev/null
  done
  # The rounds of each measurement, summed up.
  local m ins logs outs prefixes
  for size in big small; do
    for m in switch create; do
      ins= prefixes=
      for ((round = 1; round <= SWITCH_ROUNDS; round++)); do
        ins+=${ins:+,}$WORK/out/$m.$size.grpc.r$round.json
        prefixes+=${prefixes:+,}$m.$size.grpc.r$round
      done
      "$BT" ghzsum -in "$ins" -results "$RESULTS" -prefix "$m.$size.grpc"
      "$BT" cpumerge -results "$RESULTS" -prefix "$m.$size.grpc" -from "$prefixes"
      logs= outs= prefixes=
      for ((round = 1; round <= SWITCH_ROUNDS; round++)); do
        logs+=${logs:+,}$WORK/out/$m.$size.pg.r$round.log
        outs+=${outs:+,}$WORK/out/$m.$size.pg.r$round.txt
        prefixes+=${prefixes:+,}$m.$size.pg.r$round
      done
      "$BT" pgsum -stdout "$outs" -logs "$logs" -rc "${pg_rc[$m.$size]:-0}" -results "$RESULTS" \
        -prefix "$m.$size.pg"
      "$BT" cpumerge -results "$RESULTS" -prefix "$m.$size.pg" -from "$prefixes"
    done
  done
}

# The first page of the user's conversations (issue 13): the $APPEND_CONVS
# conversations of the appends and the two seeded ones, none archived.
conversation_lists() {
  local conv_src=$ROOT/services/conversation/conversation_storage.cc
  "$BT" pgscript -src "$conv_src" -kind convlist -out "$WORK/convlist.sql"
  # The page must be full: as many conversations as asked for.
  local page count
  page=$(curl -sf "$BASE/v1/conversations?page_size=$PAGE_SIZE" -H "Authorization: Bearer $TOKEN") ||
    die "listing the conversations failed"
  count=$(grep -o '"message_count"' <<<"$page" | wc -l)
  ((count == PAGE_SIZE)) || die "the first page of conversations holds $count, not $PAGE_SIZE"
  ROUND_PG=("$WORK/convlist.sql" chat_conversation "$CONCURRENCY" -D lim=$((PAGE_SIZE + 1)))
  ROUND_H2=(ConversationService.ListConversations "page_size: $PAGE_SIZE")
  ROUND_REST=(get "$BASE/v1/conversations?page_size=$PAGE_SIZE" -H "Authorization: Bearer $TOKEN")
  in_rounds convlist "conversations, first page"
  grpc_load convlist.grpc "conversations, first page" "${ROUND_H2[@]}"
}

# in_rounds PREFIX LABEL: a listing in pgbench, h2load and wrk (ROUND_PG,
# ROUND_H2 and ROUND_REST: the arguments of pgbench_load, h2_load and
# wrk_load after the prefix and label), $LIST_ROUNDS rounds of $DURATION s
# each taken in turn (the warm-ups in the first round only), recorded as
# PREFIX.pg, PREFIX.h2 and PREFIX.rest. Its ratios compare these three:
# taken in turn, a change in what the machine's other tenants do falls on
# all of them alike.
ROUND_PG=() ROUND_H2=() ROUND_REST=()
in_rounds() {
  local prefix=$1 label=$2 round tool from
  for ((round = 1; round <= LIST_ROUNDS; round++)); do
    ((round == 1)) && LOAD_WARMUP=$WARMUP || LOAD_WARMUP=0
    pgbench_load "$prefix.pg.r$round" "$label, round $round" "${ROUND_PG[@]}"
    h2_load "$prefix.h2.r$round" "$label, round $round" "${ROUND_H2[@]}"
    wrk_load "$prefix.rest.r$round" "$label, round $round" "${ROUND_REST[@]}"
  done
  unset LOAD_WARMUP
  for tool in pg h2 rest; do
    from=
    for ((round = 1; round <= LIST_ROUNDS; round++)); do
      from+=${from:+,}$prefix.$tool.r$round
    done
    "$BT" roundsum -results "$RESULTS" -prefix "$prefix.$tool" -from "$from"
  done
}

# Export and import: transfer_step (issue 12).
# shellcheck source=bench/transfer.sh
source "$ROOT/bench/transfer.sh"
# Search (issue 12): search_step and its table.
# shellcheck source=bench/search.sh
source "$ROOT/bench/search.sh"

# print_table TABLE: the run succeeded; the table to stdout and $BENCH_OUT.
print_table() {
  FAILED=0
  [[ -z "${BENCH_OUT:-}" ]] || printf '%s\n' "$1" >"$BENCH_OUT"
  printf '\n%s\n' "$1"
}

main() {
  install_tools
  for binary in services/auth/chat-auth services/conversation/chat-conversation \
    services/message/chat-message bin/chat-gateway deploy/migrate/chat-migrate; do
    [[ -x "$BUILD_DIR/$binary" ]] || die "$BUILD_DIR/$binary is missing; run \`make build\` (or set BUILD_DIR)"
  done

  # Every reply in progress is a connection (client, gateway, message
  # service, provider): as many open files as allowed, for every process
  # started from here on.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || say "could not raise ulimit -n to $(ulimit -Hn); it stays $(ulimit -n)"
  local nofile
  nofile=$(ulimit -n)
  [[ "$nofile" == unlimited ]] || ((nofile >= STREAMS + 1000)) ||
    say "warning: ulimit -n is $nofile; $STREAMS replies in progress may need more"

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
    echo "config.small_messages=$SMALL_MESSAGES"
    echo "config.branch_every=$BRANCH_EVERY"
    echo "config.switch_depth=$SWITCH_DEPTH"
    echo "config.switch_concurrency=$SWITCH_CONCURRENCY"
    echo "config.list_rounds=$LIST_ROUNDS"
    echo "config.switch_rounds=$SWITCH_ROUNDS"
    echo "config.switch_round_duration=$SWITCH_ROUND_DURATION"
  } >"$RESULTS"

  start_stack
  "$BT" setup -base "$BASE" -convs "$APPEND_CONVS" -out "$WORK"
  TOKEN=$(<"$WORK/token")
  USER_ID=$(<"$WORK/user_id")
  BIG_CONV=$(<"$WORK/big_conv")
  SMALL_CONV=$(<"$WORK/small_conv")
  if [[ ${BENCH_ONLY:-} == transfer ]]; then
    say "BENCH_ONLY=transfer: only the export and import step"
    transfer_step
    print_table "$("$BT" transferreport -results "$RESULTS")"
    return
  fi
  if [[ ${BENCH_ONLY:-} == reads ]]; then
    say "BENCH_ONLY=reads: only the appends and the listings"
    echo "config.only=reads" >>"$RESULTS"
    reads_and_writes
    print_table "$("$BT" report -results "$RESULTS")"
    return
  fi
  if [[ ${BENCH_ONLY:-} == chat ]]; then
    say "BENCH_ONLY=chat: only the chat step"
  elif [[ ${BENCH_ONLY:-} == search ]]; then
    say "BENCH_ONLY=search: only the search step"
    search_step
    print_table "$SEARCH_TABLE"
    return 0
  else
    reads_and_writes
    search_step
  fi

  # Chat: the message service again, now against the fake provider. Its
  # per-user cap admits every held reply of the step that holds the most
  # (and a few more); held replies wait while the others open.
  say "restarting the message service with PROVIDER=openai and a fake provider ($PROVIDER_PROTO)"
  local provider_url=http://127.0.0.1:$PROVIDER_PORT/v1 provider_env=() probe=()
  case $PROVIDER_PROTO in
    h2)
      # HTTP/2 over TLS, as hosted providers speak it, with a certificate
      # made for this run: the message service trusts it alone
      # (PROVIDER_CA_FILE), and so do benchtool's own requests to the
      # provider (Go reads SSL_CERT_FILE).
      provider_url=https://127.0.0.1:$PROVIDER_PORT/v1
      provider_env=(PROVIDER_CA_FILE="$WORK/provider-cert.pem")
      export SSL_CERT_FILE=$WORK/provider-cert.pem
      probe=(--cacert "$SSL_CERT_FILE")
      ;;
    h1tls)
      # What the message service did with an https provider before HTTP/2:
      # HTTP/1.1 over TLS, a connection (and TLS session) per reply.
      provider_url=https://127.0.0.1:$PROVIDER_PORT/v1
      provider_env=(PROVIDER_CA_FILE="$WORK/provider-cert.pem" PROVIDER_HTTP_VERSION=1.1)
      export SSL_CERT_FILE=$WORK/provider-cert.pem
      probe=(--cacert "$SSL_CERT_FILE")
      ;;
    http1) ;;
    *) die "BENCH_PROVIDER_PROTO=$PROVIDER_PROTO: use h2, h1tls or http1" ;;
  esac
  echo "config.provider_proto=$PROVIDER_PROTO" >>"$RESULTS"
  "$BT" provider -listen "127.0.0.1:$PROVIDER_PORT" -first-delay 50ms -interval 10ms -chunks 5 \
    -proto "$PROVIDER_PROTO" -cert-out "$WORK/provider-cert.pem" \
    -lifetime 2h >>"$WORK/logs/provider.log" 2>&1 &
  PROVIDER_PID=$!
  local deadline=$((SECONDS + 30))
  until curl -sf -o /dev/null --max-time 2 "${probe[@]}" "${provider_url%/v1}/stats"; do
    ((SECONDS < deadline)) || die "the fake provider did not answer within 30 s (see $WORK/logs/provider.log)"
    kill -0 "$PROVIDER_PID" 2>/dev/null || die "the fake provider exited: $(tail -n 3 "$WORK/logs/provider.log")"
    sleep 0.2
  done
  stop message
  local held=$STREAMS
  ((TTFB_BACKGROUND <= held)) || held=$TTFB_BACKGROUND
  start_message PROVIDER=openai PROVIDER_BASE_URL="$provider_url" "${provider_env[@]}" \
    PROVIDER_API_KEY=bench-key PROVIDER_MODEL=bench-model \
    PROVIDER_TIMEOUT=30m PROVIDER_IDLE_TIMEOUT=30m MAX_STREAMS_PER_USER=$((held + 10))
  wait_ready
  say "chat: time to first byte, $TTFB_REQUESTS replies each way"
  "$BT" ttfb -base "$BASE" -token-file "$WORK/token" -provider "$provider_url" \
    -n "$TTFB_REQUESTS" -results "$RESULTS" >&2
  check_alive
  # The memory of many replies in progress next, so that its idle figures
  # follow only the sequential replies above.
  say "chat: $STREAMS replies in progress at once"
  "$BT" streams -base "$BASE" -token-file "$WORK/token" -provider "$provider_url" \
    -n "$STREAMS" -results "$RESULTS" \
    -pids "message=${PIDS[message]},gateway=${PIDS[gateway]},auth=${PIDS[auth]},conversation=${PIDS[conversation]}" >&2
  check_alive
  if ((TTFB_BACKGROUND > 0)); then
    say "chat: time to first byte again, $TTFB_BACKGROUND held replies in progress meanwhile"
    "$BT" ttfb -base "$BASE" -token-file "$WORK/token" -provider "$provider_url" \
      -n "$TTFB_REQUESTS" -background "$TTFB_BACKGROUND" -prefix ttfb_busy -results "$RESULTS" \
      ${BENCH_TTFB_SAME_USER:+-background-same-user} >&2
    check_alive
  fi
  if ((RESUME_REQUESTS > 0)); then
    say "chat: resuming a reply in progress from offset 0, $RESUME_REQUESTS times"
    "$BT" resume -base "$BASE" -token-file "$WORK/token" -provider "$provider_url" \
      -n "$RESUME_REQUESTS" -results "$RESULTS" >&2
    check_alive
  fi

  if [[ -z ${BENCH_ONLY:-} ]]; then
    say "export and import"
    transfer_step
  fi

  FAILED=0
  local table
  table=$("$BT" report -results "$RESULTS")
  [[ -n ${BENCH_ONLY:-} ]] || table+=$'\n\n'$("$BT" transferreport -results "$RESULTS")
  [[ -z "${BENCH_OUT:-}" ]] || printf '%s\n' "$table" >"$BENCH_OUT"
  printf '\n%s\n' "$table"
  if [[ -n "$SEARCH_TABLE" ]]; then
    [[ -z "${BENCH_OUT:-}" ]] || printf '\n%s\n' "$SEARCH_TABLE" >>"$BENCH_OUT"
    printf '\n%s\n' "$SEARCH_TABLE"
  fi
}

main "$@"
