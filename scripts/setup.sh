#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs beyond `npm ci`: the Debian packages (Kamailio
# 5.6.3 and its modules, PostgreSQL and MariaDB servers) and the project's own database
# instances with the Kamailio schema. Idempotent; safe to re-run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$KWC_ROOT/scripts/install-packages.sh"
bash "$KWC_ROOT/scripts/db.sh" start all
bash "$KWC_ROOT/scripts/kamailio-v6.sh" ensure # built once (~30 s), then a file check
log "setup done: PostgreSQL 127.0.0.1:$KWC_PG_PORT, MariaDB 127.0.0.1:$KWC_MY_PORT, state in $KWC_STATE_DIR"
