#!/usr/bin/env bash
# The offline verifier against what the real server produces: a lease receipt (GET
# /api/mcp/credentials/lease/{id}/receipt) and an export (`mcp-manager export`) of a seeded SQLite ledger
# are checked by tools/verify_ledger.py (and the export by `mcp-manager verify --export`); each verifies, and
# each with one payload changed does not. Run by tools/run_tests.sh. Needs cargo (or MCP_MANAGER_BIN, the
# path of a built mcp-manager), curl, and what tools/venv.sh needs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
python="$(bash "$here/venv.sh")"
work="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

if [ -n "${MCP_MANAGER_BIN:-}" ]; then
  bin="$MCP_MANAGER_BIN"
else
  cargo build --quiet --bin mcp-manager --manifest-path "$root/Cargo.toml"
  target="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  bin="$target/debug/mcp-manager"
fi

fail() { echo "server_check: $*" >&2; exit 1; }
json() { "$python" -c "import json, sys; print(json.load(sys.stdin)$1)"; }

cd "$work"
# Only this test's settings: the SQLite key files are created beside the database.
unset MCP_ENCRYPTION_KEY MCP_ENCRYPTION_KEY_OLD MCP_LOG_SIGNING_KEY MCP_LOG_ORIGIN
export DATABASE_URL="sqlite://$work/ledger.db" MCP_CHECKPOINT_INTERVAL=0.2 RUST_LOG=warn
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
"$bin" serve --seed --bind "127.0.0.1:$port" >seed.out 2>server.log &
server=$!
for _ in $(seq 1 200); do
  grep -q '^MCP_TOKEN=' seed.out 2>/dev/null && curl -s -o /dev/null "$base/healthz" && break
  kill -0 "$server" 2>/dev/null || fail "the server exited: $(cat server.log)"
  sleep 0.1
done
token=$(sed -n 's/^MCP_TOKEN=//p' seed.out)
[ -n "$token" ] || fail "the server printed no MCP_TOKEN"

# A lease of the seeded user, renewed once, and its receipt (a checkpoint covering it may take an interval).
lease=$(curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"services":["todoist","jira"],"server_id":"server-check"}' "$base/api/mcp/credentials/lease" | json '["lease_id"]')
curl -sf -X POST -H "Authorization: Bearer $token" "$base/api/mcp/credentials/lease/$lease/renew" >/dev/null
for _ in $(seq 1 50); do
  curl -sf -H "Authorization: Bearer $token" "$base/api/mcp/credentials/lease/$lease/receipt" >receipt.json &&
    [ "$(json '["events"].__len__()' <receipt.json)" = 2 ] && break
  sleep 0.2
done
[ -s receipt.json ] || fail "no receipt for lease $lease"

# The vkey as an auditor gets it: an audit token and GET /api/audit/key.
audit=$("$bin" token create --user 1 --scope audit --name audit | json '["token"]')
curl -sf -H "Authorization: Bearer $audit" "$base/api/audit/key" >key.json
vkey=$(json '["vkey"]' <key.json)

# The export, taken while the server runs.
"$bin" export --out events.jsonl --checkpoint-out checkpoint.txt >export.json

expect() { # expect CODE what command...
  local code=$1 what=$2; shift 2
  set +e; out=$("$@" 2>&1); got=$?; set -e
  [ "$got" = "$code" ] || fail "$what: exit $got, expected $code: $out"
  echo "server_check: $what: $out"
}
expect 0 "receipt" "$python" "$here/verify_ledger.py" --receipt receipt.json --vkey "$vkey"
expect 0 "export" "$python" "$here/verify_ledger.py" --export events.jsonl --checkpoint checkpoint.txt --vkey @key.json
expect 0 "export (mcp-manager)" env -u DATABASE_URL "$bin" verify --export events.jsonl --checkpoint checkpoint.txt --vkey "$vkey"

# One payload changed: refused.
"$python" - <<'PY'
import json
receipt = json.load(open("receipt.json"))
receipt["events"][0]["event"]["payload"] = receipt["events"][0]["event"]["payload"].replace("server-check", "server-chexk")
json.dump(receipt, open("receipt-changed.json", "w"))
lines = open("events.jsonl").read().splitlines()
event = json.loads(lines[5])
event["payload"] = event["payload"].replace("}", ",\"x\":1}", 1)
lines[5] = json.dumps(event, separators=(",", ":"))
open("events-changed.jsonl", "w").write("\n".join(lines) + "\n")
PY
expect 1 "changed receipt" "$python" "$here/verify_ledger.py" --receipt receipt-changed.json --vkey "$vkey"
expect 1 "changed export" "$python" "$here/verify_ledger.py" --export events-changed.jsonl --checkpoint checkpoint.txt --vkey "$vkey"
expect 1 "changed export (mcp-manager)" env -u DATABASE_URL "$bin" verify --export events-changed.jsonl --checkpoint checkpoint.txt --vkey "$vkey"
echo "server_check: ok"
