#!/usr/bin/env bash
# Larder's local stack: PostgreSQL, NATS JetStream and an SMTP inbox on loopback, then the services.
#
#   ./stack.sh run            install what is missing, start (or reuse) the infrastructure,
#                             build, migrate and run every service (`larder all`) until Ctrl-C
#   ./stack.sh test [ARGS]    same infrastructure, then `cargo test --workspace ARGS`
#   ./stack.sh up             infrastructure only, until Ctrl-C
#   ./stack.sh check          say what run/test would reuse or start; change nothing
#
# A service already on its port is reused, and never stopped, only when it works the way Larder
# needs it (PostgreSQL: a non-interactive login with the configured URL; NATS: JetStream; SMTP: a
# greeting). Otherwise, when the configured URL is one this script can serve itself (a loopback
# address; for PostgreSQL the `postgres` user; for NATS no credentials), it starts its own on a free
# port and says so; else it stops with one line saying what it found. Never a prompt, never a hang.
# Whatever it starts keeps its data in .stack/ (git-ignored) and is stopped when the script exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK="$ROOT/.stack"
LOGS="$STACK/logs"
WAIT_SECS="${STACK_WAIT_SECS:-60}"
PROBE_SECS="${STACK_PROBE_SECS:-5}"
MAILDEV_VERSION="2.2.1"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}"
SERVICE_DATABASE_VARS=(ORDER_DATABASE_URL STOCK_DATABASE_URL DELIVERY_DATABASE_URL NOTIFICATION_DATABASE_URL)

# What this script started (and so must stop or remove): background PIDs, a PostgreSQL data dir,
# temporary directories, the heartbeat of a long step.
STARTED_PIDS=()
STARTED_NAMES=()
STARTED_PG_DATA=""
TEMP_DIRS=()
APP_PID=""
HEARTBEAT_PID=""
# Where the logs of what this script started are (printed at the end of start-up).
LOG_FILES=()

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
  test [ARGS]  the same infrastructure (and maildev, which the tests start themselves, and
               Chromium with playwright-core for the console's browser test), then
               `cargo test --workspace ARGS` (e.g. `./stack.sh test -- --nocapture`, `-p order`)
  up           the infrastructure only, until Ctrl-C
  check        say what run/test would reuse or start, and why; installs and starts nothing

Environment (defaults; a .env file is read first, the environment wins over it):
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/larder?sslmode=disable   NATS_URL=nats://127.0.0.1:4222
  SMTP_HOST=127.0.0.1 SMTP_PORT=1025 MAIL_INBOX_URL=http://127.0.0.1:8025
  STACK_WAIT_SECS=60 (how long to wait for what the script starts)
  STACK_PROBE_SECS=5 (how long to wait for a running service to answer a check)
  STACK_PROFILE=dev (`run` starts the debug build the tests share; `release` for an optimised one)
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
    heartbeat_stop
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
            note "pg_ctl stop failed: see $PG_LOG"
    fi
    for idx in "${!TEMP_DIRS[@]}"; do
        rm -rf "${TEMP_DIRS[idx]}"
    done
    exit "$rc"
}

# A line every 30 s while a long, otherwise silent step runs (cargo linking test binaries prints
# nothing for minutes), when stdout is not a terminal: CI logs and `| tee` show it is alive.
heartbeat_start() {
    [[ -t 1 ]] && return 0
    local what="$1"
    (
        n=0
        while sleep 1; do
            n=$((n + 1))
            ((n % 30)) || printf '    ... %s: still running (%d s)\n' "$what" "$n"
        done
    ) &
    HEARTBEAT_PID=$!
}
heartbeat_stop() {
    if [[ -n "$HEARTBEAT_PID" ]]; then
        kill "$HEARTBEAT_PID" 2>/dev/null || true
        wait "$HEARTBEAT_PID" 2>/dev/null || true
        HEARTBEAT_PID=""
    fi
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

# The authority of scheme://[user[:pass]@]host[:port][/...] (first host of a list).
url_authority() {
    local rest="${1#*://}"
    rest="${rest%%[/?]*}"
    printf '%s' "${rest%%,*}"
}
# host and port from scheme://[user[:pass]@]host[:port][/...]
url_host() {
    local rest
    rest="$(url_authority "$1")"
    rest="${rest##*@}"
    if [[ "$rest" =~ ^\[([^]]+)\] ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    else
        printf '%s' "${rest%%:*}"
    fi
}
url_port() {
    local rest default="$2"
    rest="$(url_authority "$1")"
    rest="${rest##*@}"
    rest="${rest##*]}"
    if [[ "$rest" =~ :([0-9]+)$ ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    else
        printf '%s' "$default"
    fi
}
# The user of scheme://user[:pass]@host..., empty without one.
url_user() {
    local auth
    auth="$(url_authority "$1")"
    [[ "$auth" == *@* ]] || return 0
    auth="${auth%@*}"
    printf '%s' "${auth%%:*}"
}
# The same URL on another host:port: user, password, path and query are kept.
url_with_address() {
    local url="$1" host="$2" port="$3" scheme rest authority userinfo=""
    scheme="${url%%://*}"
    rest="${url#*://}"
    authority="${rest%%[/?]*}"
    [[ "$authority" == *@* ]] && userinfo="${authority%@*}@"
    printf '%s://%s%s:%s%s' "$scheme" "$userinfo" "$host" "$port" "${rest:${#authority}}"
}

is_local_host() {
    case "$1" in
    "" | 127.* | localhost | ::1) return 0 ;;
    *) return 1 ;;
    esac
}

# Point every PostgreSQL URL at HOST:PORT: the admin URL (DATABASE_URL: `larder migrate`, bench,
# the test harness) and each service's own (its role's login), keeping users, passwords, databases.
set_pg_address() {
    local host="$1" port="$2" var svc
    export DATABASE_URL
    DATABASE_URL="$(url_with_address "$DATABASE_URL" "$host" "$port")"
    for var in "${SERVICE_DATABASE_VARS[@]}"; do
        svc="${var%_DATABASE_URL}"
        svc="larder_${svc,,}"
        export "$var=$(url_with_address "${!var:-postgres://$svc:$svc@127.0.0.1:5432/larder?sslmode=disable}" "$host" "$port")"
    done
    PG_HOST="$host"
    PG_PORT="$port"
    PG_ADMIN_URL="$(url_with_address "$PG_ADMIN_URL" "$host" "$port")"
}

set_nats_address() {
    export NATS_URL
    NATS_URL="$(url_with_address "$NATS_URL" "$1" "$2")"
    NATS_HOST="$1"
    NATS_PORT="$2"
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
    PG_USER="$(url_user "$DATABASE_URL")"
    local path="${DATABASE_URL#*://}"
    path="${path%%\?*}"
    if [[ "$path" == */* ]]; then
        PG_DB="${path##*/}"
    else
        PG_DB=""
    fi
    PG_DB="${PG_DB:-larder}"
    # The same URL on the maintenance database `postgres` (to check the login and create ours).
    local base="${DATABASE_URL%%\?*}" query=""
    [[ "$DATABASE_URL" == *\?* ]] && query="?${DATABASE_URL#*\?}"
    if [[ "${base#*://}" == */* ]]; then
        PG_ADMIN_URL="${base%/*}/postgres$query"
    else
        PG_ADMIN_URL="$base/postgres$query"
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
# Probing (dependency-free: bash's /dev/tcp; psql for PostgreSQL). Every probe is bounded.

port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# The first line a server sends on connecting (NATS: INFO {...}; SMTP: 220 ...), empty if none
# within STACK_PROBE_SECS.
first_line() {
    local line
    # shellcheck disable=SC2016 # expanded by the inner bash
    line="$(timeout "$((PROBE_SECS + 1))" bash -c 'exec 3<>"/dev/tcp/$0/$1" && IFS= read -r -t "$2" line <&3 && printf "%s" "$line"' \
        "$1" "$2" "$PROBE_SECS" 2>/dev/null)" || true
    printf '%s' "${line%$'\r'}"
}

# FREE_PORT := a loopback port nothing answers on, from BASE upwards, not one already chosen.
CHOSEN_PORTS=" "
free_port() {
    local port
    for ((port = $1; port < $1 + 200; port++)); do
        [[ "$CHOSEN_PORTS" == *" $port "* ]] && continue
        if ! port_open 127.0.0.1 "$port"; then
            CHOSEN_PORTS+="$port "
            FREE_PORT="$port"
            return 0
        fi
    done
    die "no free loopback port in $1-$(($1 + 199))"
}

# PostgreSQL: a non-interactive login (-w: never a password prompt) with the configured URL on the
# maintenance database. Prints why not on failure.
pg_login() {
    local out rc=0
    out="$(PGCONNECT_TIMEOUT="$PROBE_SECS" timeout "$((PROBE_SECS * 2))" \
        psql -w -X "$PG_ADMIN_URL" -Atqc 'SELECT 1' </dev/null 2>&1)" || rc=$?
    ((rc == 0)) && return 0
    if ((rc == 124)); then
        printf 'no answer within %d s' "$((PROBE_SECS * 2))"
    else
        out="$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | head -n 1)"
        out="${out##*failed: }"
        printf '%s' "${out#psql: error: }"
    fi
    return 1
}

# ---------------------------------------------------------------------------------------------
# Deciding, per service: reuse (it works), start (ours, on the configured port or a free one), or
# refuse (one line each; the script stops after reporting them all).

REFUSALS=()
refuse() { REFUSALS+=("$*"); }
report() {
    case "$1" in
    "") ;;
    reuse) say "reusing: $2" ;;
    *) say "$2" ;;
    esac
}

decide_postgres() {
    local where="$PG_HOST:$PG_PORT" why
    if port_open "$PG_HOST" "$PG_PORT"; then
        if ! command -v psql >/dev/null 2>&1; then
            [[ "$MODE" == check ]] && {
                PG_STATE=unknown
                PG_WHY="something answers on $where; psql (postgresql-client) is needed to check it"
                return
            }
            apt_install postgresql-client
        fi
        if why="$(pg_login)"; then
            PG_STATE=reuse
            PG_WHY="PostgreSQL on $where accepts the login in DATABASE_URL"
            return
        fi
        if is_local_host "$PG_HOST" && [[ "$PG_USER" == postgres ]]; then
            free_port 54320
            PG_STATE=start
            PG_WHY="PostgreSQL on $where refuses a non-interactive login as postgres ($why; after a reboot often Debian's own cluster, which wants a password): starting our own on 127.0.0.1:$FREE_PORT instead"
            set_pg_address 127.0.0.1 "$FREE_PORT"
        else
            refuse "PostgreSQL on $where refuses the login in DATABASE_URL ($why): fix DATABASE_URL (environment or .env), or unset it to let stack.sh run its own"
        fi
    elif is_local_host "$PG_HOST"; then
        PG_STATE=start
        PG_WHY="nothing answers on $where: starting our own there"
    else
        refuse "PostgreSQL on $where does not answer, and stack.sh starts services only on this machine: start it or fix DATABASE_URL"
    fi
}

decide_nats() {
    local where="$NATS_HOST:$NATS_PORT" info problem
    if port_open "$NATS_HOST" "$NATS_PORT"; then
        info="$(first_line "$NATS_HOST" "$NATS_PORT")"
        if [[ "$info" == INFO* && "$info" == *'"jetstream":true'* ]]; then
            NATS_STATE=reuse
            NATS_WHY="NATS on $where announces JetStream"
            return
        elif [[ "$info" == INFO* ]]; then
            problem="a NATS server without JetStream (Debian's nats-server service runs without -js)"
        else
            problem="something that does not answer like NATS within ${PROBE_SECS} s"
        fi
        if is_local_host "$NATS_HOST" && [[ "$(url_authority "$NATS_URL")" != *@* ]]; then
            free_port 42220
            NATS_STATE=start
            NATS_WHY="$where holds $problem: starting our own on 127.0.0.1:$FREE_PORT instead"
            set_nats_address 127.0.0.1 "$FREE_PORT"
        else
            refuse "$where holds $problem; Larder needs JetStream: fix NATS_URL, or run that server with -js"
        fi
    elif is_local_host "$NATS_HOST"; then
        NATS_STATE=start
        NATS_WHY="nothing answers on $where: starting our own there"
    else
        refuse "NATS on $where does not answer, and stack.sh starts services only on this machine: start it or fix NATS_URL"
    fi
}

decide_smtp() {
    local where="$SMTP_HOST:$SMTP_PORT" greeting
    if port_open "$SMTP_HOST" "$SMTP_PORT"; then
        greeting="$(first_line "$SMTP_HOST" "$SMTP_PORT")"
        if [[ "$greeting" == 220* ]]; then
            SMTP_STATE=reuse
            SMTP_WHY="SMTP on $where greets (${greeting:0:60})"
            return
        fi
        if is_local_host "$SMTP_HOST"; then
            free_port 10250
            SMTP_PORT="$FREE_PORT"
            SMTP_STATE=start
            SMTP_WHY="$where gives no SMTP greeting within ${PROBE_SECS} s: starting our own maildev on 127.0.0.1:$SMTP_PORT instead"
        else
            refuse "$where gives no SMTP greeting within ${PROBE_SECS} s: fix SMTP_HOST/SMTP_PORT"
            return
        fi
    elif is_local_host "$SMTP_HOST"; then
        SMTP_STATE=start
        SMTP_WHY="nothing answers on $where: starting our own maildev there"
    else
        refuse "SMTP on $where does not answer, and stack.sh starts services only on this machine: fix SMTP_HOST/SMTP_PORT"
        return
    fi
    # Our maildev's web inbox: the configured port, or a free one when it is taken.
    if port_open 127.0.0.1 "$MAIL_WEB_PORT"; then
        free_port 18025
        MAIL_WEB_PORT="$FREE_PORT"
        SMTP_WHY+="; its inbox on 127.0.0.1:$MAIL_WEB_PORT (the configured one is taken)"
    fi
    MAIL_WEB_HOST=127.0.0.1
    MAIL_INBOX_URL="http://127.0.0.1:$MAIL_WEB_PORT"
}

decide() {
    decide_postgres
    decide_nats
    decide_smtp
    export SMTP_PORT MAIL_INBOX_URL
    report "$PG_STATE" "$PG_WHY"
    report "$NATS_STATE" "$NATS_WHY"
    report "$SMTP_STATE" "$SMTP_WHY"
    if ((${#REFUSALS[@]})); then
        local line
        for line in "${REFUSALS[@]}"; do
            printf 'stack.sh: error: %s\n' "$line" >&2
        done
        exit 1
    fi
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

# Debian's postgresql and nats-server packages enable OS services that would, at the next boot,
# hold 5432 (a cluster wanting a password over TCP) and 4222 (no JetStream). Right after
# installing them, turn that off: the new clusters start only by hand (start.conf `manual`), the
# units are disabled. (`systemctl enable nats-server`, start.conf `auto` undo it.)
# keep_os_services_off "START_CONFS_BEFORE" UNIT...
keep_os_services_off() {
    local before="$1" conf unit
    for conf in /etc/postgresql/*/*/start.conf; do
        [[ -f "$conf" && " $before " != *" $conf "* ]] || continue
        note "Debian's new PostgreSQL cluster ${conf#/etc/postgresql/} will not start at boot (start.conf: manual)"
        printf 'manual\n' | $SUDO tee "$conf" >/dev/null
    done
    for unit in "${@:2}"; do
        [[ -f "/lib/systemd/system/$unit.service" || -f "/usr/lib/systemd/system/$unit.service" ]] || continue
        note "disabling the OS service $unit (it would start at boot without what Larder needs)"
        if command -v deb-systemd-helper >/dev/null 2>&1; then
            $SUDO deb-systemd-helper disable "$unit.service" >/dev/null 2>&1 || true
        fi
        if command -v systemctl >/dev/null 2>&1; then
            $SUDO systemctl disable --quiet "$unit.service" >/dev/null 2>&1 || true
        fi
    done
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
    if [[ -n "$SUDO" ]] && ! command -v sudo >/dev/null 2>&1; then
        die "installing $* needs root (no sudo found)"
    fi
    say "installing $* (apt)"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300)
    # Do not let package scripts start system-wide services now: the script starts its own, on
    # loopback (and keep_os_services_off stops them from starting at boot).
    local policy=/usr/sbin/policy-rc.d added_policy=0 clusters
    clusters="$(printf '%s ' /etc/postgresql/*/*/start.conf)"
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && added_policy=1
    fi
    local ok=0
    heartbeat_start "apt-get install"
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
    heartbeat_stop
    if ((added_policy)); then
        $SUDO rm -f "$policy"
    fi
    ((ok)) || die "apt-get install $* failed"
    # Only the services of packages installed just now: one the user had before stays as it was.
    local units=() pkg
    for pkg in "$@"; do
        case "$pkg" in postgresql | nats-server) units+=("$pkg") ;; esac
    done
    keep_os_services_off "$clusters" "${units[@]}"
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

# The browser test's Node packages (playwright-core, pinned by tests/console/package-lock.json),
# installed once into tests/console/node_modules.
install_browser_test() {
    local dir="$ROOT/tests/console"
    if [[ ! -d "$dir/node_modules/playwright-core" ]]; then
        say "installing the browser test's Node packages (npm ci in tests/console)"
        heartbeat_start "npm ci"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
            die "npm ci in tests/console failed"
        heartbeat_stop
    fi
    CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
    export CHROMIUM
}

# `test` always needs maildev, Chromium and the browser test's packages, nats-server and PostgreSQL's server binaries (the notification and
# end-to-end tests start their own maildev, the fault and cluster tests their own nats-servers,
# the fault suite a PostgreSQL of its own, on free ports, whatever already listens); run/up only
# when the script starts that service itself.
install_missing() {
    local pkgs=() need_maildev=0
    [[ "$SMTP_STATE" == start || "$MODE" == test ]] && need_maildev=1
    if ! command -v psql >/dev/null 2>&1; then
        pkgs+=(postgresql-client)
    fi
    if [[ "$PG_STATE" == start || "$MODE" == test ]] && [[ -z "$(pg_bin_dir)" ]]; then
        pkgs+=(postgresql)
    fi
    if [[ "$NATS_STATE" == start || "$MODE" == test ]] && ! command -v nats-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/nats-server ]]; then
        pkgs+=(nats-server)
    fi
    # npm installs maildev; `test` also runs the browser test with node and npm's packages.
    if ! command -v npm >/dev/null 2>&1 &&
        { [[ "$MODE" == test ]] || { ((need_maildev)) && [[ -z "$(maildev_bin)" ]]; }; }; then
        pkgs+=(nodejs npm)
    fi
    # The console's browser test drives Debian's Chromium (Playwright cannot fetch its own here).
    if [[ "$MODE" == test ]] && [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
        pkgs+=(chromium)
    fi
    if ((${#pkgs[@]})); then
        apt_install "${pkgs[@]}"
    fi
    if ((need_maildev)) && [[ -z "$(maildev_bin)" ]]; then
        say "installing maildev@$MAILDEV_VERSION (npm)"
        local npm_sudo=""
        [[ -w "$(npm prefix -g)" ]] || npm_sudo="$SUDO"
        heartbeat_start "npm install"
        $npm_sudo npm install -g --no-audit --no-fund --loglevel=error "maildev@$MAILDEV_VERSION" ||
            die "npm install -g maildev@$MAILDEV_VERSION failed"
        heartbeat_stop
        hash -r
        [[ -n "$(maildev_bin)" ]] || die "maildev installed but not found on PATH"
    fi
    if ((need_maildev)); then
        MAILDEV="$(maildev_bin)"
        export MAILDEV
    fi
    if [[ "$MODE" == test ]]; then
        install_browser_test
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

# Run a command as the PostgreSQL OS user when we are root (initdb/postgres refuse root), from /
# (the project may be where that user cannot go, e.g. under /root: no "could not change directory").
as_pg() {
    if [[ ${EUID} -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

start_postgres() {
    [[ "$PG_STATE" == reuse ]] && return
    PG_BIN="$(pg_bin_dir)"
    [[ -n "$PG_BIN" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    local home="$STACK"
    if [[ ${EUID} -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "the postgres OS user does not exist (is PostgreSQL installed?)"
        chmod a+rx "$STACK"
        if ! as_pg test -x "$STACK"; then
            # The project lives where the postgres user cannot reach it (e.g. under /root).
            home="/var/tmp/larder-stack-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
            mkdir -p "$home"
            chmod 755 "$home"
            note "the postgres user cannot reach $STACK: PostgreSQL's data and log go to $home"
        fi
    fi
    local data="$home/pg" sock="$home/run"
    PG_LOG="$LOGS/postgres.log"
    [[ "$home" == "$STACK" ]] || PG_LOG="$home/postgres.log"
    if ((${#sock} > 90)); then
        sock="$(mktemp -d /tmp/larder-pg.XXXXXX)"
        TEMP_DIRS+=("$sock")
    fi
    mkdir -p "$data" "$sock"
    touch "$PG_LOG"
    if [[ ${EUID} -eq 0 ]]; then
        chown postgres: "$data" "$sock" "$PG_LOG"
    fi
    chmod 700 "$data"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        say "initialising PostgreSQL in $data"
        as_pg "$PG_BIN/initdb" -D "$data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 >>"$PG_LOG" 2>&1 ||
            {
                tail -n 20 "$PG_LOG" >&2
                die "initdb failed (log: $PG_LOG)"
            }
    fi
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT (data in $data)"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$PG_LOG" -w -t "$WAIT_SECS" \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $sock" start >/dev/null ||
        {
            tail -n 20 "$PG_LOG" >&2
            die "PostgreSQL did not start (log: $PG_LOG)"
        }
    STARTED_PG_DATA="$data"
    LOG_FILES+=("PostgreSQL: $PG_LOG")
    wait_port PostgreSQL 127.0.0.1 "$PG_PORT" "" "$PG_LOG"
}

start_nats() {
    [[ "$NATS_STATE" == reuse ]] && return
    local bin log="$LOGS/nats.log" args
    bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
    mkdir -p "$STACK/nats"
    args=(-a 127.0.0.1 -p "$NATS_PORT")
    # JetStream fsyncs its files every two minutes by default: a power loss can lose what it had
    # acknowledged. From 2.10 on, `sync_interval: always` fsyncs every write (cost measured in
    # docs/PERFORMANCE.md); Debian's 2.9 has no such setting (see the README).
    local version major minor
    version="$("$bin" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
    read -r major minor <<<"${version:-0 0}"
    if ((major > 2 || (major == 2 && minor >= 10))); then
        printf 'jetstream { store_dir: "%s", sync_interval: always }\n' "$STACK/nats" >"$STACK/nats.conf"
        args+=(-c "$STACK/nats.conf")
    else
        args+=(-js -sd "$STACK/nats")
        note "nats-server $major.$minor has no sync_interval: JetStream fsyncs every 2 minutes (README: \"Durability on power loss\")"
    fi
    if [[ -n "$NATS_MONITOR_PORT" ]] && port_open 127.0.0.1 "$NATS_MONITOR_PORT"; then
        free_port 18222
        note "the NATS monitoring port $NATS_MONITOR_PORT is taken: ours goes on $FREE_PORT"
        NATS_MONITOR_PORT="$FREE_PORT"
    fi
    [[ -n "$NATS_MONITOR_PORT" ]] && args+=(-m "$NATS_MONITOR_PORT")
    say "starting NATS on 127.0.0.1:$NATS_PORT (JetStream in $STACK/nats)"
    detached "$bin" "${args[@]}" >>"$log" 2>&1 </dev/null &
    STARTED_PIDS+=("$!")
    STARTED_NAMES+=(nats-server)
    LOG_FILES+=("NATS: $log")
    wait_port NATS 127.0.0.1 "$NATS_PORT" "$!" "$log"
}

start_smtp() {
    [[ "$SMTP_STATE" == reuse ]] && return
    local log="$LOGS/maildev.log" mail_dir
    # Its own mail directory, removed on exit (maildev's default, $TMPDIR/maildev-<pid>, stays behind).
    mail_dir="$(mktemp -d "${TMPDIR:-/tmp}/larder-maildev.XXXXXX")"
    TEMP_DIRS+=("$mail_dir")
    say "starting maildev (SMTP 127.0.0.1:$SMTP_PORT, inbox $MAIL_INBOX_URL)"
    detached "$MAILDEV" --smtp "$SMTP_PORT" --web "$MAIL_WEB_PORT" --ip 127.0.0.1 \
        --mail-directory "$mail_dir" >>"$log" 2>&1 </dev/null &
    local pid=$!
    STARTED_PIDS+=("$pid")
    STARTED_NAMES+=(maildev)
    LOG_FILES+=("maildev: $log")
    wait_port maildev 127.0.0.1 "$SMTP_PORT" "$pid" "$log"
    wait_port "maildev web" 127.0.0.1 "$MAIL_WEB_PORT" "$pid" "$log"
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

ensure_database() {
    command -v psql >/dev/null 2>&1 || die "psql not found"
    local out
    if ! out="$(PGCONNECT_TIMEOUT="$PROBE_SECS" psql -w -X "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 \
        -Atqc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" </dev/null 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "cannot log in to PostgreSQL with DATABASE_URL ($DATABASE_URL): fix it (e.g. in .env)"
    fi
    if [[ "$out" != 1 ]]; then
        say "creating database $PG_DB"
        PGCONNECT_TIMEOUT="$PROBE_SECS" psql -w -X "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 \
            -qc "CREATE DATABASE \"$PG_DB\"" </dev/null >/dev/null
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
        echo "  API               http://$host:$port/  (redirects to Swagger UI)"
        echo "  Swagger UI        http://$host:$port/docs/"
    fi
    echo "  Mail inbox        $MAIL_INBOX_URL$(port_open "$MAIL_WEB_HOST" "$MAIL_WEB_PORT" || printf '  (not answering)')"
    if [[ -n "$NATS_MONITOR_PORT" ]] && port_open "$NATS_HOST" "$NATS_MONITOR_PORT"; then
        echo "  NATS monitoring   http://$NATS_HOST:$NATS_MONITOR_PORT  (/jsz?streams=true&consumers=true)"
    else
        echo "  NATS monitoring   none: the reused NATS on $NATS_HOST:$NATS_PORT has no monitoring port (-m 8222)"
    fi
    echo "  PostgreSQL        $DATABASE_URL"
    echo "  NATS              $NATS_URL"
    if ((${#LOG_FILES[@]})); then
        echo "  Logs of what this script started:"
        local line
        for line in "${LOG_FILES[@]}"; do
            echo "    $line"
        done
    else
        echo "  Logs: this script started no service (everything was reused)"
    fi
    [[ "${1:-}" == app ]] && echo "    larder: this terminal"
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
    # The debug build by default: the one `./stack.sh test` builds too (no second, release build).
    local profile="${STACK_PROFILE:-dev}" dir
    case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
    local larder="${CARGO_TARGET_DIR:-$ROOT/target}/$dir/larder"
    say "building larder (cargo build --profile $profile --bin larder)"
    heartbeat_start "cargo build"
    cargo build --profile "$profile" --bin larder
    heartbeat_stop
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
    local args=(test) arg selects=0 build_args=()
    for arg in "$@"; do
        [[ "$arg" == -- ]] && break
        build_args+=("$arg")
        case "$arg" in -p | -p* | --package | --package=* | --workspace | --all) selects=1 ;; esac
    done
    ((selects)) || args+=(--workspace)
    say "cargo ${args[*]}${*:+ $*}"
    local rc=0
    # Build first with a heartbeat (linking the test binaries is long and silent), then run.
    heartbeat_start "building the tests"
    cargo "${args[@]}" --no-run "${build_args[@]}" || rc=$?
    heartbeat_stop
    if ((rc == 0)); then
        cargo "${args[@]}" "$@" || rc=$?
    fi
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

# What run/test would do, and the URLs they would hand the services; nothing is installed or started.
cmd_check() {
    decide
    echo "  DATABASE_URL=$DATABASE_URL"
    local var
    for var in "${SERVICE_DATABASE_VARS[@]}"; do
        [[ -n "${!var:-}" ]] && echo "  $var=${!var}"
    done
    echo "  NATS_URL=$NATS_URL"
    echo "  SMTP_HOST=$SMTP_HOST SMTP_PORT=$SMTP_PORT MAIL_INBOX_URL=$MAIL_INBOX_URL"
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
    run | test | up | check) ;;
    -h | --help | help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
    MODE="$cmd"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    configure
    PG_BIN=""
    PG_LOG="$LOGS/postgres.log"
    PG_STATE="" NATS_STATE="" SMTP_STATE="" PG_WHY="" NATS_WHY="" SMTP_WHY=""
    "cmd_$cmd" "$@"
}

# Sourced (by tests/stack_script.rs) it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
