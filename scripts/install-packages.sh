#!/usr/bin/env bash
# Installs the Debian packages the tests and the local mode need, only those missing
# (--no-install-recommends: Chromium alone would otherwise pull in a desktop's worth).
# Idempotent: a second run installs nothing. Kamailio is pinned to Debian 12's 5.6.3.
set -euo pipefail
source "$(dirname "$0")/env.sh"

KAMAILIO_VERSION="${KWC_KAMAILIO_VERSION:-5.6.3-2}"
pkgs=(kamailio kamailio-presence-modules kamailio-websocket-modules kamailio-postgres-modules
      kamailio-mysql-modules kamailio-utils-modules kamailio-extra-modules kamailio-json-modules
      kamailio-tls-modules
      postgresql postgresql-client mariadb-server mariadb-client ca-certificates)
pkgs+=(debootstrap zstd) # the Kamailio 6.0.1 chroot (scripts/kamailio-v6.sh)
pkgs+=(chromium libnss3-tools) # the browser tests (test/browser/): headless Chromium, certutil for its NSS trust
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  log "packages: all present"
else
  need_root "installing ${missing[*]}"
  log "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Installing postgresql/mariadb-server must not start or enable system instances we don't own;
  # policy-rc.d 101 tells invoke-rc.d to leave services alone during this install only.
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
  trap '[ $had_policy = 0 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  with_version=()
  for p in "${missing[@]}"; do
    case "$p" in kamailio*) with_version+=("$p=$KAMAILIO_VERSION") ;; *) with_version+=("$p") ;; esac
  done
  apt-get install -y -qq --no-install-recommends "${with_version[@]}" >/dev/null
fi
v=$(dpkg-query -W -f='${Version}' kamailio)
log "kamailio $v"
for f in /usr/share/kamailio/postgres/presence-create.sql /usr/share/kamailio/mysql/presence-create.sql; do
  [ -f "$f" ] || die "schema file $f missing after install"
done
