#!/usr/bin/env bash
# The README's two commands on a user's stock machine: a minimal Debian made with debootstrap (only git, make,
# ca-certificates, python3, python3-venv and sudo; Debian's own Python, no JDK, no PostgreSQL), the commit under
# test cloned into it, and then, as the README says:
#   Debian 12 (bookworm): make demo as root with the checkout under /root (mode 0700),
#                         make demo as a normal user with sudo, then make test as that user (its own set-up
#                         adds what only the tests need: Chromium, fonts, the dev extras);
#   Debian 13 (trixie):   make demo as a normal user with sudo (Python 3.13, JDK 21: no JDK 17 there).
# Each demo must end with its accuracy line, having installed nothing that only the tests need. Ports are moved
# with the README's variables, so a stack running on the host is never touched. Everything made here is stopped,
# unmounted and removed at the end (never deleting through a mount). Needs root on the host (debootstrap, chroot,
# mounts). Usage: run.sh [bookworm] [trixie]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
commit="$(git -C "$repo" rev-parse HEAD)"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)
min_accuracy="${FRESH_MIN_ACCURACY:-0.90}"

say() { echo "fresh-machine: $*"; }
fail() { say "FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap, chroot and mounts); run it with sudo"
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
fi

# The host's first Debian mirror: the fresh machines fetch from where the host does (same proxies, same CAs).
mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
[ -n "$mirror" ] || mirror="$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
[ -n "$mirror" ] || mirror="http://deb.debian.org/debian"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work="$(mktemp -d /var/tmp/fresh-machine.XXXXXX)"
chmod 755 "$work"
touch "$work/timings"

kill_inside() {  # every process whose root is the fresh machine (services the demo left running, on failure)
  local dir="$1" pid
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    if [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$dir" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  done
}

cleanup() {
  local status=$? dir point log
  if [ "$status" -ne 0 ]; then  # the evidence is deleted with $work below
    for log in "$work"/*.log; do
      [ -f "$log" ] || continue
      say "last lines of $(basename "$log"):" >&2
      tail -15 "$log" | sed 's/^/    /' >&2
    done
  fi
  for dir in "$work"/*/; do
    dir="${dir%/}"
    [ -d "$dir/etc" ] || continue
    kill_inside "$dir"
  done
  sleep 1
  # Deepest first; read from /proc/mounts because suites mount in their own subshells.
  for point in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null || true
  done
  if grep -q " $work" /proc/mounts; then
    say "still mounted under $work, not deleting it:" >&2
    grep " $work" /proc/mounts >&2
  else
    rm -rf --one-file-system "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prepare() {  # prepare SUITE DIR: a stock minimal Debian with the host's CAs and apt sources
  local suite="$1" dir="$2" started
  started=$(date +%s)
  say "$suite: debootstrap from $mirror into $dir"
  timeout 1200 debootstrap --variant=minbase --include=git,make,ca-certificates,python3,python3-venv,sudo \
    "$suite" "$dir" "$mirror" >"$work/$suite-debootstrap.log" 2>&1 ||
    fail "$suite: debootstrap failed; see the last lines: $(tail -3 "$work/$suite-debootstrap.log")"
  cp /usr/local/share/ca-certificates/*.crt "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
  if [ -d /etc/apt/sources.list.d ] && ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$dir/etc/apt/sources.list"
    for source in /etc/apt/sources.list.d/*.sources; do
      # The host's sources with its release name replaced by the fresh machine's (bookworm-security -> ...).
      sed -E "/^Suites:/ s/\b(bookworm|trixie)/$suite/g" "$source" >"$dir/etc/apt/sources.list.d/$(basename "$source")"
    done
  fi
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  # debootstrap writes no /etc/hosts; Debian's installer (netcfg) does, with localhost in it (TensorBoard looks
  # localhost up) and the host name (sudo looks it up). Without it the machine is not a stock one.
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n' \
    "$(hostname)" >"$dir/etc/hosts"
  mount -t proc proc "$dir/proc"
  mount --bind /sys "$dir/sys"
  mount --bind /dev "$dir/dev"
  mount --bind /dev/pts "$dir/dev/pts"
  # A plain bind of /dev leaves /dev/shm root-only; joblib (through Keras' scikit-learn) then warns on stderr.
  mount -t tmpfs -o mode=1777 shm "$dir/dev/shm"
  chroot "$dir" update-ca-certificates >/dev/null 2>&1
  chroot "$dir" useradd --create-home --shell /bin/bash alice
  echo "alice ALL=(ALL) NOPASSWD: ALL" >"$dir/etc/sudoers.d/alice"
  chmod 0440 "$dir/etc/sudoers.d/alice"
  echo "$suite debootstrap: $(($(date +%s) - started)) s" >>"$work/timings"
  say "$suite: $(chroot "$dir" python3 --version), root's home mode $(stat -c %a "$dir/root")"
}

checkout() {  # checkout DIR HOME OWNER: the commit under test, cloned as a user would
  local dir="$1" home="$2" owner="$3"
  git clone -q "$repo" "$dir$home/mnist-cdc"
  git -C "$dir$home/mnist-cdc" checkout -q "$commit"
  chroot "$dir" chown -R "$owner:" "$home/mnist-cdc"
}

run_as() {  # run_as DIR USER LABEL COMMAND: COMMAND in the user's checkout, with a login-like clean environment
  local dir="$1" user="$2" label="$3" command="$4" home started log status
  home="$(chroot "$dir" getent passwd "$user" | cut -d: -f6)"
  log="$work/$label.log"
  started=$(date +%s)
  say "$label: $command (log $log)"
  set +e
  chroot "$dir" sudo -u "$user" -H env -i HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGPORT="$PGPORT" KAFKA_BOOTSTRAP_SERVERS="$KAFKA_BOOTSTRAP_SERVERS" \
    KAFKA_CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" CONNECT_URL="$CONNECT_URL" \
    bash -c "cd ~/mnist-cdc && $command" </dev/null >"$log" 2>&1 &
  watch_step "$dir" "$label" $! "$started"
  status=$?
  set -e
  echo "$label: $(($(date +%s) - started)) s" >>"$work/timings"
  if [ $status -ne 0 ]; then
    # pytest's reasons sit above its summary: CI shows only what is printed here, so print them (bounded).
    sed -n '/^=\+ FAILURES =\+$/,/^=\+ short test summary/p' "$log" | head -300 >&2
    tail -40 "$log" >&2
    fail "$label: '$command' exited $status"
  fi
}

# A step that hangs must fail with its evidence, not run into CI's own limit where nothing is printed.
step_limit="${FRESH_STEP_TIMEOUT:-2400}"  # make test took 1,314 s here beside CI's host tests
watch_step() {  # watch_step DIR LABEL PID STARTED: wait for PID; past step_limit show what runs and kill it
  local dir="$1" label="$2" pid="$3" started="$4" next_report
  next_report=$((started + 300))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $(($(date +%s) - started)) -ge "$step_limit" ]; then
      say "$label: still running after $step_limit s (FRESH_STEP_TIMEOUT); its processes and last lines:" >&2
      show_inside "$dir" >&2
      tail -40 "$work/$label.log" >&2
      kill_inside "$dir"
      wait "$pid" 2>/dev/null
      return 124
    fi
    if [ "$(date +%s)" -ge "$next_report" ]; then  # progress, so a slow machine shows where its time goes
      say "$label: $(($(date +%s) - started)) s, last line: $(tail -1 "$work/$label.log" | cut -c1-160)"
      next_report=$((next_report + 300))
    fi
    sleep 2
  done
  wait "$pid"
}

show_inside() {  # show_inside DIR: pid, elapsed seconds, state, wait channel and command of each process in it
  local dir="$1" pid
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    if [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$dir" ]; then
      ps -o pid=,etimes=,stat=,wchan:20=,args= -p "$pid" 2>/dev/null | cut -c1-220 || true
    fi
  done
}

check_demo() {  # check_demo LABEL: the demo's last evaluation line, with an accuracy of at least min_accuracy
  local label="$1" line accuracy
  line="$(grep -E '^evaluated [0-9]+ records' "$work/$label.log" | tail -1 || true)"
  [ -n "$line" ] || fail "$label: no 'evaluated N records ... accuracy' line in the demo's output"
  accuracy="$(sed -E 's/.*accuracy ([0-9.]+).*/\1/' <<<"$line")"
  python3 -c "import sys; sys.exit(0 if float('$accuracy') >= $min_accuracy else 1)" ||
    fail "$label: accuracy $accuracy below $min_accuracy: $line"
  say "$label: $line"
  # ...and the way back: every test row has its prediction in mnist_predictions (consumer.show_predictions).
  line="$(grep -E '^[0-9]+ rows of mnist_test have a prediction' "$work/$label.log" | tail -1 || true)"
  [ -n "$line" ] || fail "$label: no 'N rows of mnist_test have a prediction' line in the demo's output"
  say "$label: $line"
}

demo_only() {  # demo_only DIR LABEL: the demo installed no package that only the tests need
  if chroot "$1" /bin/sh -c 'command -v chromium' >/dev/null 2>&1; then
    fail "$2: make demo installed Chromium, which only make test needs"
  fi
}

stop_stack() {  # stop_stack DIR USER LABEL: python -m stack down --purge in that user's checkout
  run_as "$1" "$2" "$3-down" ".venv/bin/python -m stack down --purge"
}

PGPORT="$(free_port)"
KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$(free_port)"
KAFKA_CONTROLLER_PORT="$(free_port)"
CONNECT_URL="http://127.0.0.1:$(free_port)"
say "commit $commit; ports: PGPORT=$PGPORT KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS" \
  "KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT CONNECT_URL=$CONNECT_URL"

run_suite() {  # run_suite SUITE: one fresh machine and the README's commands on it
  local suite="$1" dir="$work/$1"
  mkdir "$dir"
  prepare "$suite" "$dir"
  case "$suite" in
    bookworm)
      checkout "$dir" /root root
      run_as "$dir" root "$suite-root-demo" "make demo"
      check_demo "$suite-root-demo"
      demo_only "$dir" "$suite-root-demo"
      stop_stack "$dir" root "$suite-root"
      checkout "$dir" /home/alice alice
      run_as "$dir" alice "$suite-user-demo" "make demo"
      check_demo "$suite-user-demo"
      demo_only "$dir" "$suite-user-demo"
      stop_stack "$dir" alice "$suite-user"
      run_as "$dir" alice "$suite-user-test" "make test"
      say "$suite-user-test: $(grep -E '[0-9]+ passed' "$work/$suite-user-test.log" | tail -1 || true)"
      ;;
    trixie)
      checkout "$dir" /home/alice alice
      run_as "$dir" alice "$suite-user-demo" "make demo"
      check_demo "$suite-user-demo"
      demo_only "$dir" "$suite-user-demo"
      stop_stack "$dir" alice "$suite-user"
      ;;
    *) fail "unknown suite $suite (bookworm or trixie)" ;;
  esac
  kill_inside "$dir"
}

total_started=$(date +%s)
# The machines are independent (own directories, own ports): by default they run side by side, which keeps CI
# well inside its time (the demos wait on the network and the stream more than on the CPU). FRESH_PARALLEL=0
# runs them one after another.
pids=()
for suite in "${suites[@]}"; do
  if [ "${FRESH_PARALLEL:-1}" = 1 ]; then
    # Each machine gets its own ports, so two stacks never collide.
    (
      PGPORT="$(free_port)" KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$(free_port)"
      KAFKA_CONTROLLER_PORT="$(free_port)" CONNECT_URL="http://127.0.0.1:$(free_port)"
      say "$suite: ports PGPORT=$PGPORT KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS" \
        "KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT CONNECT_URL=$CONNECT_URL"
      run_suite "$suite"
    ) &
    pids+=($!)
  else
    run_suite "$suite"
  fi
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done

say "timings:"
while read -r timing; do say "  $timing"; done <"$work/timings"
[ $failed -eq 0 ] || fail "see the lines above"
say "passed: ${suites[*]} in $(($(date +%s) - total_started)) s"
