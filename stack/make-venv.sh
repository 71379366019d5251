#!/usr/bin/env bash
# Creates the project's virtual environment (default .venv/) and installs the package with its dev extras into it.
# Stock Debian 12/13 and Ubuntu 24.04 refuse `pip install` into the system Python (PEP 668), so nothing is ever
# installed there. Runs as the user, never as root on their behalf. Usage: make-venv.sh VENV_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
# shellcheck source=stack/python.sh
. stack/python.sh
python="$(find_python)"
if [ -x "$venv/bin/python" ] && ! supported_python "$venv/bin/python"; then
  echo "setup: $venv holds an unsupported Python; remove it (rm -rf $venv) and run make setup again" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv with $python ($("$python" -c 'import platform; print(platform.python_version())'))"
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    echo "setup: $python cannot create a virtual environment; install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
echo "setup: $venv ready ($("$venv/bin/python" -c 'import platform; print("Python", platform.python_version())'))"
