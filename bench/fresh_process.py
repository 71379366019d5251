"""Each measured reader runs in a fresh process of its own: nothing warmed up or left over by the one before
(tfio allows one Kafka consumer a process; TensorFlow's and librdkafka's threads stay with their process).

The parent starts ``python -m <module> --child ...`` and waits until the child says ``ready`` (its consumer
is in place, so rows committed from then on are seen); the child ends by printing its figures as one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

READY = "ready"


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
