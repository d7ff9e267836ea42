#!/usr/bin/env bash
# npm run smoke:arm64: run the arm64 binary under qemu-aarch64-static against a throwaway x64 Postgres
# (external engine) and check /health. Installs qemu when missing and (re)builds the arm64 binary when
# it is missing or older than the sources. Exits with the status of the test.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh

ensure_node_modules
if ! bash build/setup-qemu.sh; then
  echo "smoke-arm64: qemu-aarch64-static is not available; run build/setup-qemu.sh as root" >&2
  exit 1
fi

bash build/build.sh --target linux-arm64 --if-stale

# The test's cluster, data dirs and log live under one root that is removed afterwards.
root=$(mktemp -d /tmp/atlashub-smoke.XXXXXX)
chmod 755 "$root"
trap 'rm -rf "$root"' EXIT
export ATLASHUB_TEST_ROOT=$root ATLASHUB_TEST_LOG=$root/suite.log ATLASHUB_TEST_SECRETS=$root/secrets.txt

started=$(date +%s)
status=0
node_modules/.bin/bun test --timeout 120000 server/e2e/arm64.test.ts || status=$?
echo "smoke-arm64: $( ((status == 0)) && echo passed || echo FAILED ) in $(($(date +%s) - started)) s"
exit $status
