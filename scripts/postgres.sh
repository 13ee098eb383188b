#!/usr/bin/env bash
# A private PostgreSQL 15 cluster in a directory of its own, listening only on
# 127.0.0.1. `make run` keeps one in .data/postgres; `make test` makes a
# throw-away one.
#
#   scripts/postgres.sh start DIR PORT [DATABASE]  initdb on first start, start,
#                                                  create DATABASE (default
#                                                  postgres) if missing, and
#                                                  print its admin URL on stdout
#   scripts/postgres.sh stop DIR                   fast shutdown; data stays
#   scripts/postgres.sh status DIR                 exit 0 when running
#   scripts/postgres.sh url DIR PORT [DATABASE]    print the admin URL only
#
# Layout of DIR:
#   pgdata/                  the cluster (PGDATA), owned by the server user
#   log/postgres.log         the server's log
#   secrets/admin_password   password of superuser chat_admin (mode 0600)
#   secrets/admin_url        admin URL of the last start (mode 0600)
#
# Authentication is scram-sha-256 over TCP from 127.0.0.1 and ::1 only. As
# root, the server runs as the unprivileged system user $CHAT_PG_USER
# (default chatpg, created on first use), because PostgreSQL refuses to run
# as root. PG_BIN overrides where initdb, pg_ctl and psql are found.
set -euo pipefail

readonly ADMIN_USER=chat_admin

die() {
  echo "postgres.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

find_pg_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "$PG_BIN/pg_ctl" ]] || die "PG_BIN=$PG_BIN has no pg_ctl"
  elif [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
    PG_BIN=/usr/lib/postgresql/15/bin
  else
    die "PostgreSQL 15 is not installed (no /usr/lib/postgresql/15/bin/pg_ctl); run scripts/install-deps.sh"
  fi
}

# Runs a command as the server user, from / so that an unreadable working
# directory does not bother it, and with no file descriptor but 0-2: the
# server outlives this script and must not hold our lock or a caller's pipe.
as_pg() {
  (
    cd /
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-"
    done 2>/dev/null
    if ((EUID == 0)); then
      exec runuser -u "$PG_USER" -- "$@"
    else
      exec "$@"
    fi
  )
}

ensure_server_user() {
  if ((EUID != 0)); then
    PG_USER=$(id -un)
    return
  fi
  PG_USER=${CHAT_PG_USER:-chatpg}
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    # A concurrent first start may have created it in the meantime.
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "chat-backend private PostgreSQL" \
      "$PG_USER" 2>/dev/null || id -u "$PG_USER" >/dev/null 2>&1 ||
      die "cannot create system user $PG_USER"
  fi
}

# The server user must be able to reach DIR: give search (not read)
# permission to every ancestor that lacks it.
ensure_traversable() {
  local dir=$1
  ((EUID == 0)) || return 0
  as_pg test -x "$dir" 2>/dev/null && return 0
  local part path=
  local -a parts
  IFS=/ read -ra parts <<<"${dir#/}"
  for part in "${parts[@]}"; do
    path+=/$part
    if ! as_pg test -x "$path" 2>/dev/null; then
      chmod o+x "$path"
      echo "postgres.sh: added o+x to $path so that user $PG_USER can reach $dir" >&2
    fi
  done
  as_pg test -x "$dir" || die "user $PG_USER cannot reach $dir"
}

is_running() {
  [[ -f "$PGDATA/PG_VERSION" ]] || return 1
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

admin_url() {
  local db=${3:-postgres}
  [[ -s "$SECRETS/admin_password" ]] ||
    die "$SECRETS/admin_password is missing; remove $DIR to start afresh"
  printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$ADMIN_USER" \
    "$(<"$SECRETS/admin_password")" "$2" "$db"
}

new_password() {
  od -An -tx1 -N24 /dev/urandom | tr -d ' \n'
}

init_cluster() {
  echo "postgres.sh: creating a PostgreSQL cluster in $PGDATA" >&2
  local password pwfile
  password=$(new_password)
  (umask 077 && printf '%s\n' "$password" >"$SECRETS/admin_password.new")
  # initdb reads the password as the server user, from its own directory.
  pwfile=$DIR/log/initdb.pw
  install -m 0600 "$SECRETS/admin_password.new" "$pwfile"
  ((EUID == 0)) && chown "$PG_USER:" "$pwfile"
  rm -rf "$PGDATA"
  mkdir -m 0700 "$PGDATA"
  ((EUID == 0)) && chown "$PG_USER:" "$PGDATA"
  if ! as_pg "$PG_BIN/initdb" -D "$PGDATA" -U "$ADMIN_USER" --pwfile="$pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    >"$DIR/log/initdb.log" 2>&1; then
    rm -f "$pwfile"
    cat "$DIR/log/initdb.log" >&2
    die "initdb failed"
  fi
  rm -f "$pwfile"

  # A unix socket path must fit in 107 bytes; a deep checkout gets none
  # (every client here uses TCP anyway).
  local socket_dir=$PGDATA
  ((${#PGDATA} + 20 < 107)) || socket_dir=
  as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<EOF

# --- scripts/postgres.sh ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket_dir'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<'EOF'
# scripts/postgres.sh: password (SCRAM) logins over loopback TCP only.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
EOF
  mv "$SECRETS/admin_password.new" "$SECRETS/admin_password"
}

# The port a running cluster listens on (4th line of postmaster.pid).
running_port() {
  sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null || true
}

cmd_start() {
  local port=$1 db=${2:-postgres}
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "bad port: $port"
  fi
  [[ "$db" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad database name: $db"
  ensure_server_user
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  PGDATA=$DIR/pgdata
  SECRETS=$DIR/secrets
  chmod 0711 "$DIR"
  mkdir -p "$SECRETS" "$DIR/log"
  chmod 0700 "$SECRETS" "$DIR/log"
  ((EUID == 0)) && chown "$PG_USER:" "$DIR/log"
  ensure_traversable "$DIR"

  # One start at a time per directory.
  exec 9>"$SECRETS/.lock"
  flock 9

  if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
    init_cluster
  elif [[ "$(stat -c %U "$PGDATA")" != "$PG_USER" ]]; then
    if ((EUID == 0)); then
      chown -R "$PG_USER:" "$PGDATA" "$DIR/log"
    else
      die "$PGDATA belongs to $(stat -c %U "$PGDATA"); start it as that user or as root"
    fi
  fi

  if is_running; then
    local current
    current=$(running_port)
    [[ "$current" == "$port" ]] ||
      die "the cluster in $DIR already runs on port $current, not $port; stop it first"
  else
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$DIR/log/postgres.log" \
      -o "-p $port" -w -t 60 start >/dev/null; then
      echo "postgres.sh: the server did not start; the end of $DIR/log/postgres.log:" >&2
      tail -n 20 "$DIR/log/postgres.log" >&2 || true
      die "cannot start PostgreSQL on 127.0.0.1:$port"
    fi
  fi

  if [[ "$db" != postgres ]] &&
    ! PGPASSWORD=$(<"$SECRETS/admin_password") "$PG_BIN/psql" -X -q \
      -v ON_ERROR_STOP=1 -v db="$db" -h 127.0.0.1 -p "$port" \
      -U "$ADMIN_USER" -d postgres >/dev/null <<'SQL'; then
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
    die "cannot create database $db"
  fi
  local url
  url=$(admin_url "$DIR" "$port" "$db")
  (umask 077 && printf '%s\n' "$url" >"$SECRETS/admin_url")
  printf '%s\n' "$url"
}

cmd_stop() {
  [[ -d "$DIR" ]] || return 0
  DIR=$(cd "$DIR" && pwd -P)
  PGDATA=$DIR/pgdata
  ensure_server_user
  if is_running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null ||
      die "cannot stop the cluster in $DIR"
  fi
}

cmd_status() {
  [[ -d "$DIR" ]] || return 1
  DIR=$(cd "$DIR" && pwd -P)
  PGDATA=$DIR/pgdata
  ensure_server_user
  if is_running; then
    echo "running on 127.0.0.1:$(running_port) ($PGDATA)"
  else
    echo "not running ($PGDATA)"
    return 1
  fi
}

main() {
  (($# >= 2)) || usage
  local command=$1
  DIR=$2
  find_pg_bin
  case "$command" in
    start)
      (($# >= 3 && $# <= 4)) || usage
      cmd_start "${@:3}"
      ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url)
      (($# >= 3 && $# <= 4)) || usage
      DIR=$(cd "$DIR" && pwd -P)
      SECRETS=$DIR/secrets
      admin_url "$DIR" "$3" "${4:-postgres}"
      ;;
    *) usage ;;
  esac
}

main "$@"
