#!/usr/bin/env bash
# Schemathesis against the live seeded server, on a fresh SQLite database and then on a fresh
# PostgreSQL database. On each: the MCP, audit and operator's operations of /api/openapi.json
# fuzzed with the seeded `leases` token (the audit routes then answer 403 insufficient_scope, as
# documented); the auditors' operations and /me with an `audit` token; the account API with a
# session of the seeded user (signed in with the seed's password, its cookie and CSRF token sent
# with every request), sign-out left out; and sign-out alone, with a second session. Fails on any
# 5xx, on any answer whose status, content type or body the document does not describe, and if
# the first session did not stay signed in through its pass or the second was not signed out.
#
# Installs Schemathesis (pinned) into a venv under the cargo target directory; needs python3 with
# venv, PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; TEST_POSTGRES_URL elsewhere) and
# no stdin. SCHEMATHESIS_MAX_EXAMPLES (default 300 per operation and phase) and
# SCHEMATHESIS_TIMEOUT (seconds per pass, default 300) bound the run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
version=4.32.5
venv="$target/schemathesis-venv"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-300}"
pass_timeout="${SCHEMATHESIS_TIMEOUT:-300}"
postgres="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
work="$(mktemp -d)"
server=""
database=""

cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ -n "$database" ]; then
    psql -q "$postgres" -c "drop database if exists $database with (force)" </dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" </dev/null
fi

cargo build --release --quiet --bin mcp-manager --manifest-path "$root/Cargo.toml"
bin="$target/release/mcp-manager"
# Schemathesis keeps its example database and reports in the working directory: not the repo's.
cd "$work"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts `serve --seed` on DATABASE_URL (exported by the caller) and sets `port` and `token`.
start_server() {
  port=$(free_port)
  "$bin" serve --seed --bind "127.0.0.1:$port" >"$work/seed.out" 2>"$work/server.log" </dev/null &
  server=$!
  for _ in $(seq 1 300); do
    if grep -q '^MCP_TOKEN=' "$work/seed.out" 2>/dev/null \
      && curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; then
      break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
      echo "ci/schemathesis: the server did not start:" >&2
      cat "$work/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  token=$(sed -n 's/^MCP_TOKEN=//p' "$work/seed.out")
  if [ -z "$token" ]; then
    echo "ci/schemathesis: serve --seed printed no MCP_TOKEN" >&2
    exit 1
  fi
}

stop_server() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
}

# One schemathesis pass: a name, then schemathesis' own options (the credentials among them).
fuzz() {
  local name="$1"
  shift
  local started=$SECONDS
  echo "== schemathesis on $backend: $name"
  if ! timeout --kill-after=10 "$pass_timeout" "$venv/bin/schemathesis" run \
    "http://127.0.0.1:$port/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --request-timeout 10 \
    --seed 20261126 \
    --warnings off \
    --no-color \
    "$@" </dev/null; then
    echo "ci/schemathesis: $name on $backend failed (server log below)" >&2
    tail -n 50 "$work/server.log" >&2
    exit 1
  fi
  echo "== $name on $backend: $((SECONDS - started)) s"
}

# Signs the seeded user in; prints the session cookie's value and its CSRF token, on one line.
sign_in() {
  curl -sf -c - -o "$work/login.json" -H 'Content-Type: application/json' \
    -d '{"email": "test@mcp-manager.local", "password": "password"}' \
    "http://127.0.0.1:$port/api/account/login" </dev/null |
    awk '$6 == "mcp_session" { cookie = $7 } END { printf "%s ", cookie }'
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["csrf_token"])' "$work/login.json"
}

# The status `GET /api/account/me` answers with this session cookie.
profile_status() {
  curl -s -o /dev/null -w '%{http_code}' -H "Cookie: mcp_session=$1" \
    "http://127.0.0.1:$port/api/account/me" </dev/null
}

# How the account API answered during a pass: requests by method and status, from the server's
# log lines since line $1, of paths under /api/account/$2 (Schemathesis may make a request or two
# of its own beyond the pass's operations).
account_statuses() {
  tail -n "+$1" "$work/server.log" |
    sed -n "s/.*method=\([A-Z]*\) path=\/api\/account\/$2[^ ]*.* status=\([0-9]*\).*/\1 \2/p" |
    sort | uniq -c | awk '{ printf "%s %s: %s; ", $2, $3, $1 } END { print "" }'
}

run_backend() {
  backend="$1"
  local started=$SECONDS
  start_server
  # Both sessions first: the account pass's sign-in attempts will have the address throttled.
  local session csrf second second_csrf
  read -r session csrf < <(sign_in)
  read -r second second_csrf < <(sign_in)
  if [ -z "$session" ] || [ -z "$second" ]; then
    echo "ci/schemathesis: the seeded user could not sign in" >&2
    exit 1
  fi
  fuzz "the MCP, audit and operator's operations, leases token" \
    --header "Authorization: Bearer $token" \
    --exclude-path-regex '^/api/account/'
  local audit
  audit=$("$bin" token create --user 1 --scope audit --name schemathesis </dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  # The stream never ends on success: tests/http/audit.rs covers it. Stateful tests need the
  # lease routes' links, which this pass leaves out.
  fuzz "the auditors' operations, audit token" \
    --header "Authorization: Bearer $audit" \
    --include-path-regex '^/api/(audit/|mcp/me$)' \
    --exclude-path /api/audit/events/stream \
    --phases examples,coverage,fuzzing
  # The account API as the seeded user, sign-out aside (it would end the session). It may add,
  # rotate and remove integrations, tokens and members, and be throttled signing in: all of it
  # answers as documented. Nobody can remove their own membership, so the user stays an owner.
  local from
  from=$(($(wc -l <"$work/server.log") + 1))
  fuzz "the account operations, a signed-in session" \
    --header "Cookie: mcp_session=$session" \
    --header "X-CSRF-Token: $csrf" \
    --include-path-regex '^/api/account/' \
    --exclude-path /api/account/logout
  echo "== account answers on $backend: $(account_statuses "$from" "")"
  if [ "$(profile_status "$session")" != 200 ]; then
    echo "ci/schemathesis: the session did not stay signed in through the account pass" >&2
    exit 1
  fi
  # Sign-out on its own session: the first request ends it, the rest answer 401.
  from=$(($(wc -l <"$work/server.log") + 1))
  fuzz "sign-out, a second session" \
    --header "Cookie: mcp_session=$second" \
    --header "X-CSRF-Token: $second_csrf" \
    --include-path /api/account/logout \
    --phases examples,coverage,fuzzing
  echo "== sign-out answers on $backend: $(account_statuses "$from" logout)"
  if [ "$(profile_status "$second")" != 401 ]; then
    echo "ci/schemathesis: sign-out did not end the second session" >&2
    exit 1
  fi
  stop_server
  echo "== $backend: $((SECONDS - started)) s in all"
}

# SQLite: a fresh file (its encryption and signing keys are files beside it).
export DATABASE_URL="sqlite://$work/schemathesis.db"
unset MCP_ENCRYPTION_KEY MCP_LOG_SIGNING_KEY
run_backend sqlite

# PostgreSQL: a throwaway database, and keys in the environment.
database="mcp_schemathesis_$$"
psql -q "$postgres" -c "create database $database" </dev/null
export DATABASE_URL="${postgres%/*}/$database"
MCP_ENCRYPTION_KEY=$(openssl rand -base64 32)
MCP_LOG_SIGNING_KEY=$("$bin" log-key generate </dev/null |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["private_key"])')
export MCP_ENCRYPTION_KEY MCP_LOG_SIGNING_KEY
run_backend postgresql
