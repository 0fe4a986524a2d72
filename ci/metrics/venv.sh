#!/usr/bin/env bash
# Makes ci/metrics/.venv with the official Prometheus Python client (its text-format parser checks
# our /metrics output in tests/operations.rs) and prints the venv's python. Needs python3 with venv.
# PYTHON=python3.11 ci/metrics/venv.sh picks the interpreter. Safe to run concurrently (a lock).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null; then
  echo "ci/metrics/venv.sh: $python not found: install Python 3 (with venv) to check the metrics format" >&2
  exit 1
fi
exec 9>"$here/.venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import prometheus_client' 2>/dev/null; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >&2; then
    echo "ci/metrics/venv.sh: '$python -m venv' failed: install the venv module (apt-get install python3-venv)" >&2
    exit 1
  fi
  # The venv ignores itself in git (what Python 3.13's venv does).
  printf '*\n' >"$venv/.gitignore"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'prometheus_client>=0.17' >&2
fi
echo "$venv/bin/python"
