#!/usr/bin/env bash
# Runs the offline ledger verifier's test suite (tools/test_verify_ledger.py) with tools/.venv's python (made,
# with `cryptography`, by tools/venv.sh), then tools/server_check.sh: the verifier against a receipt and an
# export produced by the real server (that part builds the binary with cargo). Needs python3 (3.9+) with venv.
# PYTHON=python3.9 tools/run_tests.sh picks the interpreter used to create the venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$(bash "$here/venv.sh")"

cd "$here/.."
"$python" -m unittest discover -s tools "$@"
bash "$here/server_check.sh"
