#!/usr/bin/env bash
# Kamailio 6.0.1 (Debian 13 trixie) as a second runtime of the test bed: a debootstrap chroot
# under $KWC_STATE_DIR/kamailio-6.0.1/root, built once and cached. The trixie binary cannot run
# on Debian 12 directly (it needs GLIBC_2.38), hence the chroot; test/helpers/kamailio-runtime-v6.ts
# starts it. Evidence and timings: ../shared/kamailio-ref/v6.0/FINDINGS-6.0.md.
#   scripts/kamailio-v6.sh ensure   ready chroot → nothing (fast); else restore the tarball; else build + pack
#   scripts/kamailio-v6.sh build    (re)build from the Debian mirror, then pack the tarball
#   scripts/kamailio-v6.sh check    print the Kamailio version inside the chroot
#   scripts/kamailio-v6.sh path     print the chroot's path
# Env: KWC_DEBIAN_MIRROR / KWC_DEBIAN_SECURITY_MIRROR (default: the archive and security archive
#      the host's apt sources list, one-line or deb822 form; trixie and trixie-security come from
#      those same archives even when the host lists only bookworm),
#      KWC_V6_TARBALL (default <dir>/chroot.tar.zst: a slim zstd copy of the chroot, restored
#      without network when the chroot is missing, e.g. from a CI cache).
# Pins kamailio 6.0.1-1+deb13u2 (trixie-security); 6.0.1-1+deb13u1 (trixie) if that suite is not
# reachable. Needs root, debootstrap and zstd (scripts/install-packages.sh installs them).
set -euo pipefail
source "$(dirname "$0")/env.sh"

V6_DIR="$KWC_STATE_DIR/kamailio-6.0.1"
V6_ROOT="$V6_DIR/root"
V6_STAMP="$V6_ROOT/.kwc-kamailio-v6"
V6_TARBALL="${KWC_V6_TARBALL:-$V6_DIR/chroot.tar.zst}"
MIRROR="$(debian_mirror)"                    # the host's own archive (scripts/env.sh)
SECURITY_MIRROR="$(debian_security_mirror)"
PIN_SECURITY="6.0.1-1+deb13u2"
PIN_MAIN="6.0.1-1+deb13u1"
# what kamailio/kamailio.cfg loads (jansson and uuid are in extra-modules, http_client in utils)
PKGS=(kamailio kamailio-presence-modules kamailio-websocket-modules kamailio-postgres-modules
  kamailio-mysql-modules kamailio-utils-modules kamailio-extra-modules)
# left out of the tarball: apt caches and lists, docs, man pages, locales
EXCLUDES=(--exclude=./var/cache/apt/archives/*.deb --exclude=./var/cache/apt/*.bin
  --exclude=./var/lib/apt/lists/*_Packages --exclude=./var/lib/apt/lists/*_Sources
  --exclude=./var/lib/apt/lists/*Release --exclude=./usr/share/doc/* --exclude=./usr/share/man/*
  --exclude=./usr/share/locale/* --exclude=./core --exclude=./proc/* --exclude=./tmp/*)

# A failed debootstrap can leave /proc or /sys mounted inside the target: unmount anything under
# $1 before deleting it, so rm -rf never walks into a live filesystem.
remove_tree() {
  local m
  for m in $(awk -v d="$1" 'index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" || die "could not unmount $m"
  done
  rm -rf "$1"
}

# The stamp holds the Debian version (line 1) and the package list (line 2): a changed list rebuilds.
stamp_matches() { [ -f "$1" ] && [ "$(sed -n 2p "$1")" = "${PKGS[*]}" ]; }
ready() { stamp_matches "$V6_STAMP" && [ -x "$V6_ROOT/usr/sbin/kamailio" ]; }
since() { echo $(($(date +%s) - $1)); }

# debootstrap + the pinned packages into $1 (a fresh directory)
build_into() {
  local dest="$1" t0 version
  t0=$(date +%s)
  command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/install-packages.sh"
  log "kamailio 6.0.1: debootstrap trixie from $MIRROR into $dest"
  if ! debootstrap --variant=minbase trixie "$dest" "$MIRROR" >"$V6_DIR/debootstrap.log" 2>&1; then
    tail -n 15 "$V6_DIR/debootstrap.log" >&2
    die "could not build the Kamailio 6.0.1 chroot: debootstrap of trixie from $MIRROR failed (full log: $V6_DIR/debootstrap.log). Check the network or set KWC_DEBIAN_MIRROR, or provide a tarball from a previous build as KWC_V6_TARBALL"
  fi
  log "kamailio 6.0.1: debootstrap took $(since "$t0") s"
  # no service may start inside the chroot (postinst calls invoke-rc.d)
  printf '#!/bin/sh\nexit 101\n' >"$dest/usr/sbin/policy-rc.d"
  chmod +x "$dest/usr/sbin/policy-rc.d"
  echo "deb $SECURITY_MIRROR trixie-security main" >"$dest/etc/apt/sources.list.d/security.list"
  chroot "$dest" apt-get -q update >"$V6_DIR/apt.log" 2>&1 || log "kamailio 6.0.1: apt-get update incomplete (trixie-security unreachable?), see $V6_DIR/apt.log"
  # read the list first: `madison | grep -q` would fail under pipefail when grep exits early
  local offered
  offered=$(chroot "$dest" apt-cache madison kamailio)
  if grep -qF "| $PIN_SECURITY |" <<<"$offered"; then
    version="$PIN_SECURITY"
  elif grep -qF "| $PIN_MAIN |" <<<"$offered"; then
    version="$PIN_MAIN"
    log "kamailio 6.0.1: $PIN_SECURITY not reachable (trixie-security), pinning $PIN_MAIN"
  else
    die "could not build the Kamailio 6.0.1 chroot: neither kamailio=$PIN_SECURITY nor =$PIN_MAIN is offered by $MIRROR / $SECURITY_MIRROR"
  fi
  local pinned=()
  for p in "${PKGS[@]}"; do pinned+=("$p=$version"); done
  chroot "$dest" env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get install -y -qq --no-install-recommends "${pinned[@]}" >>"$V6_DIR/apt.log" 2>&1 ||
    { tail -n 15 "$V6_DIR/apt.log" >&2; die "could not install kamailio=$version in the chroot (log: $V6_DIR/apt.log)"; }
  chroot "$dest" apt-get clean
  rm -rf "$dest/usr/share/doc" "$dest/usr/share/man" "$dest/usr/share/locale" "$dest"/var/lib/apt/lists/*_Packages
  # the runtime binds each node's run dir here, in the node's own mount namespace
  mkdir -p "$dest/run/kwc"
  { chroot "$dest" dpkg-query -W -f='${Version}\n' kamailio; echo "${PKGS[*]}"; } >"$dest/.kwc-kamailio-v6"
  log "kamailio 6.0.1: kamailio $(head -n 1 "$dest/.kwc-kamailio-v6") installed; build took $(since "$t0") s, $(du -sh "$dest" | cut -f1)"
}

pack() {
  local t0
  t0=$(date +%s)
  tar -C "$V6_ROOT" --numeric-owner --one-file-system "${EXCLUDES[@]}" -I 'zstd -T0 -3' -cf "$V6_TARBALL.partial" .
  mv "$V6_TARBALL.partial" "$V6_TARBALL"
  log "kamailio 6.0.1: packed $V6_TARBALL ($(du -h "$V6_TARBALL" | cut -f1)) in $(since "$t0") s"
}

restore() {
  local t0 tmp="$V6_DIR/root.partial"
  t0=$(date +%s)
  command -v zstd >/dev/null || die "zstd missing: run scripts/install-packages.sh"
  remove_tree "$tmp" && mkdir -p "$tmp"
  tar -C "$tmp" --numeric-owner -I zstd -xf "$V6_TARBALL" || die "could not restore the Kamailio 6.0.1 chroot from $V6_TARBALL"
  if ! stamp_matches "$tmp/.kwc-kamailio-v6"; then
    log "kamailio 6.0.1: $V6_TARBALL is not a chroot of this script's package list; building instead"
    remove_tree "$tmp"
    return 1
  fi
  mv "$tmp" "$V6_ROOT"
  log "kamailio 6.0.1: restored $V6_ROOT from $V6_TARBALL in $(since "$t0") s"
}

build() {
  local tmp="$V6_DIR/root.partial"
  remove_tree "$tmp"
  build_into "$tmp"
  remove_tree "$V6_ROOT"
  mv "$tmp" "$V6_ROOT"
  pack
}

locked() {
  mkdir -p "$V6_DIR"
  # several test runs share this tree: one build at a time, the others wait for it
  exec 9>"$V6_DIR/.lock"
  flock -w 900 9 || die "timed out waiting for another build of the Kamailio 6.0.1 chroot ($V6_DIR/.lock)"
  "$@"
}

ensure() {
  if ready; then
    log "kamailio 6.0.1: chroot ready ($(head -n 1 "$V6_STAMP"), $V6_ROOT)"
    return 0
  fi
  need_root "building the Kamailio 6.0.1 chroot (debootstrap, chroot)"
  remove_tree "$V6_ROOT"
  if [ -f "$V6_TARBALL" ] && restore; then return 0; fi
  build
}

case "${1:-ensure}" in
ensure) ready && { log "kamailio 6.0.1: chroot ready ($(head -n 1 "$V6_STAMP"), $V6_ROOT)"; exit 0; }; locked ensure ;;
build) need_root "building the Kamailio 6.0.1 chroot"; locked build ;;
check) ready || die "no Kamailio 6.0.1 chroot: run scripts/kamailio-v6.sh ensure"; chroot "$V6_ROOT" /usr/sbin/kamailio -v | head -n 1 ;;
path) echo "$V6_ROOT" ;;
*) die "usage: $0 ensure|build|check|path" ;;
esac
