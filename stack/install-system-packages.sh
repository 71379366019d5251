#!/usr/bin/env bash
# Installs the Debian packages the native stack needs when they are missing: PostgreSQL (server binaries and the
# 'postgres' account), a JDK (17 or newer: whichever the distribution has), Maven, and venv support for the Python
# that make setup will use. With --test, also what only the tests need (make setup-test): Chromium and fonts, so
# tests/integration/test_dashboard.py can picture the dashboard headless; the demo never needs them. Only apt-get
# runs as root (directly, or through sudo for a normal user); everything else of the set-up runs as the user.
# Does nothing when all are present. Usage: install-system-packages.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
test_packages=false
case "${1:-}" in
  "") ;;
  --test) test_packages=true ;;
  *) echo "usage: install-system-packages.sh [--test]" >&2; exit 2 ;;
esac
# shellcheck source=stack/python.sh
. stack/python.sh

need=()
fresh_postgres=false
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
  fresh_postgres=true
fi
command -v javac >/dev/null 2>&1 || need+=(JDK)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v make >/dev/null 2>&1 || need+=(make)
if $test_packages; then
  # Headless screenshots of the dashboard; the fonts draw the chart's labels.
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  fonts="$(dpkg-query -W -f='${Status}' fonts-liberation 2>/dev/null || true)"
  [ "$fonts" = "install ok installed" ] || need+=(fonts-liberation)
fi
if python="$(find_python 2>/dev/null)"; then
  # Debian splits ensurepip, which `python -m venv` needs to put pip in the venv, out of the interpreter into
  # python3-venv (the default Python) or python3.X-venv: importing it tells, without making a venv to throw away.
  if ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
    version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    default="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || true)"
    if [ "$version" = "$default" ]; then need+=(python3-venv); else need+=("python$version-venv"); fi
  fi
else
  need+=(python3 python3-venv)
fi

if [ ${#need[@]} -eq 0 ]; then
  present="PostgreSQL, a JDK, Maven, Python venv support"
  if $test_packages; then present="$present, Chromium, fonts"; fi
  echo "system packages: $present present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "system packages: need ${need[*]}; run as root, or install sudo, or install them yourself" >&2
    exit 1
  fi
  sudo="sudo"
fi
# Passed through env: sudo's env_reset would drop an exported DEBIAN_FRONTEND, and apt must never wait on a prompt.
apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get)
"${apt[@]}" update -q

# A JDK 17 where the distribution has one (Debian 12, Ubuntu 22.04/24.04); else its default JDK (Debian 13: 21).
packages=()
for package in "${need[@]}"; do
  if [ "$package" = JDK ]; then
    if apt-cache show openjdk-17-jdk-headless >/dev/null 2>&1; then
      package=openjdk-17-jdk-headless
    else
      package=default-jdk-headless
    fi
  fi
  packages+=("$package")
done

if $fresh_postgres; then
  # Debian's package would create and start a system cluster on port 5432, the port the stack's own cluster uses
  # by default. A machine that had no PostgreSQL gets none it did not ask for (postgresql-common reads this).
  $sudo mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.d/mnist-cdc.conf >/dev/null
fi
echo "system packages: installing ${packages[*]}"
"${apt[@]}" install -y -q --no-install-recommends "${packages[@]}"
