#!/usr/bin/env bash
# Larder's local stack: PostgreSQL, NATS JetStream and an SMTP inbox on loopback, then the services.
#
#   ./stack.sh run            install what is missing, start (or reuse) the infrastructure,
#                             build, migrate and run every service (`larder all`) until Ctrl-C
#   ./stack.sh test [ARGS]    same infrastructure, then `cargo test --workspace ARGS`
#   ./stack.sh up             infrastructure only, until Ctrl-C
#
# A service that already answers on its port is reused and never stopped; whatever this script
# starts keeps its data in .stack/ (git-ignored) and is stopped when the script exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK="$ROOT/.stack"
LOGS="$STACK/logs"
WAIT_SECS="${STACK_WAIT_SECS:-60}"
MAILDEV_VERSION="2.2.1"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}"

# What this script started (and so must stop): background PIDs and a PostgreSQL data dir.
STARTED_PIDS=()
STARTED_NAMES=()
STARTED_PG_DATA=""
APP_PID=""

SUDO=""
if [[ ${EUID} -ne 0 ]]; then
    SUDO="sudo"
fi

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf 'stack.sh: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<'EOF'
Usage: ./stack.sh COMMAND [ARGS]

Commands:
  run          install what is missing, start or reuse PostgreSQL, NATS and the SMTP inbox,
               build and migrate, then run every service (`larder all`) until Ctrl-C
  test [ARGS]  the same infrastructure, then `cargo test --workspace ARGS`
               (e.g. `./stack.sh test -- --nocapture`, `./stack.sh test -p order`)
  up           the infrastructure only, until Ctrl-C

Environment (defaults; a .env file is read first, the environment wins over it):
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/larder?sslmode=disable   NATS_URL=nats://127.0.0.1:4222
  SMTP_HOST=127.0.0.1 SMTP_PORT=1025 MAIL_INBOX_URL=http://127.0.0.1:8025
  STACK_WAIT_SECS=60 (how long to wait for each service)
EOF
}

# ---------------------------------------------------------------------------------------------
# Cleanup: stop what we started, and only that.

stop_pid() {
    local pid="$1" name="$2" i
    kill -0 "$pid" 2>/dev/null || return 0
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        note "$name did not stop within 20 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n "$APP_PID" ]] && kill -0 "$APP_PID" 2>/dev/null; then
        # `larder` shuts down gracefully on SIGTERM (stops pulling, finishes work, flushes the outbox).
        say "stopping larder (pid $APP_PID)"
        kill -TERM "$APP_PID" 2>/dev/null
        local i
        for ((i = 0; i < 150; i++)); do
            kill -0 "$APP_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$APP_PID" 2>/dev/null && kill -KILL "$APP_PID" 2>/dev/null
        wait "$APP_PID" 2>/dev/null
    fi
    local idx
    for ((idx = ${#STARTED_PIDS[@]} - 1; idx >= 0; idx--)); do
        stop_pid "${STARTED_PIDS[idx]}" "${STARTED_NAMES[idx]}"
    done
    if [[ -n "$STARTED_PG_DATA" ]]; then
        say "stopping PostgreSQL ($STARTED_PG_DATA)"
        as_pg "$PG_BIN/pg_ctl" -D "$STARTED_PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            note "pg_ctl stop failed: see $LOGS/postgres.log"
    fi
    exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Configuration

# Read KEY=VALUE lines from .env without overriding the environment (no shell evaluation).
load_env_file() {
    local file="$1" line key value
    [[ -f "$file" ]] || return 0
    say "reading $file"
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        line="${line#export }"
        [[ "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        key="${BASH_REMATCH[1]}"
        value="${BASH_REMATCH[2]}"
        if [[ "$value" =~ ^\"(.*)\"[[:space:]]*$ || "$value" =~ ^\'(.*)\'[[:space:]]*$ ]]; then
            value="${BASH_REMATCH[1]}"
        else
            value="${value%%[[:space:]]#*}" # an unquoted value ends at " #"
            value="${value%"${value##*[![:space:]]}"}"
        fi
        if [[ -z "${!key+set}" ]]; then
            export "$key=$value"
        fi
    done <"$file"
}

# host and port from scheme://[user[:pass]@]host[:port][/...]
url_host() {
    local rest="${1#*://}"
    rest="${rest%%,*}"
    rest="${rest%%[/?]*}"
    rest="${rest##*@}"
    if [[ "$rest" =~ ^\[([^]]+)\] ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    else
        printf '%s' "${rest%%:*}"
    fi
}
url_port() {
    local rest="${1#*://}" default="$2"
    rest="${rest%%,*}"
    rest="${rest%%[/?]*}"
    rest="${rest##*@}"
    rest="${rest##*]}"
    if [[ "$rest" =~ :([0-9]+)$ ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    else
        printf '%s' "$default"
    fi
}

is_local_host() {
    case "$1" in
    "" | 127.* | localhost | ::1) return 0 ;;
    *) return 1 ;;
    esac
}

configure() {
    load_env_file "$ROOT/.env"
    export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/larder?sslmode=disable}"
    export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
    export SMTP_HOST="${SMTP_HOST:-127.0.0.1}"
    export SMTP_PORT="${SMTP_PORT:-1025}"
    export MAIL_INBOX_URL="${MAIL_INBOX_URL:-http://127.0.0.1:8025}"

    PG_HOST="$(url_host "$DATABASE_URL")"
    PG_HOST="${PG_HOST:-127.0.0.1}"
    PG_PORT="$(url_port "$DATABASE_URL" 5432)"
    local path="${DATABASE_URL#*://}"
    path="${path%%\?*}"
    if [[ "$path" == */* ]]; then
        PG_DB="${path##*/}"
    else
        PG_DB=""
    fi
    PG_DB="${PG_DB:-larder}"
    # The same URL on the maintenance database `postgres` (to create ours).
    local base="${DATABASE_URL%%\?*}"
    if [[ "${base#*://}" == */* ]]; then
        PG_ADMIN_URL="${base%/*}/postgres"
    else
        PG_ADMIN_URL="$base/postgres"
    fi

    NATS_HOST="$(url_host "$NATS_URL")"
    NATS_HOST="${NATS_HOST:-127.0.0.1}"
    NATS_PORT="$(url_port "$NATS_URL" 4222)"

    MAIL_WEB_HOST="$(url_host "$MAIL_INBOX_URL")"
    MAIL_WEB_PORT="$(url_port "$MAIL_INBOX_URL" 80)"

    if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    # npm's global bin (maildev) may live outside PATH for a non-root user.
    PATH="$PATH:/usr/local/bin"
    export PATH
}

# ---------------------------------------------------------------------------------------------
# Probing (dependency-free: bash's /dev/tcp)

port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# Does the NATS server at host:port announce JetStream in its INFO line?
nats_jetstream() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"; IFS= read -r -t 2 line <&3; [[ "$line" == *"\"jetstream\":true"* ]]' "$1" "$2" 2>/dev/null
}

# wait_port NAME HOST PORT [PID LOG]: bounded wait; fails early when the process we started died.
wait_port() {
    local name="$1" host="$2" port="$3" pid="${4:-}" log="${5:-}" deadline
    deadline=$((SECONDS + WAIT_SECS))
    until port_open "$host" "$port"; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            [[ -n "$log" && -f "$log" ]] && tail -n 20 "$log" >&2
            die "$name exited before answering on $host:$port${log:+ (log: $log)}"
        fi
        if ((SECONDS >= deadline)); then
            [[ -n "$log" && -f "$log" ]] && tail -n 20 "$log" >&2
            die "$name did not answer on $host:$port within ${WAIT_SECS}s${log:+ (log: $log)}"
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------
# Installing what is missing

pg_bin_dir() {
    local dir
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then
        printf '%s' "$dir"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
    if [[ -n "$SUDO" ]] && ! command -v sudo >/dev/null 2>&1; then
        die "installing $* needs root (no sudo found)"
    fi
    say "installing $* (apt)"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
    # Do not let package scripts start system-wide services (e.g. Debian's PostgreSQL cluster,
    # whose TCP login wants a password): the script starts its own, on loopback.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && added_policy=1
    fi
    local ok=0
    # `apt-get update` only when needed: no package lists yet, or the install fails on stale ones.
    if ! compgen -G '/var/lib/apt/lists/*Packages*' >/dev/null; then
        $SUDO "${apt[@]}" update && APT_UPDATED=1
    fi
    if $SUDO "${apt[@]}" install --no-install-recommends "$@"; then
        ok=1
    elif ((APT_UPDATED == 0)) && $SUDO "${apt[@]}" update; then
        APT_UPDATED=1
        $SUDO "${apt[@]}" install --no-install-recommends "$@" && ok=1
    fi
    if ((added_policy)); then
        $SUDO rm -f "$policy"
    fi
    ((ok)) || die "apt-get install $* failed"
    hash -r
}

maildev_bin() {
    local bin
    bin="$(command -v maildev 2>/dev/null || true)"
    if [[ -z "$bin" ]] && command -v npm >/dev/null 2>&1; then
        bin="$(npm prefix -g 2>/dev/null)/bin/maildev"
        [[ -x "$bin" ]] || bin=""
    fi
    printf '%s' "$bin"
}

install_missing() {
    local pkgs=()
    if ! command -v psql >/dev/null 2>&1; then
        pkgs+=(postgresql-client)
    fi
    if [[ "$PG_STATE" == start && -z "$(pg_bin_dir)" ]]; then
        pkgs+=(postgresql)
    fi
    if [[ "$NATS_STATE" == start ]] && ! command -v nats-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/nats-server ]]; then
        pkgs+=(nats-server)
    fi
    if [[ "$SMTP_STATE" == start && -z "$(maildev_bin)" ]] && ! command -v npm >/dev/null 2>&1; then
        pkgs+=(nodejs npm)
    fi
    if ((${#pkgs[@]})); then
        apt_install "${pkgs[@]}"
    fi
    if [[ "$SMTP_STATE" == start && -z "$(maildev_bin)" ]]; then
        say "installing maildev@$MAILDEV_VERSION (npm)"
        local npm_sudo=""
        [[ -w "$(npm prefix -g)" ]] || npm_sudo="$SUDO"
        $npm_sudo npm install -g --no-audit --no-fund --loglevel=error "maildev@$MAILDEV_VERSION" ||
            die "npm install -g maildev@$MAILDEV_VERSION failed"
        hash -r
        [[ -n "$(maildev_bin)" ]] || die "maildev installed but not found on PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        die "cargo not found: install Rust (https://rustup.rs) first"
    fi
}

# ---------------------------------------------------------------------------------------------
# Starting or reusing each service

# Run a command in its own session, so that Ctrl-C in the terminal does not reach it: the script
# stops it itself, after `larder` (which may still be flushing to NATS). Without forking: $! stays its PID.
detached() {
    if command -v setsid >/dev/null 2>&1; then
        exec setsid "$@"
    fi
    exec "$@"
}

# Run a command as the PostgreSQL OS user when we are root (initdb/postgres refuse root).
as_pg() {
    if [[ ${EUID} -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

decide() {
    if port_open "$PG_HOST" "$PG_PORT"; then PG_STATE=reuse; else PG_STATE=start; fi
    if port_open "$NATS_HOST" "$NATS_PORT"; then NATS_STATE=reuse; else NATS_STATE=start; fi
    if port_open "$SMTP_HOST" "$SMTP_PORT"; then SMTP_STATE=reuse; else SMTP_STATE=start; fi
    local what host
    for what in PG NATS SMTP; do
        local state="${what}_STATE" h="${what}_HOST"
        host="${!h}"
        if [[ "${!state}" == start ]] && ! is_local_host "$host"; then
            die "$what server $host does not answer, and this script only starts services on this machine"
        fi
    done
}

start_postgres() {
    if [[ "$PG_STATE" == reuse ]]; then
        say "reusing PostgreSQL on $PG_HOST:$PG_PORT"
        return
    fi
    PG_BIN="$(pg_bin_dir)"
    [[ -n "$PG_BIN" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    local home="$STACK"
    if [[ ${EUID} -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "the postgres OS user does not exist (is PostgreSQL installed?)"
        chmod a+rx "$STACK"
        if ! runuser -u postgres -- test -x "$STACK"; then
            # The project lives where the postgres user cannot reach it (e.g. under /root).
            home="/var/tmp/larder-stack-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
            mkdir -p "$home"
            chmod 755 "$home"
            note "the postgres user cannot reach $STACK: PostgreSQL data goes to $home/pg"
        fi
    fi
    local data="$home/pg" sock="$home/run" log="$LOGS/postgres.log"
    [[ "$home" == "$STACK" ]] || log="$home/postgres.log"
    if ((${#sock} > 90)); then
        sock="$(mktemp -d /tmp/larder-pg.XXXXXX)"
    fi
    mkdir -p "$data" "$sock"
    touch "$log"
    if [[ ${EUID} -eq 0 ]]; then
        chown postgres: "$data" "$sock" "$log"
    fi
    chmod 700 "$data"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        say "initialising PostgreSQL in $data"
        as_pg "$PG_BIN/initdb" -D "$data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 >>"$log" 2>&1 ||
            {
                tail -n 20 "$log" >&2
                die "initdb failed (log: $log)"
            }
    fi
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT (data in $data)"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t "$WAIT_SECS" \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $sock" start >/dev/null ||
        {
            tail -n 20 "$log" >&2
            die "PostgreSQL did not start (log: $log)"
        }
    STARTED_PG_DATA="$data"
    wait_port PostgreSQL 127.0.0.1 "$PG_PORT" "" "$log"
}

start_nats() {
    if [[ "$NATS_STATE" == reuse ]]; then
        say "reusing NATS on $NATS_HOST:$NATS_PORT"
        if ! nats_jetstream "$NATS_HOST" "$NATS_PORT"; then
            note "warning: that server does not announce JetStream (it needs -js)"
        fi
        return
    fi
    local bin log="$LOGS/nats.log" args
    bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
    mkdir -p "$STACK/nats"
    args=(-a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STACK/nats")
    if port_open 127.0.0.1 "$NATS_MONITOR_PORT"; then
        note "port $NATS_MONITOR_PORT is taken: NATS starts without its monitoring port"
        NATS_MONITOR_PORT=""
    else
        args+=(-m "$NATS_MONITOR_PORT")
    fi
    say "starting NATS on 127.0.0.1:$NATS_PORT (JetStream in $STACK/nats)"
    detached "$bin" "${args[@]}" >>"$log" 2>&1 </dev/null &
    STARTED_PIDS+=("$!")
    STARTED_NAMES+=(nats-server)
    wait_port NATS 127.0.0.1 "$NATS_PORT" "$!" "$log"
}

start_smtp() {
    if [[ "$SMTP_STATE" == reuse ]]; then
        say "reusing the SMTP server on $SMTP_HOST:$SMTP_PORT"
        return
    fi
    local log="$LOGS/maildev.log"
    if port_open 127.0.0.1 "$MAIL_WEB_PORT"; then
        die "port $MAIL_WEB_PORT (mail inbox web UI) is taken, but nothing answers SMTP on $SMTP_PORT"
    fi
    say "starting maildev (SMTP 127.0.0.1:$SMTP_PORT, inbox http://127.0.0.1:$MAIL_WEB_PORT)"
    detached "$(maildev_bin)" --smtp "$SMTP_PORT" --web "$MAIL_WEB_PORT" --ip 127.0.0.1 >>"$log" 2>&1 </dev/null &
    local pid=$!
    STARTED_PIDS+=("$pid")
    STARTED_NAMES+=(maildev)
    wait_port maildev 127.0.0.1 "$SMTP_PORT" "$pid" "$log"
    wait_port "maildev web" 127.0.0.1 "$MAIL_WEB_PORT" "$pid" "$log"
}

ensure_database() {
    command -v psql >/dev/null 2>&1 || die "psql not found"
    local out
    if ! out="$(psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -Atqc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "cannot connect to PostgreSQL as ${PG_ADMIN_URL%%/postgres}: set DATABASE_URL (e.g. in .env) with working credentials"
    fi
    if [[ "$out" != 1 ]]; then
        say "creating database $PG_DB"
        psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
    fi
}

bring_up() {
    mkdir -p "$LOGS"
    decide
    install_missing
    start_postgres
    start_nats
    start_smtp
    ensure_database
}

print_urls() {
    local addr="${HTTP_ADDR:-127.0.0.1:3000}" host port
    host="${addr%:*}"
    port="${addr##*:}"
    case "$host" in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
    echo
    if [[ "${1:-}" == app ]]; then
        echo "  API               http://$host:$port"
        echo "  Swagger UI        http://$host:$port/docs"
    fi
    echo "  Mail inbox        $MAIL_INBOX_URL$(port_open "$MAIL_WEB_HOST" "$MAIL_WEB_PORT" || printf '  (not answering)')"
    if [[ -n "$NATS_MONITOR_PORT" ]] && port_open "$NATS_HOST" "$NATS_MONITOR_PORT"; then
        echo "  NATS monitoring   http://$NATS_HOST:$NATS_MONITOR_PORT  (/jsz?streams=true&consumers=true)"
    else
        echo "  NATS monitoring   none: the reused NATS on $NATS_HOST:$NATS_PORT has no monitoring port (-m 8222)"
    fi
    echo "  PostgreSQL        $DATABASE_URL"
    echo "  NATS              $NATS_URL"
    echo "  Logs of what this script started: $LOGS"
    echo
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_run() {
    local addr="${HTTP_ADDR:-127.0.0.1:3000}" host
    host="${addr%:*}"
    case "$host" in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
    if port_open "$host" "${addr##*:}"; then
        die "something already answers on $addr (another larder?): stop it or set HTTP_ADDR"
    fi
    bring_up
    cd "$ROOT"
    local larder="${CARGO_TARGET_DIR:-$ROOT/target}/release/larder"
    say "building larder (cargo build --release --bin larder)"
    cargo build --release --bin larder
    say "migrating ($larder migrate)"
    "$larder" migrate
    print_urls app
    say "running every service ($larder all); Ctrl-C stops it and what this script started"
    "$larder" all </dev/null &
    APP_PID=$!
    local rc=0
    wait "$APP_PID" || rc=$?
    APP_PID=""
    exit "$rc"
}

cmd_test() {
    bring_up
    cd "$ROOT"
    local args=(test) arg selects=0
    for arg in "$@"; do
        [[ "$arg" == -- ]] && break
        case "$arg" in -p | -p* | --package | --package=* | --workspace | --all) selects=1 ;; esac
    done
    ((selects)) || args+=(--workspace)
    say "cargo ${args[*]}${*:+ $*}"
    local rc=0
    cargo "${args[@]}" "$@" || rc=$?
    if ((rc != 0)); then
        say "cargo test failed (exit $rc)"
    fi
    exit "$rc"
}

cmd_up() {
    bring_up
    print_urls
    if ((${#STARTED_PIDS[@]} == 0)) && [[ -z "$STARTED_PG_DATA" ]]; then
        say "everything was already running; nothing to stop. Ctrl-C to leave."
    else
        say "infrastructure is up; Ctrl-C stops what this script started"
    fi
    local i
    while true; do
        for i in "${!STARTED_PIDS[@]}"; do
            kill -0 "${STARTED_PIDS[i]}" 2>/dev/null || die "${STARTED_NAMES[i]} exited (logs in $LOGS)"
        done
        sleep 2 &
        wait $! || true
    done
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
    run | test | up) ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    configure
    PG_BIN=""
    "cmd_$cmd" "$@"
}

main "$@"
