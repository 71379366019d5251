# Sourced by the set-up scripts: which Python builds the project's virtual environment.
# PYTHON (make setup PYTHON=/path/to/python3.x) wins; otherwise the first supported interpreter on the PATH,
# those that have tensorflow-io wheels (3.10-3.12) before 3.13, which gets a newer TensorFlow without it.
supported_python() {
  "$1" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)' >/dev/null 2>&1
}

find_python() {
  if [ -n "${PYTHON:-}" ]; then
    if ! supported_python "$PYTHON"; then
      echo "setup: PYTHON=$PYTHON is not a Python 3.10-3.13" >&2
      return 1
    fi
    command -v "$PYTHON"
    return 0
  fi
  local candidate
  for candidate in python3.12 python3.11 python3.10 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && supported_python "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "setup: no Python 3.10-3.13 found; install one (apt-get install python3 python3-venv) or set PYTHON=" >&2
  return 1
}
