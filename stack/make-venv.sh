#!/usr/bin/env bash
# Creates the project's virtual environment (default .venv/) and installs the package into it: alone for the demo
# (make setup), or with one of pyproject.toml's extras: dev for the tests (make setup-test), spark for the opt-in
# Spark scorer (make setup-spark), flink for the opt-in PyFlink scorer (make setup-flink, into .venv-flink: its
# pyarrow < 17 cannot sit beside the spark extra's >= 18). An extra installed once stays installed. Stock Debian
# 12/13 and Ubuntu 24.04 refuse `pip install` into the system Python (PEP 668), so nothing is ever installed there.
# Runs as the user, never as root on their behalf. Usage: make-venv.sh VENV_DIR [EXTRA]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
extra="${2:-}"
case "$extra" in
  "" | dev | spark | flink) ;;
  *) echo "usage: make-venv.sh VENV_DIR [dev|spark|flink]" >&2; exit 2 ;;
esac
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

# pip resolves every requirement again even when all are installed (seconds, and a round trip to the index), and
# make demo / make test set up every time. A stamp per extra records the checkout and the pyproject.toml it was
# installed from; while both are unchanged the set-up skips pip. Any stamp covers the package alone. Removing the
# stamps (rm .venv/.mnist-cdc-*) makes the next set-up run pip again.
fingerprint="$(pwd) $(sha256sum pyproject.toml | cut -d' ' -f1)"
stamp="$venv/.mnist-cdc-${extra:-package}"
installed() {
  local file
  for file in "$@"; do
    if [ -f "$file" ] && [ "$(cat "$file")" = "$fingerprint" ]; then return 0; fi
  done
  return 1
}
if [ -z "$extra" ]; then covering=("$venv"/.mnist-cdc-*); else covering=("$stamp"); fi
if ! installed "${covering[@]}"; then
  rm -f "$stamp"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".${extra:+[$extra]}"
  echo "$fingerprint" >"$stamp"
fi
version="$("$venv/bin/python" -c 'import platform; print("Python", platform.python_version())')"
echo "setup: $venv ready ($version${extra:+, with $extra})"
