#!/usr/bin/env bash
# npm run build: build the admin UI (ui/ → ui/dist, Vite) and compile the atlashub executable, with
# the UI embedded, for linux x64 and arm64 into build/out/.
#   --host          only the target of this machine
#   --target NAME   only linux-x64 or linux-arm64
#   --if-stale      skip a target whose binary is newer than every source file
set -euo pipefail
cd "$(dirname "$0")/.."
source build/lib.sh

targets=(linux-x64 linux-arm64)
if_stale=false
while (($#)); do
  case "$1" in
    --host) targets=("$(host_target)") ;;
    --target) targets=("$2"); shift ;;
    --if-stale) if_stale=true ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# The UI: rebuilt when a file under ui/ (but dist) is newer than its build; then the generated entry
# module that embeds ui/dist (server/ui/embedded.gen.ts, see build/embed-ui.ts).
ui_sources=(ui package.json)
if [[ ! -f ui/dist/index.html ]] || [[ -n $(find "${ui_sources[@]}" -type f -newer ui/dist/index.html -not -path 'ui/dist/*' -print -quit) ]]; then
  echo "build: ui/dist"
  node_modules/.bin/vite build ui --logLevel warn
  touch ui/dist/index.html
fi
if [[ ! -f server/ui/embedded.gen.ts || ui/dist/index.html -nt server/ui/embedded.gen.ts || build/embed-ui.ts -nt server/ui/embedded.gen.ts ]]; then
  node_modules/.bin/bun build/embed-ui.ts
fi

mkdir -p build/out
for target in "${targets[@]}"; do
  out=build/out/atlashub-$target
  # Sources only: tests do not go into the binary.
  if $if_stale && [[ -x $out ]] && [[ -z $(find server migrations package.json ui/dist -type f -newer "$out" -not -name '*.test.ts' -not -path 'server/test/*' -not -path 'server/e2e/*' -print -quit) ]]; then
    continue
  fi
  echo "build: $out"
  node_modules/.bin/bun build --compile --minify --sourcemap=none --target="bun-$target" server/ui/embedded.gen.ts --outfile "$out"
done
