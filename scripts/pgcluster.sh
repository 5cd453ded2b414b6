#!/usr/bin/env bash
# Manage the project's private PostgreSQL + PostGIS + pgRouting cluster under var/.
#
#   scripts/pgcluster.sh ensure   install missing packages, initdb, start, create db + extensions
#   scripts/pgcluster.sh start    start an existing cluster
#   scripts/pgcluster.sh stop     stop it
#   scripts/pgcluster.sh status   print whether it runs
#   scripts/pgcluster.sh url      print the connection URL the service uses
#
# Layout: var/pg (data directory), var/run (unix socket, mode 0700), var/log/postgresql.log.
# Settings (environment): GISAPP_PG_PORT (default 54329), GISAPP_PG_BINDIR (auto-detected),
# GISAPP_PG_DB (default gisapp).
#
# The cluster listens on 127.0.0.1 only. Unix-socket connections are trusted because only
# the cluster's OS user and root can enter var/run; TCP connections need the generated
# password in var/pg_password.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$ROOT/var"
PGDATA="$VAR/pg"
SOCKDIR="$VAR/run"
LOGFILE="$VAR/log/postgresql.log"
PORT="${GISAPP_PG_PORT:-54329}"
DB="${GISAPP_PG_DB:-gisapp}"
PG_MAJOR=15
DEB_PACKAGES="postgresql-$PG_MAJOR postgresql-$PG_MAJOR-postgis-3 postgresql-$PG_MAJOR-pgrouting"

log() { printf 'pgcluster: %s\n' "$*" >&2; }

find_bindir() {
  if [ -n "${GISAPP_PG_BINDIR:-}" ]; then echo "$GISAPP_PG_BINDIR"; return; fi
  if [ -x "/usr/lib/postgresql/$PG_MAJOR/bin/initdb" ]; then echo "/usr/lib/postgresql/$PG_MAJOR/bin"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  echo ""
}

sharedir_for() {  # $1 = bindir
  local sd
  sd="$("$1/pg_config" --sharedir 2>/dev/null || true)"
  [ -n "$sd" ] || sd="/usr/share/postgresql/$PG_MAJOR"
  echo "$sd"
}

have_everything() {
  # The extension control files AND their libraries: Debian ships pgRouting's SQL scripts
  # and its shared library in separate packages.
  local bindir sharedir libdir
  bindir="$(find_bindir)"
  [ -n "$bindir" ] || return 1
  sharedir="$(sharedir_for "$bindir")"
  libdir="$("$bindir/pg_config" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/$PG_MAJOR/lib")"
  [ -f "$sharedir/extension/postgis.control" ] && [ -f "$sharedir/extension/pgrouting.control" ] \
    && compgen -G "$libdir/postgis-3*.so" >/dev/null && compgen -G "$libdir/libpgrouting*.so" >/dev/null
}

install_packages() {
  have_everything && return 0
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL $PG_MAJOR with PostGIS 3 and pgRouting is missing and this is not root."
    log "Install the Debian packages as root:  apt-get install -y $DEB_PACKAGES"
    log "or use conda:  conda env create -f environment.yml && conda activate gisapp"
    log "(then GISAPP_PG_BINDIR=\$(pg_config --bindir) is found automatically)."
    exit 1
  fi
  log "installing $DEB_PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || log "apt-get update failed; trying the install with the cached lists"
  # --no-upgrade: never replace the binaries of a server that may be running
  apt-get install -y -qq --no-upgrade --no-install-recommends $DEB_PACKAGES >/dev/null
  have_everything || { log "packages installed but PostGIS/pgRouting still not found"; exit 1; }
}

# The OS user that runs the server: PostgreSQL refuses to run as root.
run_user() {
  if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

as_owner() {  # run a command as the cluster's OS user
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

prepare_dirs() {
  mkdir -p "$VAR/log" "$SOCKDIR"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { log "the Debian 'postgres' user is missing"; exit 1; }
    # The postgres user must be able to reach var/. When the checkout lives somewhere
    # it cannot traverse (e.g. under /root), keep the data in /var/tmp and link it.
    if ! runuser -u postgres -- test -x "$VAR"; then
      local alt="/var/tmp/gisapp-$(echo "$ROOT" | md5sum | cut -c1-12)"
      log "postgres cannot enter $VAR; keeping the cluster in $alt (linked from var/)"
      mkdir -p "$alt/pg" "$alt/run" "$alt/log"
      chown -R postgres: "$alt"
      chmod 700 "$alt/run"
      [ -L "$PGDATA" ] || { rmdir "$PGDATA" 2>/dev/null || true; ln -sfn "$alt/pg" "$PGDATA"; }
      [ -L "$SOCKDIR" ] || { rmdir "$SOCKDIR" 2>/dev/null || true; ln -sfn "$alt/run" "$SOCKDIR"; }
      LOGFILE="$alt/log/postgresql.log"
      return
    fi
    mkdir -p "$PGDATA"
    chown postgres: "$PGDATA" "$SOCKDIR"
    touch "$LOGFILE"; chown postgres: "$LOGFILE"
  else
    mkdir -p "$PGDATA"
  fi
  chmod 700 "$PGDATA" "$SOCKDIR" 2>/dev/null || true
}

initdb_if_needed() {
  local bindir="$1"
  [ -f "$PGDATA/PG_VERSION" ] && return 0
  log "initdb $PGDATA"
  as_owner "$bindir/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  cat >>"$PGDATA/postgresql.conf" <<EOF

# --- gisapp private cluster ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCKDIR'
unix_socket_permissions = 0770
max_connections = 200
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 256MB
fsync = on
synchronous_commit = off
log_min_messages = warning
EOF
}

is_running() {
  local bindir="$1"
  as_owner "$bindir/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

start() {
  local bindir
  bindir="$(find_bindir)"
  [ -n "$bindir" ] || { log "PostgreSQL binaries not found; run 'make setup'"; exit 1; }
  if is_running "$bindir"; then return 0; fi
  prepare_dirs
  rm -f "$PGDATA/postmaster.pid.stale"
  log "starting on 127.0.0.1:$PORT (socket in $SOCKDIR)"
  as_owner "$bindir/pg_ctl" -D "$PGDATA" -l "$LOGFILE" -w -t 60 \
    -o "-p $PORT" start >/dev/null || { log "start failed; see $LOGFILE"; tail -20 "$LOGFILE" >&2; exit 1; }
}

psql_admin() {  # psql as the superuser over the socket (quiet: no NOTICEs)
  local bindir
  bindir="$(find_bindir)"
  PGOPTIONS="-c client_min_messages=warning" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U postgres "$@"
}

create_db() {
  local pwfile="$VAR/pg_password"
  if [ ! -s "$pwfile" ]; then
    (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$pwfile")
  fi
  local pw
  pw="$(cat "$pwfile")"
  # The service role owns its databases; it is a superuser only inside this private,
  # localhost-only cluster (so tests can create and drop their own databases with
  # extensions). Use GISAPP_DATABASE_URL with a least-privilege role in production.
  psql_admin -d postgres -v pw="$pw" <<'SQL'
SELECT format('CREATE ROLE gisapp LOGIN SUPERUSER PASSWORD %L', :'pw')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gisapp') \gexec
SQL
  if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
    log "creating database $DB"
    psql_admin -d postgres -c "CREATE DATABASE \"$DB\" OWNER gisapp"
  fi
  psql_admin -d "$DB" -c "CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS pgrouting;"
}

url() {
  echo "postgresql://gisapp@/$DB?host=$SOCKDIR&port=$PORT"
}

case "${1:-ensure}" in
  ensure)
    install_packages
    prepare_dirs
    initdb_if_needed "$(find_bindir)"
    start
    create_db
    ;;
  install) install_packages ;;
  start) start ;;
  stop)
    bindir="$(find_bindir)"
    if [ -n "$bindir" ] && [ -f "$PGDATA/PG_VERSION" ] && is_running "$bindir"; then
      as_owner "$bindir/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null && log "stopped"
    else
      log "not running"
    fi
    ;;
  status)
    bindir="$(find_bindir)"
    if [ -n "$bindir" ] && [ -f "$PGDATA/PG_VERSION" ] && is_running "$bindir"; then echo running; else echo stopped; exit 3; fi
    ;;
  url) url ;;
  *) echo "usage: $0 ensure|install|start|stop|status|url" >&2; exit 2 ;;
esac
