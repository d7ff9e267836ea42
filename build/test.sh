#!/usr/bin/env bash
# npm test: prepare the machine, build the binaries, run the whole suite against a throwaway Postgres
# cluster, then scan every log line the suite produced for secrets. Ends with "N passed, N failed".
# ATLASHUB_KEEP_TEST_ROOT=1 keeps the temp root (suite log, secrets list) for a look afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh

ensure_node_modules || exit 1
bash build/setup-postgres.sh || echo "test: build/setup-postgres.sh failed (offline?); testing with what is installed"
bash build/setup-qemu.sh || echo "test: qemu is missing; the arm64 smoke test will fail"
bash build/setup-chromium.sh || echo "test: chromium is missing; the admin UI browser test (server/e2e/ui.test.ts) will fail"
bash build/build.sh || exit 1

# Everything the suite creates lives under one root that is removed below, even when tests crash.
root=$(mktemp -d /tmp/atlashub-test.XXXXXX)
chmod 755 "$root"
export ATLASHUB_TEST_ROOT=$root ATLASHUB_TEST_LOG=$root/suite.log ATLASHUB_TEST_SECRETS=$root/secrets.txt
cleanup() {
  # Postgres clusters started under $root (also ones orphaned by a crashed test process).
  pkill -KILL -f -- "-D $root/" 2>/dev/null
  pkill -KILL -f -- "$root/" 2>/dev/null
  if [[ -n ${ATLASHUB_KEEP_TEST_ROOT:-} ]]; then echo "test: kept $root"; else rm -rf "$root"; fi
}
trap cleanup EXIT

passed=0 failed=0
run_bun_test() {
  local name=$1 out=$root/bun-test-$1.out
  shift
  node_modules/.bin/bun test --timeout 60000 "$@" 2>&1 | tee "$out"
  local p f
  p=$(grep -oE '^ *[0-9]+ pass$' "$out" | tail -1 | grep -oE '[0-9]+')
  f=$(grep -oE '^ *[0-9]+ fail$' "$out" | tail -1 | grep -oE '[0-9]+')
  if [[ -z $p && -z $f ]]; then
    echo "test: bun test ($name) ended without a summary"
    f=1
  fi
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
}

echo "test: typecheck (tsc --noEmit)"
if node_modules/.bin/tsc --noEmit -p .; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "test: typecheck of the admin UI (tsc --noEmit -p ui)"
if node_modules/.bin/tsc --noEmit -p ui; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

run_bun_test suite server
# Runs last, on purpose: it reads the log of everything above.
run_bun_test log-scan ./build/log-scan.check.ts

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
