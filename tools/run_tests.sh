#!/usr/bin/env bash
# Runs the offline ledger verifier's test suite (tools/test_verify_ledger.py) in tools/.venv, creating that
# virtualenv and installing `cryptography` into it if needed. Needs python3 (3.9+) with venv. No cargo.
# PYTHON=python3.9 tools/run_tests.sh picks the interpreter used to create the venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"

if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
# tools/.gitignore ignores the venv; this makes it ignore itself as well (what Python 3.13's venv does).
[ -f "$venv/.gitignore" ] || printf '*\n' >"$venv/.gitignore"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check cryptography

cd "$here/.."
exec "$venv/bin/python" -m unittest discover -s tools "$@"
