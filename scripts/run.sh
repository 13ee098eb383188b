#!/usr/bin/env bash
# `make run` (README.md): the whole product on this machine.
#
# Without DATABASE_URL, a private PostgreSQL 15 in .data/postgres (port
# $PGPORT_DEV, default 54329, kept between runs) with database `chat`. With
# DATABASE_URL set, that URL is the admin URL for the migrations, and each
# service gets the same URL with its own role and password.
#
# Generated once and kept in .data/secrets/ (mode 0600): the three service
# roles' database passwords and the RSA-2048 key that signs access tokens.
# Then: chat-migrate, the three gRPC services (127.0.0.1:50051 auth, :50052
# conversation, :50053 message) and the gateway (http://127.0.0.1:8080).
# Logs go to the terminal, each line prefixed with its process's name, and to
# .data/logs/<name>.log (the previous run's in <name>.log.1). Ctrl-C (or SIGTERM) stops the gateway, then the
# services, then PostgreSQL; the data stays.
#
# REPLICAS=n (1 to 9, default 1) starts n processes of each service, replica
# i listening 10 * (i - 1) above the first: auth 50051, 50061, ...;
# conversation 50052, 50062, ...; message 50053, 50063, .... With n > 1 they
# are named <service>-<i> (logs in .data/logs/<service>-<i>.log); the gateway
# gets each service's list (AUTH_ADDR=127.0.0.1:50051,127.0.0.1:50061, ...)
# and balances its calls over it round-robin; the conversation and message
# replicas fetch the token keys from the first auth replica that answers
# (AUTH_ADDR=ipv4:127.0.0.1:50051,127.0.0.1:50061,...). The replicas of a
# service share its database URL and nothing else.
#
# Environment: DATABASE_URL, PGPORT_DEV, BUILD_DIR (default build), REPLICAS, READY_TIMEOUT (seconds to wait for
# /readyz, default 90), STOP_TIMEOUT (seconds a process may take to drain
# after SIGTERM before it is killed, default 40).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

BUILD=$(realpath -m "${BUILD_DIR:-build}")
readonly BUILD
readonly DATA=$ROOT/.data
readonly SECRETS=$DATA/secrets
readonly LOGS=$DATA/logs
readonly PG_DIR=$DATA/postgres
readonly PG_PORT=${PGPORT_DEV:-54329}
readonly READY_TIMEOUT=${READY_TIMEOUT:-90}
readonly STOP_TIMEOUT=${STOP_TIMEOUT:-40}
readonly REPLICAS=${REPLICAS:-1}

readonly AUTH_PORT=50051
readonly CONVERSATION_PORT=50052
readonly MESSAGE_PORT=50053
readonly GATEWAY_ADDR=127.0.0.1:8080
readonly BASE_URL=http://$GATEWAY_ADDR

# Per service, its replicas' process names and gRPC addresses (set_replicas).
AUTH_NAMES=() CONVERSATION_NAMES=() MESSAGE_NAMES=()
AUTH_ADDRS=() CONVERSATION_ADDRS=() MESSAGE_ADDRS=()
# Width of the process-name column of the terminal copy.
NAME_WIDTH=12

declare -A PIDS=()      # process name -> pid, in start order in NAMES
NAMES=()
DISPLAY_PIDS=()         # the tail processes that copy logs to the terminal
STARTED_POSTGRES=0
STOPPING=0

say() { printf '%-*s| %s\n' "$NAME_WIDTH" run "$*"; }

die() {
  say "error: $*" >&2
  exit 1
}

# --- secrets ---------------------------------------------------------------

new_secret() {
  local file=$1
  [[ -s "$file" ]] && return 0
  (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$file.new" &&
    mv "$file.new" "$file")
}

ensure_secrets() {
  mkdir -p "$SECRETS"
  chmod 0700 "$SECRETS"
  local role
  for role in auth conversation message; do
    new_secret "$SECRETS/chat_${role}_db_password"
  done
  if [[ ! -s "$SECRETS/jwt_signing_key.pem" ]]; then
    say "generating the access-token signing key (RSA-2048)"
    (umask 077 &&
      openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$SECRETS/jwt_signing_key.pem.new" 2>/dev/null &&
      mv "$SECRETS/jwt_signing_key.pem.new" "$SECRETS/jwt_signing_key.pem") ||
      die "openssl could not generate the signing key"
  fi
  chmod 0600 "$SECRETS"/*
}

# --- database URLs -----------------------------------------------------------

# `url` with its user and password replaced: a postgres:// or postgresql://
# URL keeps everything but its user info; a key=value string gets the two
# keywords appended (libpq lets the last one win). Our passwords are hex, so
# they need no escaping in either form.
role_url() {
  local url=$1 user=$2 password=$3
  if [[ "$url" =~ ^(postgres(ql)?://)([^/?#]*)(.*)$ ]]; then
    local scheme=${BASH_REMATCH[1]} authority=${BASH_REMATCH[3]}
    local rest=${BASH_REMATCH[4]}
    printf '%s%s:%s@%s%s\n' "$scheme" "$user" "$password" \
      "${authority##*@}" "$rest"
  else
    printf "%s user=%s password=%s\n" "$url" "$user" "$password"
  fi
}

# --- processes ---------------------------------------------------------------

# Copies a log file to the terminal as it grows, prefixed with `name`.
display_log() {
  local name=$1 file=$2
  # Both ignore SIGINT: a Ctrl-C must not cut off the shutdown messages.
  (trap '' INT && exec tail --pid=$$ -n +1 -F "$file" 2>/dev/null) \
    > >(trap '' INT && exec sed -u "s/^/$(printf '%-*s' "$NAME_WIDTH" "$name")| /") &
  DISPLAY_PIDS+=("$!")
}

# start NAME BINARY [VAR=value...]: runs BINARY in a session of its own (so a
# Ctrl-C reaches only this script, which then stops everything in order) with
# the given environment, logging to .data/logs/NAME.log.
start() {
  local name=$1 binary=$2
  shift 2
  local log=$LOGS/$name.log
  # One run per file; the previous run's stays as NAME.log.1.
  [[ -s "$log" ]] && mv "$log" "$log.1"
  (umask 077 && : >"$log")
  display_log "$name" "$log"
  # Secrets reach a service as files named in its environment, never as
  # values on a command line (which `ps` shows to every user).
  env -u DATABASE_URL -u DATABASE_URL_FILE -u AUTH_SIGNING_KEY \
    -u CHAT_AUTH_DB_PASSWORD -u CHAT_CONVERSATION_DB_PASSWORD \
    -u CHAT_MESSAGE_DB_PASSWORD "$@" \
    setsid "$binary" </dev/null >>"$log" 2>&1 &
  PIDS[$name]=$!
  NAMES+=("$name")
}

alive() { kill -0 "${PIDS[$1]}" 2>/dev/null; }

show_log_tail() {
  local name=$1
  echo "---- last lines of $LOGS/$name.log ----" >&2
  tail -n 25 "$LOGS/$name.log" >&2 || true
}

# Sends SIGTERM to the named processes and waits for them, killing any that
# take longer than STOP_TIMEOUT.
stop_processes() {
  local name deadline
  for name in "$@"; do
    if [[ -n "${PIDS[$name]:-}" ]]; then
      kill -TERM "${PIDS[$name]}" 2>/dev/null || true
    fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for name in "$@"; do
    [[ -n "${PIDS[$name]:-}" ]] || continue
    while alive "$name" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$name"; then
      say "$name did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -KILL "${PIDS[$name]}" 2>/dev/null || true
    fi
    wait "${PIDS[$name]}" 2>/dev/null || true
    unset "PIDS[$name]"
  done
}

cleanup() {
  local status=$?
  ((STOPPING)) && return
  STOPPING=1
  trap '' INT TERM HUP
  if ((${#PIDS[@]} > 0)); then
    say "stopping the gateway and the services"
    stop_processes gateway
    stop_processes "${AUTH_NAMES[@]}" "${CONVERSATION_NAMES[@]}" "${MESSAGE_NAMES[@]}"
  fi
  if ((STARTED_POSTGRES)); then
    say "stopping PostgreSQL (data stays in .data/postgres)"
    scripts/postgres.sh stop "$PG_DIR" || status=1
  fi
  sleep 0.2 # let the terminal copies print the last lines
  local pid
  for pid in "${DISPLAY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  say "stopped"
  exit "$status"
}

on_signal() {
  echo >&2
  say "received SIG$1"
  exit 0
}

port_in_use() {
  (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# Fills the *_NAMES and *_ADDRS arrays for REPLICAS replicas: one replica is
# named after its service, as always; several are <service>-<i>, replica i
# on the first one's port + 10 * (i - 1).
set_replicas() {
  [[ "$REPLICAS" =~ ^[1-9]$ ]] || die "REPLICAS: want a number of replicas from 1 to 9, got '$REPLICAS'"
  local i suffix offset
  for ((i = 1; i <= REPLICAS; i++)); do
    suffix= offset=$((10 * (i - 1)))
    ((REPLICAS > 1)) && suffix=-$i
    AUTH_NAMES+=("auth$suffix")
    AUTH_ADDRS+=("127.0.0.1:$((AUTH_PORT + offset))")
    CONVERSATION_NAMES+=("conversation$suffix")
    CONVERSATION_ADDRS+=("127.0.0.1:$((CONVERSATION_PORT + offset))")
    MESSAGE_NAMES+=("message$suffix")
    MESSAGE_ADDRS+=("127.0.0.1:$((MESSAGE_PORT + offset))")
  done
  ((REPLICAS > 1)) && NAME_WIDTH=14 # conversation-9
  return 0
}

# The words joined with commas.
join_commas() {
  local IFS=,
  printf '%s\n' "$*"
}

# --- main --------------------------------------------------------------------

main() {
  local name binary i
  set_replicas
  for binary in services/auth/chat-auth services/conversation/chat-conversation \
    services/message/chat-message bin/chat-gateway deploy/migrate/chat-migrate; do
    [[ -x "$BUILD/$binary" ]] || die "$BUILD/$binary is missing; run \`make build\` (or \`make run\`)"
  done
  for name in "${AUTH_ADDRS[@]}" "${CONVERSATION_ADDRS[@]}" "${MESSAGE_ADDRS[@]}" "$GATEWAY_ADDR"; do
    if port_in_use "$name"; then
      die "something already listens on $name (another \`make run\`?); stop it first"
    fi
  done

  trap cleanup EXIT
  trap 'on_signal INT' INT
  trap 'on_signal TERM' TERM
  trap 'on_signal HUP' HUP

  # Logs may hold user ids and request details: readable by the owner only.
  (umask 077 && mkdir -p "$LOGS")
  chmod 0700 "$LOGS"
  chmod 0600 "$LOGS"/* 2>/dev/null || true
  ensure_secrets

  local admin_url
  if [[ -n "${DATABASE_URL:-}" ]]; then
    say "using the database of DATABASE_URL"
    admin_url=$DATABASE_URL
  else
    say "starting PostgreSQL in .data/postgres on 127.0.0.1:$PG_PORT"
    STARTED_POSTGRES=1
    admin_url=$(scripts/postgres.sh start "$PG_DIR" "$PG_PORT" chat)
  fi

  local auth_pw conversation_pw message_pw
  auth_pw=$(<"$SECRETS/chat_auth_db_password")
  conversation_pw=$(<"$SECRETS/chat_conversation_db_password")
  message_pw=$(<"$SECRETS/chat_message_db_password")

  say "applying migrations"
  (umask 077 && : >>"$LOGS/migrate.log")
  DATABASE_URL=$admin_url CHAT_AUTH_DB_PASSWORD=$auth_pw \
    CHAT_CONVERSATION_DB_PASSWORD=$conversation_pw \
    CHAT_MESSAGE_DB_PASSWORD=$message_pw \
    "$BUILD/deploy/migrate/chat-migrate" --migrations_dir "$ROOT/deploy/migrations" \
    2>&1 | tee -a "$LOGS/migrate.log" | sed -u "s/^/$(printf '%-*s' "$NAME_WIDTH" migrate)| /" ||
    die "chat-migrate failed (see above)"

  # Each service's URL, with its role's password, goes to a file of its own.
  local role
  for role in chat_auth chat_conversation chat_message; do
    local password_var=${role}_pw
    password_var=${password_var#chat_}
    (umask 077 && role_url "$admin_url" "$role" "${!password_var}" \
      >"$SECRETS/${role}_database_url")
  done

  # The gateway balances over every replica of a service; a conversation or
  # message replica fetches the token keys from the first auth replica that
  # answers (gRPC's ipv4: target of several addresses, pick_first).
  local auth_list conversation_list message_list services_auth
  auth_list=$(join_commas "${AUTH_ADDRS[@]}")
  conversation_list=$(join_commas "${CONVERSATION_ADDRS[@]}")
  message_list=$(join_commas "${MESSAGE_ADDRS[@]}")
  services_auth=$auth_list
  ((REPLICAS > 1)) && services_auth=ipv4:$auth_list

  for ((i = 0; i < REPLICAS; i++)); do
    start "${AUTH_NAMES[i]}" "$BUILD/services/auth/chat-auth" \
      DATABASE_URL_FILE="$SECRETS/chat_auth_database_url" \
      GRPC_LISTEN="${AUTH_ADDRS[i]}" \
      AUTH_SIGNING_KEY_FILE="$SECRETS/jwt_signing_key.pem"
  done
  for ((i = 0; i < REPLICAS; i++)); do
    start "${CONVERSATION_NAMES[i]}" "$BUILD/services/conversation/chat-conversation" \
      DATABASE_URL_FILE="$SECRETS/chat_conversation_database_url" \
      GRPC_LISTEN="${CONVERSATION_ADDRS[i]}" AUTH_ADDR="$services_auth"
  done
  for ((i = 0; i < REPLICAS; i++)); do
    start "${MESSAGE_NAMES[i]}" "$BUILD/services/message/chat-message" \
      DATABASE_URL_FILE="$SECRETS/chat_message_database_url" \
      GRPC_LISTEN="${MESSAGE_ADDRS[i]}" AUTH_ADDR="$services_auth"
  done
  start gateway "$BUILD/bin/chat-gateway" \
    GATEWAY_LISTEN="$GATEWAY_ADDR" AUTH_ADDR="$auth_list" \
    CONVERSATION_ADDR="$conversation_list" MESSAGE_ADDR="$message_list"

  local deadline=$((SECONDS + READY_TIMEOUT)) code=
  while :; do
    for name in "${NAMES[@]}"; do
      if ! alive "$name"; then
        wait "${PIDS[$name]}" && code=0 || code=$?
        unset "PIDS[$name]"
        show_log_tail "$name"
        die "$name exited (status $code) before the gateway was ready"
      fi
    done
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE_URL/readyz" || true)
    # /readyz asks one replica of each service; the others must listen too.
    if [[ "$code" == 200 ]] && ((REPLICAS > 1)); then
      for name in "${AUTH_ADDRS[@]}" "${CONVERSATION_ADDRS[@]}" "${MESSAGE_ADDRS[@]}"; do
        port_in_use "$name" || code="200, but nothing listens on $name yet"
      done
    fi
    [[ "$code" == 200 ]] && break
    if ((SECONDS >= deadline)); then
      for name in "${NAMES[@]}"; do show_log_tail "$name"; done
      die "$BASE_URL/readyz did not answer 200 within ${READY_TIMEOUT}s (last answer: ${code:-none})"
    fi
    sleep 0.5
  done

  local logs="{auth,conversation,message,gateway}.log"
  ((REPLICAS > 1)) && logs="{auth,conversation,message}-{1..$REPLICAS}.log and gateway.log"
  cat <<EOF

  The chat backend is up: open $BASE_URL/ in a browser for the web client.
  REST at $BASE_URL/v1/ (OpenAPI: $BASE_URL/openapi.json)
  gRPC: auth ${auth_list//,/ }, conversation ${conversation_list//,/ }, message ${message_list//,/ }
  Logs: this terminal and .data/logs/$logs
  Data: .data/ (kept between runs). Ctrl-C stops everything.

  Try it:
    curl -s $BASE_URL/v1/auth/register -H 'Content-Type: application/json' \\
      -d '{"username":"alice","email":"alice@example.com","password":"Secret123"}'
    TOKEN=\$(curl -s $BASE_URL/v1/auth/login -H 'Content-Type: application/json' \\
      -d '{"login":"alice","password":"Secret123"}' | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')
    curl -s $BASE_URL/v1/auth/profile -H "Authorization: Bearer \$TOKEN"

EOF

  # Until a signal (handled by the traps) or an unexpected exit.
  while :; do
    wait -n "${PIDS[@]}" || true
    for name in "${NAMES[@]}"; do
      if [[ -n "${PIDS[$name]:-}" ]] && ! alive "$name"; then
        wait "${PIDS[$name]}" && code=0 || code=$?
        unset "PIDS[$name]"
        show_log_tail "$name"
        die "$name exited unexpectedly (status $code); stopping everything"
      fi
    done
  done
}

main "$@"
