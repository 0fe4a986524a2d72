#!/usr/bin/env bash
# Starts a seeded server on a fresh SQLite database and runs the guide's Python provider
# against it. Needs python3 with venv; installs httpx into ci/provider/.venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check httpx

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$work"
"${CARGO_TARGET_DIR:-$root/target}/release/mcp-manager" serve --seed --bind "127.0.0.1:$port" >seed.out 2>server.log &
server=$!
for _ in $(seq 1 100); do
  grep -q '^MCP_TOKEN=' seed.out 2>/dev/null && curl -s -o /dev/null "http://127.0.0.1:$port/api/mcp/me" && break
  sleep 0.1
done
MCP_TOKEN=$(sed -n 's/^MCP_TOKEN=//p' seed.out)
export MCP_TOKEN MCP_API_URL="http://127.0.0.1:$port"
cd "$here"
"$here/.venv/bin/python" run_provider.py
