#!/usr/bin/env bash
# The web console in a real browser: Debian's Chromium driven by ChromeDriver through Selenium,
# against `serve --seed` on a fresh SQLite database. A person signs in as the seeded user, adds a
# personal integration, creates a token, an MCP server leases with that token, the person sees
# the lease on the dashboard and revokes it there, checks every page at phone width, and signs out.
# Screenshots of every page go to $CARGO_TARGET_DIR/browser-screenshots (target/ by default).
#
# Installs what it needs: chromium and chromium-driver from Debian's packages when missing (as
# root, or through sudo), and Selenium (pinned) into a venv under the target directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$target/browser-venv"
selenium=4.27.1
shots="$target/browser-screenshots"
work="$(mktemp -d)"
server=""

cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
  echo "ci/browser: installing Debian's chromium and chromium-driver" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq </dev/null
  $sudo apt-get install -y -qq chromium chromium-driver </dev/null >/dev/null
fi

if ! "$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$selenium')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "selenium==$selenium" </dev/null
fi

cargo build --release --quiet --bin mcp-manager --manifest-path "$root/Cargo.toml"
bin="$target/release/mcp-manager"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL="sqlite://$work/console.db"
unset MCP_ENCRYPTION_KEY MCP_LOG_SIGNING_KEY
# Everything the server logs at debug goes to the log the secrets are looked for in.
export RUST_LOG=debug
"$bin" serve --seed --bind "127.0.0.1:$port" >"$work/seed.out" 2>"$work/server.log" </dev/null &
server=$!
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "ci/browser: the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done

rm -rf "$shots"
mkdir -p "$shots"
if ! "$venv/bin/python" "$here/console_test.py" --base "http://127.0.0.1:$port" --screenshots "$shots" --secrets "$work/secrets" </dev/null; then
  echo "ci/browser: the console test failed (server log below; screenshots in $shots)" >&2
  tail -n 50 "$work/server.log" >&2
  exit 1
fi
# The walk wrote down the secrets it typed or saw (a credential, the token, the session cookie):
# none may be in the server's log.
while IFS= read -r secret; do
  if [ -n "$secret" ] && grep -qF -- "$secret" "$work/server.log"; then
    echo "ci/browser: the server log contains a secret of the walk" >&2
    exit 1
  fi
done <"$work/secrets"
echo "ci/browser: passed; screenshots in $shots"
