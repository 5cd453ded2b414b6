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
# When the checkout lies where the 'postgres' OS user cannot enter (a home directory with mode
# 700, as /root is), the cluster lives in /var/tmp/gisapp-<hash of the checkout path> and
# var/pg, var/run are links to it; the server is only ever given the real paths.
# Settings (environment): GISAPP_PG_PORT (default: var/pg_port, written the first time; 54329
# unless another cluster has it, then the next free port), GISAPP_PG_BINDIR (auto-detected),
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
PORTFILE="$VAR/pg_port"
DEFAULT_PORT=54329
if [ -n "${GISAPP_PG_PORT:-}" ]; then PORT="$GISAPP_PG_PORT"; PORT_FROM="GISAPP_PG_PORT"
elif [ -s "$PORTFILE" ]; then PORT="$(cat "$PORTFILE")"; PORT_FROM="$PORTFILE"
else PORT=""; PORT_FROM=""
fi
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

# Where the cluster really lives: var/ when the server's OS user can enter it, else /var/tmp.
resolve_paths() {
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$ROOT"; then
    local alt="/var/tmp/gisapp-$(echo "$ROOT" | md5sum | cut -c1-12)"
    PGDATA="$alt/pg"; SOCKDIR="$alt/run"; LOGFILE="$alt/log/postgresql.log"; ALT="$alt"
  else
    ALT=""
  fi
}

prepare_dirs() {
  mkdir -p "$VAR/log"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { log "the Debian 'postgres' user is missing"; exit 1; }
    if [ -n "$ALT" ]; then
      # var/ is out of the server's reach: keep the cluster in /var/tmp and link it from var/.
      [ -d "$ALT/pg" ] || log "postgres cannot enter $ROOT; keeping the cluster in $ALT (linked from var/)"
      mkdir -p "$ALT/pg" "$ALT/run" "$ALT/log"
      touch "$LOGFILE"
      chown -R postgres: "$ALT"
      chmod 700 "$ALT/pg" "$ALT/run"
      [ -L "$VAR/pg" ] || { rmdir "$VAR/pg" 2>/dev/null || true; ln -sfn "$ALT/pg" "$VAR/pg"; }
      [ -L "$VAR/run" ] || { rmdir "$VAR/run" 2>/dev/null || true; ln -sfn "$ALT/run" "$VAR/run"; }
      return
    fi
    mkdir -p "$PGDATA" "$SOCKDIR"
    chown postgres: "$PGDATA" "$SOCKDIR"
    touch "$LOGFILE"; chown postgres: "$LOGFILE"
  else
    mkdir -p "$PGDATA" "$SOCKDIR"
  fi
  chmod 700 "$PGDATA" "$SOCKDIR" 2>/dev/null || true
}

port_taken() {  # something listens on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Choose the port the first time (54329, else the next free one) and remember it in var/pg_port;
# a port given by GISAPP_PG_PORT or remembered is used as it is, and a clash is explained.
choose_port() {
  AUTO_PORT=""
  if [ -z "$PORT" ]; then
    AUTO_PORT=1
    PORT=$DEFAULT_PORT
    while port_taken "$PORT"; do PORT=$((PORT + 1)); done
    [ "$PORT" = "$DEFAULT_PORT" ] || log "port $DEFAULT_PORT is taken (another checkout's cluster?); using $PORT"
    echo "$PORT" >"$PORTFILE"
    PORT_FROM="$PORTFILE"
  elif port_taken "$PORT"; then
    log "port $PORT (from $PORT_FROM) is taken by another server: set GISAPP_PG_PORT to a free port"
    log "(or delete $PORTFILE to let this script pick one), then run make again"
    exit 1
  fi
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
  choose_port
  rm -f "$PGDATA/postmaster.pid.stale"
  local tries=0
  while true; do
    log "starting on 127.0.0.1:$PORT (socket in $SOCKDIR)"
    local mark
    mark=$(wc -l <"$LOGFILE" 2>/dev/null || echo 0)
    if as_owner "$bindir/pg_ctl" -D "$PGDATA" -l "$LOGFILE" -w -t 60 -o "-p $PORT" start >/dev/null; then
      return 0
    fi
    # The port can be held for a few seconds after a server on it stopped, or be taken between
    # the probe and the bind (the ports are in the ephemeral range): wait and retry; a port
    # chosen here moves on to the next free one after a few tries.
    if [ "$tries" -lt 25 ] && tail -n +"$((mark + 1))" "$LOGFILE" | grep -q "Address already in use"; then
      tries=$((tries + 1))
      if [ -n "$AUTO_PORT" ] && [ "$tries" -gt 3 ]; then
        PORT=$((PORT + 1))
        while port_taken "$PORT"; do PORT=$((PORT + 1)); done
        echo "$PORT" >"$PORTFILE"
      elif [ "$tries" -gt 8 ]; then
        log "port $PORT stays taken: set GISAPP_PG_PORT to a free port"; exit 1
      else
        sleep 1
      fi
      continue
    fi
    log "start failed; see $LOGFILE"; tail -20 "$LOGFILE" >&2; exit 1
  done
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
  echo "postgresql://gisapp@/$DB?host=$SOCKDIR&port=${PORT:-$DEFAULT_PORT}"
}

resolve_paths
# A cluster that already runs keeps its port (make stop; make run after a machine restart).
if [ -z "$PORT" ] && [ -f "$PGDATA/postmaster.pid" ]; then PORT="$(sed -n 4p "$PGDATA/postmaster.pid" 2>/dev/null)"; fi

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
