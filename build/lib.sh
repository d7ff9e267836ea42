# Shared by start.sh, test.sh and build.sh. Sourced, not run.

# npm install only when node_modules is missing or older than package.json / package-lock.json.
ensure_node_modules() {
  local stamp=node_modules/.package-lock.json
  if [[ ! -x node_modules/.bin/bun || ! -f $stamp || package.json -nt $stamp || ( -f package-lock.json && package-lock.json -nt $stamp ) ]]; then
    echo "npm install"
    npm install --no-audit --no-fund
  fi
}

host_target() {
  case "$(uname -m)" in
    x86_64) echo linux-x64 ;;
    aarch64 | arm64) echo linux-arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; return 1 ;;
  esac
}
