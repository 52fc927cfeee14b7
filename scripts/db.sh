#!/usr/bin/env bash
# The project's own PostgreSQL and MariaDB instances (data under $KWC_STATE_DIR, ports
# $KWC_PG_PORT / $KWC_MY_PORT, loopback only). Never touches the system instances.
#   scripts/db.sh start|stop|status [pg|mysql]     (default: both)
# `start` is idempotent: it initialises a data directory once, starts the server if it is not
# answering, and (re)creates the Kamailio database, user and schema if they are missing.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cmd="${1:-status}"; which="${2:-all}"

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$KWC_PG_PORT" 2>/dev/null; }
# ping answers 0 whenever a server is alive on the port (even if it refuses the login)
my_ready() { mariadb-admin --no-defaults -h 127.0.0.1 -P "$KWC_MY_PORT" -uroot ping >/dev/null 2>&1; }
wait_for() { local i; for i in $(seq 1 150); do "$1" && return 0; sleep 0.2; done; die "$2 did not come up (log: $3)"; }
psql_admin() { "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$KWC_PG_PORT" -U postgres "$@"; }
# root over our own socket when this state dir runs the server (a fresh install has only
# root@localhost), else over TCP (root@127.0.0.1, created below on first start)
my_admin() {
  if [ -S "$KWC_MY_SOCK" ]; then mariadb --no-defaults -uroot -S "$KWC_MY_SOCK" "$@"
  else mariadb --no-defaults -uroot -h 127.0.0.1 -P "$KWC_MY_PORT" "$@"; fi
}

pg_start() {
  if pg_ready; then
    log "pg: answering on 127.0.0.1:$KWC_PG_PORT"
  else
    need_root "starting the project's PostgreSQL"
    mkdir -p "$KWC_PG_DIR"; chown postgres: "$KWC_PG_DIR"
    if [ ! -f "$KWC_PG_DIR/data/PG_VERSION" ]; then
      log "pg: initdb in $KWC_PG_DIR/data"
      su postgres -s /bin/sh -c "'$(pg_bin)/initdb' -D '$KWC_PG_DIR/data' -A trust -U postgres -E UTF8 --locale=C.UTF-8" >/dev/null
    fi
    log "pg: starting on 127.0.0.1:$KWC_PG_PORT"
    su postgres -s /bin/sh -c "'$(pg_bin)/pg_ctl' -D '$KWC_PG_DIR/data' -l '$KWC_PG_DIR/pg.log' -w -o \"-c listen_addresses=127.0.0.1 -c port=$KWC_PG_PORT -c unix_socket_directories='$KWC_PG_DIR' -c max_connections=400 -c fsync=off -c synchronous_commit=off\" start" >/dev/null
    wait_for pg_ready "PostgreSQL" "$KWC_PG_DIR/pg.log"
  fi
  if [ "$(psql_admin -tAc "select 1 from pg_roles where rolname='$KWC_DB_USER'")" != 1 ]; then
    psql_admin -c "create role \"$KWC_DB_USER\" login createdb password '$KWC_DB_PASSWORD'"
  fi
  if [ "$(psql_admin -tAc "select 1 from pg_database where datname='$KWC_DB_NAME'")" != 1 ]; then
    log "pg: creating database $KWC_DB_NAME from /usr/share/kamailio/postgres"
    psql_admin -c "create database \"$KWC_DB_NAME\" owner \"$KWC_DB_USER\""
    for f in standard-create.sql presence-create.sql; do
      PGPASSWORD="$KWC_DB_PASSWORD" "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$KWC_PG_PORT" \
        -U "$KWC_DB_USER" -d "$KWC_DB_NAME" -f "/usr/share/kamailio/postgres/$f" >/dev/null
    done
  fi
}
pg_stop() {
  [ -f "$KWC_PG_DIR/data/postmaster.pid" ] || { log "pg: not running"; return 0; }
  su postgres -s /bin/sh -c "'$(pg_bin)/pg_ctl' -D '$KWC_PG_DIR/data' -m fast -w stop" >/dev/null && log "pg: stopped"
}

my_start() {
  if my_ready; then
    log "mariadb: answering on 127.0.0.1:$KWC_MY_PORT"
  else
    need_root "starting the project's MariaDB"
    mkdir -p "$KWC_MY_DIR"; chown mysql: "$KWC_MY_DIR"
    if [ ! -d "$KWC_MY_DIR/data/mysql" ]; then
      log "mariadb: install-db in $KWC_MY_DIR/data"
      mariadb-install-db --no-defaults --user=mysql --datadir="$KWC_MY_DIR/data" \
        --auth-root-authentication-method=normal --skip-test-db >/dev/null
    fi
    log "mariadb: starting on 127.0.0.1:$KWC_MY_PORT"
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$KWC_MY_DIR/data" \
      --socket="$KWC_MY_SOCK" --pid-file="$KWC_MY_DIR/mariadbd.pid" --port="$KWC_MY_PORT" \
      --bind-address=127.0.0.1 --skip-name-resolve --max-connections=400 \
      --innodb-flush-log-at-trx-commit=2 --log-error="$KWC_MY_DIR/mariadbd.err" \
      </dev/null >/dev/null 2>&1 &
    wait_for my_ready "MariaDB" "$KWC_MY_DIR/mariadbd.err"
  fi
  # root over TCP for the project's admin tooling (tests create their own databases)
  my_admin -e "create user if not exists 'root'@'127.0.0.1'; grant all on *.* to 'root'@'127.0.0.1' with grant option;
    create user if not exists '$KWC_DB_USER'@'127.0.0.1' identified by '$KWC_DB_PASSWORD';
    create user if not exists '$KWC_DB_USER'@'localhost' identified by '$KWC_DB_PASSWORD';
    grant all on \`$KWC_DB_NAME\`.* to '$KWC_DB_USER'@'127.0.0.1';
    grant all on \`$KWC_DB_NAME\`.* to '$KWC_DB_USER'@'localhost';
    grant all on \`kwc\\_%\`.* to '$KWC_DB_USER'@'127.0.0.1';"
  if [ -z "$(my_admin -N -e "show databases like '$KWC_DB_NAME'")" ]; then
    log "mariadb: creating database $KWC_DB_NAME from /usr/share/kamailio/mysql"
    my_admin -e "create database \`$KWC_DB_NAME\` character set utf8mb4"
    for f in standard-create.sql presence-create.sql; do
      my_admin "$KWC_DB_NAME" < "/usr/share/kamailio/mysql/$f"
    done
  fi
}
my_stop() {
  local pidf="$KWC_MY_DIR/mariadbd.pid"
  [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null || { log "mariadb: not running"; return 0; }
  local pid; pid=$(cat "$pidf"); kill "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || { log "mariadb: stopped"; return 0; }; sleep 0.2; done
  die "mariadb (pid $pid) did not stop"
}

case "$cmd:$which" in
  start:pg) pg_start ;; start:mysql) my_start ;; start:all) pg_start; my_start ;;
  stop:pg) pg_stop ;; stop:mysql) my_stop ;; stop:all) pg_stop; my_stop ;;
  status:*) pg_ready && echo "pg: up on 127.0.0.1:$KWC_PG_PORT" || echo "pg: down"
            my_ready && echo "mariadb: up on 127.0.0.1:$KWC_MY_PORT" || echo "mariadb: down" ;;
  *) die "usage: scripts/db.sh start|stop|status [pg|mysql]" ;;
esac
