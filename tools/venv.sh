#!/usr/bin/env bash
# Makes tools/.venv with `cryptography` (the offline verifier's one dependency) and prints the venv's python.
# Used by tools/run_tests.sh and by the Rust tests that run tools/verify_ledger.py. Needs python3 (3.9+) with
# venv, and PyPI the first time. PYTHON=python3.9 tools/venv.sh picks the interpreter. Safe to run concurrently.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null; then
  echo "tools/venv.sh: $python not found: install Python 3.9+ (with venv) to run the offline verifier" >&2
  exit 1
fi
exec 9>"$here/.venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >&2; then
    echo "tools/venv.sh: '$python -m venv' failed: install the venv module (apt-get install python3-venv)" >&2
    exit 1
  fi
  # The venv ignores itself in git (what Python 3.13's venv does).
  printf '*\n' >"$venv/.gitignore"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check cryptography >&2; then
    echo "tools/venv.sh: installing cryptography from PyPI failed (the verifier's only dependency)" >&2
    exit 1
  fi
fi
echo "$venv/bin/python"
