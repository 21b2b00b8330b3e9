#!/usr/bin/env bash
# Set up from nothing: a virtual environment in .venv with the package, its `mobilenet` command and the dev tools.
# Idempotent; safe to run again. Installs torch from the CPU wheel first, so nothing pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "setup: installing torch 2.13.0 (CPU)"
.venv/bin/python -m pip install --quiet "torch==2.13.0"
echo "setup: installing mobilenet and its dev tools"
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "setup: done; the command is .venv/bin/mobilenet"
