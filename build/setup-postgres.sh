#!/usr/bin/env bash
# Ensure the Postgres 15 server binaries and the pgvector extension are installed (Debian 12, root).
# Idempotent; the "already installed" path is a couple of file tests and must stay fast,
# because it runs on every `npm start` / `npm test`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG=$PGBIN/pg_config
SRC_LIST=/etc/apt/sources.list.d/atlashub-trixie-src.sources

log() { echo "setup-postgres: $*"; }
can_install() { [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; }
# Installs only the listed packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

if [[ ! -x $PGBIN/postgres ]]; then
  if ! can_install; then
    log "Postgres 15 is not installed and cannot be installed here (needs root and apt-get); AtlasHub's embedded engine will not work, only an external Postgres."
    exit 0
  fi
  log "apt-get update"
  apt-get update -q
  pkgs=(postgresql-15)
  # In bookworm postgresql-contrib-15 is only a virtual package provided by postgresql-15.
  # (apt-cache show exits 0 with no output for a virtual package, hence the grep.)
  if apt-cache show postgresql-contrib-15 2>/dev/null | grep -q '^Package:'; then pkgs+=(postgresql-contrib-15); fi
  apt_install "${pkgs[@]}"
fi
[[ -f /usr/share/postgresql/15/extension/pg_stat_statements.control ]] \
  || log "warning: pg_stat_statements is not available"

if [[ -f $("$PG_CONFIG" --sharedir)/extension/vector.control ]]; then
  log "pgvector: already installed"
  exit 0
fi

if ! can_install; then
  log "pgvector cannot be installed (needs root and apt-get); AtlasHub will run without the 'vector' extension."
  exit 0
fi

# pgvector is not in bookworm: fetch the source package from trixie via a temporary deb-src entry.
tmp=$(mktemp -d)
chmod 777 "$tmp" # apt-get source downloads as the unprivileged _apt user
remove_trixie_src() {
  [[ -f $SRC_LIST ]] || return 0
  log "removing $SRC_LIST; apt-get update"
  rm -f "$SRC_LIST"
  apt-get update -q || true
}
trap 'remove_trixie_src; rm -rf "$tmp"' EXIT

log "adding temporary deb-src entry for trixie"
cat >"$SRC_LIST" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
log "apt-get update"
apt-get update -q
log "apt-get source --download-only pgvector"
(cd "$tmp" && apt-get source -q --download-only pgvector)
remove_trixie_src

apt_install postgresql-server-dev-15 build-essential

log "building pgvector"
mkdir "$tmp/src"
tar -xf "$tmp"/pgvector_*.orig.tar.* -C "$tmp/src" --strip-components=1
# OPTFLAGS="" (as Debian builds it): no -march=native, so the .so also runs if the VM moves to another CPU.
make -C "$tmp/src" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" OPTFLAGS=""
make -C "$tmp/src" -s install PG_CONFIG="$PG_CONFIG" OPTFLAGS=""
log "pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$("$PG_CONFIG" --sharedir)/extension/vector.control") installed"
