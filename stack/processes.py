"""Starting, watching and stopping the stack's processes by pid file; port checks; deadline polling."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path


class StepError(Exception):
    """A step of the stack failed; the message is the one line the user sees."""


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.25) -> bool:
    """Call ``predicate`` every ``interval`` seconds until it returns something true or ``timeout`` seconds pass.

    Returns True as soon as it does; False when the deadline passed first. It is called at least once, and
    once more at the deadline, so a condition that turns true while we sleep is not missed.

    >>> wait_until(lambda: True, timeout=0)
    True
    >>> wait_until(lambda: False, timeout=0.05, interval=0.01)
    False
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    """True when a service could listen on ``host:port`` now: nothing listens there, and no connection holds it
    as its own end (an ephemeral port of an outgoing connection answers no one, yet cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def ensure_port_free(host: str, port: int, service: str, variable: str) -> None:
    """Fail with one line naming the variable that moves ``service`` when ``host:port`` is taken."""
    if not port_bindable(host, port):
        raise StepError(f"{service}: port {port} on {host} is busy; set {variable} to move {service} to a free port")


def service_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: ``postgres`` when we are root (it refuses to run as root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise StepError(
            "postgres: running as root needs a 'postgres' system user (apt-get install postgresql creates it)"
        ) from None


def chown_for_service(path: Path) -> None:
    """Give ``path`` to the PostgreSQL service account when we run as root."""
    user = service_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def run_as_service(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as the service account (see ``service_user``), capturing its output."""
    user = service_user()
    if user is not None:
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        kwargs.setdefault("cwd", "/")
    return subprocess.run(list(argv), capture_output=True, text=True, **kwargs)


def read_pid(pid_file: Path, marks: Sequence[str] = ()) -> int | None:
    """The pid recorded in ``pid_file`` when that process is alive and is still the one we started.

    A pid file outlives its process (a crash, a reboot), and the kernel reuses pids: the process must have the
    start time recorded beside the pid and every one of ``marks`` among its arguments (the main class, our
    config path), or it is somebody else's and we must not report it running, nor signal it.
    """
    try:
        fields = pid_file.read_text().split()
        pid = int(fields[0])
        recorded_start = fields[1] if len(fields) > 1 else None
    except (OSError, ValueError, IndexError):
        return None
    if not pid_alive(pid):
        return None
    if recorded_start is not None and start_time(pid) != recorded_start:
        return None
    arguments = command_line(pid)
    return pid if all(mark in arguments for mark in marks) else None


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat from field 3 on (after the command name, which may hold spaces and
    parentheses itself); empty when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs: a zombie (Z) or dead task (X) has exited and holds nothing."""
    stat = _stat(pid)
    return bool(stat) and stat[0] not in ("Z", "X")


def start_time(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks since boot (/proc/<pid>/stat field 22): a pid with its start time
    names one process, even after the pid is reused."""
    stat = _stat(pid)
    return stat[19] if len(stat) > 19 else None


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def start_process(
    argv: Sequence[str],
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached from us (own session, in ``cwd``), output appended to ``log_file``; record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    # Popen returns as the exec begins; until the kernel has laid out the new program, /proc/<pid>/cmdline reads
    # empty and ``read_pid`` would not know our process by its marks (seen under load).
    wait_until(lambda: any(command_line(process.pid)) or process.poll() is not None, 2.0, 0.005)
    pid_file.write_text(f"{process.pid} {start_time(process.pid) or ''}\n")
    return process.pid


def stop_process(pid_file: Path, marks: Sequence[str], timeout: float = 30.0) -> bool:
    """Stop the process ``pid_file`` names when it is ours (see ``read_pid``), and remove the pid file either way;
    True when it was running."""
    pid = read_pid(pid_file, marks)
    stopped = stop_pid(pid, timeout) if pid is not None else False
    pid_file.unlink(missing_ok=True)
    return stopped


@contextlib.contextmanager
def exclusive(lock_file: Path, home: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` or fail at once: two ``up``s (or ``up`` and ``down``) at the same
    time would start a service twice or stop it under the other. The kernel drops the lock when we exit."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StepError(
                f"another `python -m stack up` or `down` is running for {home} (it holds {lock_file}); "
                "wait for it to finish"
            ) from None
        yield


def stop_pid(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; True when the process was running."""
    if not pid_alive(pid):
        return False
    _signal(pid, signal.SIGTERM)
    if not wait_until(lambda: not pid_alive(pid), timeout, 0.1):
        _signal(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10.0, 0.1)
    _reap(pid)
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status when ``pid`` is our own child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_process(name: str, pid: int, ready: Callable[[], bool], timeout: float, log: Path) -> None:
    """Wait until ``ready()``; fail at once if the process died, else after ``timeout`` seconds (one line naming
    its log and its last line)."""
    if not wait_until(lambda: ready() or not pid_alive(pid), timeout, 0.5) or not pid_alive(pid):
        detail = tail(log, 1)
        reason = "exited" if not pid_alive(pid) else f"not ready after {timeout:.0f} s"
        raise StepError(f"{name}: {reason}; see {log}" + (f" (last line: {detail.strip()[:200]})" if detail else ""))
