#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs beyond `npm ci`: the Debian packages (Kamailio
# 5.6.3 and its modules, PostgreSQL and MariaDB servers, Chromium and certutil) and the project's own database
# instances with the Kamailio schema. Idempotent; safe to re-run.
#   scripts/setup.sh                         what the tests need (also the Kamailio 6.0.1 chroot)
#   scripts/setup.sh --without-kamailio-v6   what `npm start` runs (no chroot: ~1 min, 336 MB less)
set -euo pipefail
source "$(dirname "$0")/env.sh"
with_v6=1
case "${1:-}" in
  "") ;;
  --without-kamailio-v6) with_v6=0 ;;
  *) die "usage: scripts/setup.sh [--without-kamailio-v6] (got '$1')" ;;
esac
bash "$KWC_ROOT/scripts/install-packages.sh"
bash "$KWC_ROOT/scripts/db.sh" start all
if [ "$with_v6" = 1 ]; then bash "$KWC_ROOT/scripts/kamailio-v6.sh" ensure; fi # built once (~30 s), then a file check
log "setup done: PostgreSQL 127.0.0.1:$KWC_PG_PORT, MariaDB 127.0.0.1:$KWC_MY_PORT, state in $KWC_STATE_DIR"
