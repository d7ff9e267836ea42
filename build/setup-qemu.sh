#!/usr/bin/env bash
# Ensure qemu-aarch64-static and the arm64 C library are installed (Debian 12, root), for the
# arm64 smoke test: qemu-aarch64-static -L /usr/aarch64-linux-gnu ./atlashub-linux-arm64 ...
# Idempotent; exits 1 when it cannot install (the caller decides whether that matters).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "setup-qemu: $*"; }

if [[ -x /usr/bin/qemu-aarch64-static && -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]]; then
  log "already installed"
  exit 0
fi

if [[ $EUID -ne 0 ]]; then
  log "cannot install qemu-user-static / libc6-arm64-cross: not running as root"
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  log "cannot install qemu-user-static / libc6-arm64-cross: apt-get not found"
  exit 1
fi

log "apt-get update"
apt-get update -q
log "apt-get install qemu-user-static libc6-arm64-cross"
apt-get install -y -q --no-install-recommends qemu-user-static libc6-arm64-cross
log "installed: $(/usr/bin/qemu-aarch64-static --version | head -1)"
