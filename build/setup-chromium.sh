#!/usr/bin/env bash
# Ensure Debian's chromium is installed (Debian 12, root), for the admin UI's browser test
# (server/e2e/ui.test.ts drives /usr/bin/chromium headless through playwright-core).
# Idempotent; exits 1 when it cannot install (the caller decides whether that matters).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "setup-chromium: $*"; }

if [[ -x /usr/bin/chromium ]]; then
  log "already installed"
  exit 0
fi

if [[ $EUID -ne 0 ]]; then
  log "cannot install chromium: not running as root"
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  log "cannot install chromium: apt-get not found"
  exit 1
fi

log "apt-get update"
apt-get update -q
log "apt-get install chromium"
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
log "installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
