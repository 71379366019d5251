"""Measured work runs in fresh processes: nothing warmed up or left over by the one before (tfio allows one Kafka
consumer a process; TensorFlow's and librdkafka's threads stay with their process).

Two shapes. A benchmark's own child: the parent starts ``python -m <module> --child ...`` and waits until the
child says ``ready`` (its consumer is in place, so rows committed from then on are seen); the child ends by
printing its figures as one JSON line (``start``/``result``/``run``). A project command measured from outside
(``consumer.train``, ``consumer.predict``, ``consumer.spark_predict``): ``Child``, whose output goes to a file and
whose CPU seconds and peak memory are the kernel's for that process tree alone (``os.wait4``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from probes.deadline import poll
from probes.topics import group_assignment

READY = "ready"
ROOT = Path(__file__).resolve().parent.parent
#: What consumer.predict and consumer.spark_predict print once the model is loaded and the reader or query runs.
SCORING = "predicting "


@dataclass
class Child:
    """A command measured from outside: started by ``Child.start``, its output (stdout and stderr) in ``log`` (a
    file: no pipe to fill), and once it is reaped its exit code, wall seconds and its own rusage, from
    ``os.wait4`` (``RUSAGE_CHILDREN`` would sum every child reaped so far): CPU seconds (user + system) and peak
    resident memory, of the process and the children it waited for."""

    process: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.perf_counter)
    code: int | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    max_rss_mib: float = 0.0

    @classmethod
    def start(cls, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
        """``argv`` from the project root, its output to ``log``."""
        with log.open("w") as out:
            process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        return cls(process, log)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 3) -> str:
        return _tail(self.output, lines)

    def printed(self, prefix: str) -> bool:
        """A line of its output starts with ``prefix``."""
        return f"\n{prefix}" in "\n" + self.output

    def ended(self) -> bool:
        """Reap it if it has ended (keeping its rusage), without waiting."""
        if self.code is None:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self._reaped(status, usage)
        return self.code is not None

    def interrupt(self) -> None:
        """Ctrl-C, as a user stops a ``--follow`` command."""
        if not self.ended():
            self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float) -> int:
        """Its exit code once it ended; SIGKILL (then -9) when that takes longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ended() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.ended():
            self.process.kill()
            _, status, usage = os.wait4(self.process.pid, 0)
            self._reaped(status, usage)
        return self.code

    def _reaped(self, status: int, usage) -> None:
        self.wall_s = time.perf_counter() - self.started
        self.code = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.max_rss_mib = usage.ru_maxrss / 1024
        self.process.returncode = self.code  # reaped here: Popen must not wait for it again


def wait_scoring(children: list[Child], label: str, timeout: float, also: Callable[[], bool] | None = None) -> None:
    """Until every child printed its ``predicting ...`` line and ``also()`` (if given) holds; RuntimeError when one
    ends first or ``timeout`` seconds pass."""

    def ready() -> bool:
        ended = next((child for child in children if child.ended()), None)
        if ended is not None:
            raise RuntimeError(f"{label} ended before it was ready ({ended.code}): {ended.tail()}")
        return all(child.printed(SCORING) for child in children) and (also is None or also())

    if not poll(ready, timeout, 0.2):
        raise RuntimeError(f"{label} not ready within {timeout:g} s: {children[0].tail()}")


def group_shared(servers: str, group: str, members: int) -> Callable[[], bool]:
    """A check for ``wait_scoring``: ``group`` is stable with ``members`` members, each with a partition, so no
    rebalance is still to come when the measuring starts."""

    def shared() -> bool:
        found = group_assignment(servers, group)
        return found is not None and len(found) == members and min(found.values()) > 0

    return shared


def start(module: str, *args: str) -> subprocess.Popen:
    """Start the child and wait until it is ready; RuntimeError with its last stderr lines if it ends first."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()
    if line.strip() != READY:
        process.kill()
        _, errors = process.communicate()
        raise RuntimeError(f"{module} {' '.join(args[:2])} did not start: {line.strip()} {_tail(errors)}")
    return process


def result(process: subprocess.Popen, timeout: float = 900) -> dict:
    """The figures the child printed last; RuntimeError when it failed."""
    try:
        output, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError(f"child {process.args[2:6]} did not finish within {timeout:g} s") from None
    if process.returncode != 0:
        raise RuntimeError(f"child {process.args[2:6]} failed: {_tail(errors)}")
    return json.loads(output.strip().splitlines()[-1])


def run(module: str, *args: str, timeout: float = 900) -> dict:
    """Start the child, wait for it, return its figures."""
    return result(start(module, *args), timeout)


def untrained_model(directory: Path) -> Path:
    """An untrained CNN saved by a process of its own (TensorFlow stays out of the measuring process)."""
    path = directory / "bench-model.keras"
    code = (
        "from consumer.cli import quiet_tensorflow; quiet_tensorflow(); "
        f"from consumer.learning.models import build_model; build_model().save({str(path)!r})"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"could not build the model: {_tail(done.stderr, 1)}")
    return path


def ready() -> None:
    """In the child: tell the parent to go on."""
    print(READY, flush=True)


def report(figures: dict) -> None:
    """In the child: hand the figures over (the last line of its output)."""
    print(json.dumps(figures), flush=True)


def pin_to_one_core() -> int:
    """Keep this process and all its threads (librdkafka's, TensorFlow's) on one CPU: a rate measured so is a
    rate of one core. Returns the CPU."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])
