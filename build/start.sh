#!/usr/bin/env bash
# npm start: install what is missing, prepare Postgres extras, build, and serve on the embedded
# defaults (self-started Postgres, local-disk storage, http://localhost:8080). Extra args go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh

ensure_node_modules
bash build/setup-postgres.sh || echo "start: build/setup-postgres.sh failed (offline?); starting anyway"
bash build/build.sh --host --if-stale
exec "build/out/atlashub-$(host_target)" serve "$@"
